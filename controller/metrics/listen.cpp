#include "ebpfnet/metrics/listen.hpp"

#include <charconv>
#include <string_view>

#include "ebpfnet/error.hpp"

namespace ebpfnet::metrics {

std::string ListenAddress::str() const { return ip.str() + ":" + std::to_string(port); }

ListenAddress parse_listen(const std::string& s) {
  const std::string example = " (e.g. 198.18.0.2:" + std::to_string(kDefaultPort) + ", or an address alone for port " +
                              std::to_string(kDefaultPort) + ")";
  ListenAddress at;
  const size_t colon = s.find(':');
  auto ip = Ipv4::parse(std::string_view(s).substr(0, colon));
  if (!ip) throw Error(Errc::usage, "listen address '" + s + "' is not IPV4[:PORT]" + example);
  at.ip = *ip;
  if (colon != std::string::npos) {
    const std::string_view p = std::string_view(s).substr(colon + 1);
    unsigned v = 0;
    auto r = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || r.ec != std::errc() || r.ptr != p.data() + p.size() || v == 0 || v > 65535)
      throw Error(Errc::usage, "listen address '" + s + "': port must be 1-65535" + example);
    at.port = static_cast<uint16_t>(v);
  }
  return at;
}

}  // namespace ebpfnet::metrics
