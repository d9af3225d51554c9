// Address management for a node's pool: the network address, the gateway
// (first host) and broadcast are never handed out.
#pragma once

#include <set>

#include "ebpfnet/ipv4.hpp"

namespace ebpfnet {

class Ipam {
 public:
  // last: the most recent allocation; the search resumes after it so a
  // released address is not handed out again at once.
  Ipam(Ipv4Cidr pool, std::set<Ipv4> used, Ipv4 last = {});

  Ipv4 allocate();          // throws Errc::exhausted
  void reserve(Ipv4 addr);  // throws usage (not usable) or exists (taken)
  void release(Ipv4 addr);

  const std::set<Ipv4>& used() const { return used_; }
  Ipv4 last() const { return last_; }
  Ipv4 gateway() const { return pool_.first_host(); }

 private:
  bool usable(Ipv4 a) const;

  Ipv4Cidr pool_;
  std::set<Ipv4> used_;
  Ipv4 last_;
};

}  // namespace ebpfnet

#include "ebpfnet/ipv6.hpp"

namespace ebpfnet {

// The IPv6 side of a dual-stack pool. Offset 0 (the subnet-router anycast
// address) and 1 (the gateway) are never handed out. An endpoint takes the
// offset its IPv4 address has in the IPv4 pool when that is free (10.240.0.5
// and fd00:240::5), so the two are easy to pair up; else the next free one.
class Ipam6 {
 public:
  Ipam6(Ipv6Cidr pool, std::set<Ipv6> used);

  Ipv6 allocate(uint64_t preferred_offset);  // throws Errc::exhausted
  void reserve(const Ipv6& addr);            // throws usage (not usable) or exists (taken)

 private:
  bool usable(const Ipv6& a) const;

  Ipv6Cidr pool_;
  std::set<Ipv6> used_;
};

}  // namespace ebpfnet
