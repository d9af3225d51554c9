#include "ebpfnet/ipv4.hpp"

#include <arpa/inet.h>
#include <sys/random.h>

#include <charconv>
#include <cstdio>

#include "ebpfnet/error.hpp"

namespace ebpfnet {

namespace {

// A decimal number as people write it: digits only (no sign, no space), no
// leading zero, at most max. Leading zeros are refused, not ignored:
// inet_aton reads "010" as octal 8, so such input means different things to
// different tools.
std::optional<uint32_t> decimal(std::string_view s, uint32_t max) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
    if (v > max) return std::nullopt;
  }
  return v;
}

}  // namespace

std::optional<Ipv4> Ipv4::parse(std::string_view s) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    size_t end = i < 3 ? s.find('.') : s.size();
    if (end == std::string_view::npos) return std::nullopt;
    auto octet = decimal(s.substr(0, end), 255);
    if (!octet) return std::nullopt;
    v = v << 8 | *octet;
    if (i < 3) s.remove_prefix(end + 1);
  }
  return Ipv4(v);
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
  auto prefix = decimal(s.substr(slash + 1), 32);
  if (!addr || !prefix) return std::nullopt;
  Ipv4Cidr c{*addr, static_cast<int>(*prefix)};
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
