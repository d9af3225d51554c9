// IPv6 addresses and prefixes as values, for dual-stack pools.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ebpfnet {

// An IPv6 address in network order (as the datapath keys it); ordered
// bytewise, which is numeric order.
class Ipv6 {
 public:
  using Bytes = std::array<uint8_t, 16>;
  constexpr Ipv6() = default;
  constexpr explicit Ipv6(const Bytes& b) : b_(b) {}
  static std::optional<Ipv6> parse(std::string_view s);

  const Bytes& bytes() const { return b_; }
  std::string str() const;
  bool is_unspecified() const { return *this == Ipv6(); }
  auto operator<=>(const Ipv6&) const = default;

 private:
  Bytes b_{};
};

// A prefix such as fd00:240::/64 (host bits must be zero). Endpoint
// addresses are the network plus a 64-bit offset: 1 is the gateway.
struct Ipv6Cidr {
  Ipv6 network;
  int prefix = 0;

  static std::optional<Ipv6Cidr> parse(std::string_view s);
  bool contains(const Ipv6& a) const;
  // network + offset; the offset must fit the host bits.
  Ipv6 at(uint64_t offset) const;
  // The address's offset from the network (its low 64 bits when the host
  // part is wider); nullopt when the address is outside.
  std::optional<uint64_t> offset_of(const Ipv6& a) const;
  // The largest offset an endpoint may take (the host part's all-ones, or
  // 2^64-1 when the host part has 64 bits or more).
  uint64_t max_offset() const;
  Ipv6 gateway() const { return at(1); }
  std::string str() const;
  bool overlaps(const Ipv6Cidr& o) const;
  bool operator==(const Ipv6Cidr&) const = default;
};

// The gateway's link-local address on every node-side veth (fe80::1): the
// same on each link, as a router's is, so an endpoint can always reach it.
Ipv6 gateway_link_local();

}  // namespace ebpfnet
