#include "ebpfnet/ipv6.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace ebpfnet {

std::optional<Ipv6> Ipv6::parse(std::string_view s) {
  // inet_pton refuses anything but the RFC 4291 text forms; no zone ids.
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  std::string z(s);
  Bytes b{};
  if (inet_pton(AF_INET6, z.c_str(), b.data()) != 1) return std::nullopt;
  return Ipv6(b);
}

std::string Ipv6::str() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, b_.data(), buf, sizeof buf);
  return buf;
}

namespace {

// Whether bits [prefix, 128) of a are all zero.
bool host_bits_zero(const Ipv6::Bytes& a, int prefix) {
  for (int bit = prefix; bit < 128; ++bit)
    if (a[bit / 8] & (0x80 >> (bit % 8))) return false;
  return true;
}

bool same_prefix(const Ipv6::Bytes& a, const Ipv6::Bytes& b, int prefix) {
  for (int bit = 0; bit < prefix; ++bit) {
    const uint8_t m = 0x80 >> (bit % 8);
    if ((a[bit / 8] & m) != (b[bit / 8] & m)) return false;
  }
  return true;
}

}  // namespace

std::optional<Ipv6Cidr> Ipv6Cidr::parse(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = Ipv6::parse(s.substr(0, slash));
  std::string_view p = s.substr(slash + 1);
  if (!addr || p.empty() || p.size() > 3 || (p.size() > 1 && p[0] == '0')) return std::nullopt;
  int prefix = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return std::nullopt;
    prefix = prefix * 10 + (c - '0');
  }
  if (prefix > 128 || !host_bits_zero(addr->bytes(), prefix)) return std::nullopt;
  return Ipv6Cidr{*addr, prefix};
}

bool Ipv6Cidr::contains(const Ipv6& a) const { return same_prefix(a.bytes(), network.bytes(), prefix); }

bool Ipv6Cidr::overlaps(const Ipv6Cidr& o) const {
  return same_prefix(network.bytes(), o.network.bytes(), std::min(prefix, o.prefix));
}

uint64_t Ipv6Cidr::max_offset() const {
  const int host = 128 - prefix;
  return host >= 64 ? ~uint64_t{0} : (uint64_t{1} << host) - 1;
}

Ipv6 Ipv6Cidr::at(uint64_t offset) const {
  Ipv6::Bytes b = network.bytes();
  for (int i = 15; i >= 8; --i, offset >>= 8) b[i] |= static_cast<uint8_t>(offset & 0xff);
  return Ipv6(b);
}

std::optional<uint64_t> Ipv6Cidr::offset_of(const Ipv6& a) const {
  if (!contains(a)) return std::nullopt;
  uint64_t v = 0;
  for (int i = 8; i < 16; ++i) v = v << 8 | a.bytes()[i];
  return v & max_offset();
}

std::string Ipv6Cidr::str() const { return network.str() + "/" + std::to_string(prefix); }

Ipv6 gateway_link_local() {
  Ipv6::Bytes b{};
  b[0] = 0xfe;
  b[1] = 0x80;
  b[15] = 1;
  return Ipv6(b);
}

}  // namespace ebpfnet
