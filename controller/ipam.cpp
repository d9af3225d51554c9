#include "ebpfnet/ipam.hpp"

#include "ebpfnet/error.hpp"

namespace ebpfnet {

Ipam::Ipam(Ipv4Cidr pool, std::set<Ipv4> used, Ipv4 last)
    : pool_(pool), used_(std::move(used)), last_(last) {}

bool Ipam::usable(Ipv4 a) const {
  return pool_.contains(a) && a > gateway() && a <= pool_.last_host();
}

Ipv4 Ipam::allocate() {
  uint32_t first = gateway().host() + 1, last = pool_.last_host().host();
  if (first > last) throw Error(Errc::exhausted, "pool " + pool_.str() + " has no usable address");
  uint32_t start = usable(last_) && last_.host() < last ? last_.host() + 1 : first;
  uint32_t a = start;
  do {
    if (!used_.count(Ipv4(a))) {
      used_.insert(Ipv4(a));
      last_ = Ipv4(a);
      return last_;
    }
    a = a == last ? first : a + 1;
  } while (a != start);
  throw Error(Errc::exhausted, "pool " + pool_.str() + " is exhausted (" +
                                   std::to_string(used_.size()) + " addresses in use)");
}

void Ipam::reserve(Ipv4 addr) {
  if (!pool_.contains(addr))
    throw Error(Errc::usage, "address " + addr.str() + " is outside the pool " + pool_.str());
  if (!usable(addr))
    throw Error(Errc::usage, "address " + addr.str() +
                                 " is the network, gateway or broadcast address of " + pool_.str());
  if (!used_.insert(addr).second)
    throw Error(Errc::exists, "address " + addr.str() + " is already in use");
}

void Ipam::release(Ipv4 addr) { used_.erase(addr); }

}  // namespace ebpfnet
