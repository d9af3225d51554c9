#include "ebpfnet/cluster/records.hpp"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace ebpfnet::cluster {
namespace {

using nlohmann::json;

std::optional<std::string> str_field(const json& j, const char* f, std::string* why) {
  if (!j.contains(f)) {
    *why = std::string("no ") + f;
    return std::nullopt;
  }
  if (!j[f].is_string()) {
    *why = std::string(f) + " is not a string";
    return std::nullopt;
  }
  return j[f].get<std::string>();
}

std::optional<json> parse_object(std::string_view text, std::string* why) {
  if (text.size() > kMaxRecordBytes) {
    *why = "larger than " + std::to_string(kMaxRecordBytes) + " bytes";
    return std::nullopt;
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *why = "not a JSON object";
    return std::nullopt;
  }
  return j;
}

}  // namespace

std::string_view mode_name(Mode m) { return m == Mode::native ? "native" : "vxlan"; }

std::optional<Mode> parse_mode(std::string_view s) {
  if (s == "vxlan") return Mode::vxlan;
  if (s == "native") return Mode::native;
  return std::nullopt;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

bool valid_underlay(Ipv4 a) {
  const uint32_t h = a.host();
  const uint32_t first = h >> 24;
  return first != 0 && first != 127 && first < 224;  // not 0/8, loopback, multicast, class E, broadcast
}

std::string check_config(const ClusterConfig& c) {
  if (c.pool_prefix < c.cidr.prefix || c.pool_prefix > 30)
    return "pool size /" + std::to_string(c.pool_prefix) + " must be between the cluster CIDR's /" +
           std::to_string(c.cidr.prefix) + " and /30";
  if (c.pool_prefix - c.cidr.prefix > 20)
    return "cluster CIDR " + c.cidr.str() + " holds more than 2^20 pools of /" + std::to_string(c.pool_prefix);
  return "";
}

std::string encode(const ClusterConfig& c) {
  return json{{"cidr", c.cidr.str()}, {"pool_prefix", c.pool_prefix}}.dump();
}

std::string encode(const NodeRecord& r) {
  json j = {{"name", r.name}, {"underlay", r.underlay.str()}, {"pool", r.pool.str()}, {"mode", mode_name(r.mode)}};
  if (r.vtep_mac) j["vtep_mac"] = mac_str(*r.vtep_mac);
  return j.dump();
}

std::optional<ClusterConfig> decode_config(std::string_view text, std::string* why) {
  auto j = parse_object(text, why);
  if (!j) return std::nullopt;
  auto cidr = str_field(*j, "cidr", why);
  if (!cidr) return std::nullopt;
  ClusterConfig c;
  auto parsed = Ipv4Cidr::parse(*cidr);
  if (!parsed) {
    *why = "cidr '" + cidr->substr(0, 40) + "' is not a prefix";
    return std::nullopt;
  }
  c.cidr = *parsed;
  if (!(*j).contains("pool_prefix") || !(*j)["pool_prefix"].is_number_integer()) {
    *why = "pool_prefix is not an integer";
    return std::nullopt;
  }
  const int64_t p = (*j)["pool_prefix"].get<int64_t>();
  if (p < 0 || p > 32) {
    *why = "pool_prefix out of range";
    return std::nullopt;
  }
  c.pool_prefix = static_cast<int>(p);
  if (std::string bad = check_config(c); !bad.empty()) {
    *why = bad;
    return std::nullopt;
  }
  return c;
}

std::optional<NodeRecord> decode_node(std::string_view text, const ClusterConfig* config, std::string* why) {
  auto j = parse_object(text, why);
  if (!j) return std::nullopt;
  NodeRecord r;
  auto name = str_field(*j, "name", why);
  if (!name) return std::nullopt;
  if (!valid_name(*name)) {
    *why = "name is not a DNS label";
    return std::nullopt;
  }
  r.name = *name;
  auto underlay = str_field(*j, "underlay", why);
  if (!underlay) return std::nullopt;
  auto addr = Ipv4::parse(*underlay);
  if (!addr || !valid_underlay(*addr)) {
    *why = "underlay '" + underlay->substr(0, 40) + "' is not a unicast IPv4 address";
    return std::nullopt;
  }
  r.underlay = *addr;
  auto pool = str_field(*j, "pool", why);
  if (!pool) return std::nullopt;
  auto p = Ipv4Cidr::parse(*pool);
  if (!p) {
    *why = "pool '" + pool->substr(0, 40) + "' is not a prefix";
    return std::nullopt;
  }
  if (config && (p->prefix != config->pool_prefix || !config->cidr.contains(p->network))) {
    *why = "pool " + p->str() + " is not a /" + std::to_string(config->pool_prefix) + " of " + config->cidr.str();
    return std::nullopt;
  }
  r.pool = *p;
  auto mode = str_field(*j, "mode", why);
  if (!mode) return std::nullopt;
  auto m = parse_mode(*mode);
  if (!m) {
    *why = "mode '" + mode->substr(0, 20) + "' is neither vxlan nor native";
    return std::nullopt;
  }
  r.mode = *m;
  if (j->contains("vtep_mac")) {
    auto mac = str_field(*j, "vtep_mac", why);
    if (!mac) return std::nullopt;
    auto parsed = parse_mac(*mac);
    if (!parsed || ((*parsed)[0] & 1)) {
      *why = "vtep_mac is not a unicast MAC address";
      return std::nullopt;
    }
    r.vtep_mac = *parsed;
  }
  return r;
}

}  // namespace ebpfnet::cluster

namespace ebpfnet::cluster {
std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}
}  // namespace ebpfnet::cluster
