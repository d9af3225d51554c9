#include "output.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace ebpfnet::cli {

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

nlohmann::json to_json(const EndpointStats& s) {
  nlohmann::json drops = nlohmann::json::object();
  for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) drops[std::string(drop_reason_name(r))] = s.drops[r];
  return {{"tx_packets", s.tx_packets}, {"tx_bytes", s.tx_bytes},   {"rx_packets", s.rx_packets},
          {"rx_bytes", s.rx_bytes},     {"drops", drops}};
}

nlohmann::json to_json(const EndpointView& v) {
  const auto& e = v.rec;
  // null for an endpoint added by hand rather than by a CNI runtime.
  auto or_null = [](const std::string& s) {
    return s.empty() ? nlohmann::json() : nlohmann::json(s);
  };
  return {{"name", e.name},
          {"ip", e.ip.str()},
          {"ip6", e.ip6 ? nlohmann::json(e.ip6->str()) : nlohmann::json(nullptr)},
          {"mac", mac_str(e.mac)},
          {"netns", e.netns},
          {"netns_owned", e.netns_owned},
          {"ifname", e.ifname},
          {"container_id", or_null(e.container_id)},
          {"cni_network", or_null(e.cni_network)},
          {"host_ifname", e.host_ifname},
          {"host_ifindex", e.host_ifindex},
          {"tc_mode", to_string(e.tc_mode)},
          {"prog_id", v.prog_id},
          {"stats", v.stats ? to_json(*v.stats) : nlohmann::json(nullptr)}};
}

const std::vector<std::string>& endpoint_header() {
  static const std::vector<std::string> h = {"NAME", "IP", "IPV6", "NETNS", "VETH", "TC", "TX PKTS", "TX BYTES",
                                             "RX PKTS", "RX BYTES", "DROPS"};
  return h;
}

std::string drops_summary(const DropCounts& d) {
  std::string out;
  for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r) {
    if (!d[r]) continue;
    if (!out.empty()) out += ",";
    out += std::string(drop_reason_name(r)) + "=" + std::to_string(d[r]);
  }
  return out.empty() ? "0" : out;
}

std::vector<std::string> endpoint_row(const EndpointView& v) {
  const auto& e = v.rec;
  std::string tc = v.prog_id ? to_string(e.tc_mode) : to_string(e.tc_mode) + " (detached)";
  const std::string ip6 = e.ip6 ? e.ip6->str() : "-";
  if (!v.stats)
    return {e.name, e.ip.str(), ip6, e.netns, e.host_ifname, tc, "-", "-", "-", "-", "-"};
  const auto& s = *v.stats;
  return {e.name,
          e.ip.str(),
          ip6,
          e.netns,
          e.host_ifname,
          tc,
          std::to_string(s.tx_packets),
          std::to_string(s.tx_bytes),
          std::to_string(s.rx_packets),
          std::to_string(s.rx_bytes),
          drops_summary(s.drops)};
}

std::string proto_name(uint8_t p) {
  return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : p == IPPROTO_ICMP ? "icmp" : std::to_string(p);
}

std::string addr_port(__be32 a, __be16 port, uint8_t proto) {
  std::string s = Ipv4::from_be(a).str();
  return proto == IPPROTO_ICMP ? s : s + ":" + std::to_string(ntohs(port));
}

}  // namespace ebpfnet::cli
