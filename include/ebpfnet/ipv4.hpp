// IPv4 addresses, prefixes and MAC addresses as values.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ebpfnet {

// An IPv4 address held in host order, so arithmetic and ordering are natural.
class Ipv4 {
 public:
  constexpr Ipv4() = default;
  constexpr explicit Ipv4(uint32_t host_order) : v_(host_order) {}
  static std::optional<Ipv4> parse(std::string_view s);
  static Ipv4 from_be(uint32_t network_order);

  uint32_t host() const { return v_; }
  uint32_t be() const;  // network order, as the datapath keys it
  std::string str() const;
  auto operator<=>(const Ipv4&) const = default;

 private:
  uint32_t v_ = 0;
};

// A prefix such as 10.240.0.0/24 (host bits must be zero).
struct Ipv4Cidr {
  Ipv4 network;
  int prefix = 0;

  static std::optional<Ipv4Cidr> parse(std::string_view s);
  uint32_t mask() const;
  bool contains(Ipv4 a) const;
  Ipv4 first_host() const;  // the gateway
  Ipv4 last_host() const;   // the address before broadcast
  std::string str() const;
  bool operator==(const Ipv4Cidr&) const = default;
};

using Mac = std::array<uint8_t, 6>;

std::optional<Mac> parse_mac(std::string_view s);
std::string mac_str(const Mac& m);
// A random unicast, locally administered address.
Mac random_mac();

}  // namespace ebpfnet
