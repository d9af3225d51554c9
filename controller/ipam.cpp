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

namespace ebpfnet {

Ipam6::Ipam6(Ipv6Cidr pool, std::set<Ipv6> used) : pool_(pool), used_(std::move(used)) {}

bool Ipam6::usable(const Ipv6& a) const {
  auto off = pool_.offset_of(a);
  return off && *off > 1;
}

Ipv6 Ipam6::allocate(uint64_t preferred_offset) {
  const uint64_t max = pool_.max_offset();
  if (max < 2) throw Error(Errc::exhausted, "pool " + pool_.str() + " has no usable address");
  uint64_t off = preferred_offset > 1 && preferred_offset <= max ? preferred_offset : 2;
  // Bounded: a node has at most as many endpoints as its IPv4 pool, so the
  // walk ends long before it wraps a /64.
  for (size_t tries = 0; tries <= used_.size(); ++tries) {
    Ipv6 a = pool_.at(off);
    if (!used_.count(a)) {
      used_.insert(a);
      return a;
    }
    off = off == max ? 2 : off + 1;
  }
  throw Error(Errc::exhausted, "pool " + pool_.str() + " is exhausted (" + std::to_string(used_.size()) +
                                   " addresses in use)");
}

void Ipam6::reserve(const Ipv6& addr) {
  if (!pool_.contains(addr))
    throw Error(Errc::usage, "address " + addr.str() + " is outside the pool " + pool_.str());
  if (!usable(addr))
    throw Error(Errc::usage, "address " + addr.str() + " is the subnet-router or gateway address of " + pool_.str());
  if (!used_.insert(addr).second) throw Error(Errc::exists, "address " + addr.str() + " is already in use");
}

}  // namespace ebpfnet
