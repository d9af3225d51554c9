#include "ebpfnet/ipv4.hpp"

#include <arpa/inet.h>
#include <sys/random.h>

#include <charconv>
#include <cstdio>

#include "ebpfnet/error.hpp"

namespace ebpfnet {

std::optional<Ipv4> Ipv4::parse(std::string_view s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  std::string z(s);
  in_addr a{};
  // inet_pton accepts only the four-part dotted quad, no octal or short forms.
  if (inet_pton(AF_INET, z.c_str(), &a) != 1) return std::nullopt;
  return Ipv4(ntohl(a.s_addr));
}

Ipv4 Ipv4::from_be(uint32_t network_order) { return Ipv4(ntohl(network_order)); }

uint32_t Ipv4::be() const { return htonl(v_); }

std::string Ipv4::str() const {
  char buf[INET_ADDRSTRLEN];
  in_addr a{htonl(v_)};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::optional<Ipv4Cidr> Ipv4Cidr::parse(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = Ipv4::parse(s.substr(0, slash));
  auto len = s.substr(slash + 1);
  int prefix = -1;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (!addr || len.empty() || ec != std::errc() || end != len.data() + len.size() || prefix < 0 ||
      prefix > 32)
    return std::nullopt;
  Ipv4Cidr c{*addr, prefix};
  if ((addr->host() & ~c.mask()) != 0) return std::nullopt;
  return c;
}

uint32_t Ipv4Cidr::mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }

bool Ipv4Cidr::contains(Ipv4 a) const { return (a.host() & mask()) == network.host(); }

Ipv4 Ipv4Cidr::first_host() const { return Ipv4(network.host() + 1); }

Ipv4 Ipv4Cidr::last_host() const { return Ipv4((network.host() | ~mask()) - 1); }

std::string Ipv4Cidr::str() const { return network.str() + "/" + std::to_string(prefix); }

std::optional<Mac> parse_mac(std::string_view s) {
  Mac m{};
  if (s.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && s[i * 3 - 1] != ':') return std::nullopt;
    auto part = s.substr(i * 3, 2);
    auto [end, ec] = std::from_chars(part.data(), part.data() + 2, m[i], 16);
    if (ec != std::errc() || end != part.data() + 2) return std::nullopt;
  }
  return m;
}

std::string mac_str(const Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

Mac random_mac() {
  Mac m{};
  if (getrandom(m.data(), m.size(), 0) != static_cast<ssize_t>(m.size()))
    throw_errno(errno, "generating a MAC address");
  m[0] = (m[0] & 0xfe) | 0x02;
  return m;
}

}  // namespace ebpfnet
