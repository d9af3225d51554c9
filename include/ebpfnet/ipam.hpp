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
