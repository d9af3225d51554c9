// Policy text: files, one-line rules, and the state file's JSON.
//
// A policy file is YAML (JSON is YAML too):
//
//   ingress:                 # optional; omitted: default allow, no rules
//     default: deny          # allow | deny; omitted: allow
//     rules:                 # a list; omitted: none
//       - action: allow      # allow | deny; required
//         proto: tcp         # tcp | udp | icmp | any; omitted: any
//         port: 80           # N or "LO-HI" within 1-65535, only with tcp/udp;
//                            # omitted: every port
//         peer: 10.0.0.0/8   # CIDR, IPv4 address (= /32), endpoint name, or
//                            # any; omitted: any
//   egress:                  # the same keys; the peer is the destination
//     default: allow
//     rules: []
//
// An empty file is an empty policy. Other keys, duplicate keys and more than
// one YAML document are errors. The peer is the source for ingress, the
// destination for egress. Of the rules matching a packet the longest peer
// prefix decides, deny beats allow at equal length, then the earliest rule
// wins; no match: the default.
//
// A one-line rule is "ACTION [PROTO [PORT|LO-HI]] [from PEER]" for ingress,
// "... [to PEER]" for egress, e.g. "allow tcp 80 from 10.0.0.0/8".
#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/policy.hpp"
#include "policy_yaml.hpp"
#include "yaml_file.hpp"

namespace ebpfnet {

using nlohmann::json;

namespace {

bool takes_ports(PolicyProto p) { return p == PolicyProto::tcp || p == PolicyProto::udp; }

std::optional<PolicyProto> parse_proto(std::string_view s) {
  for (auto p : {PolicyProto::any, PolicyProto::tcp, PolicyProto::udp, PolicyProto::icmp})
    if (s == to_string(p)) return p;
  return std::nullopt;
}

PolicyAction action_of(std::string_view s) {
  if (auto a = parse_policy_action(s)) return *a;
  throw Invalid{in_quotes(s) + " is not an action (allow or deny)"};
}

PolicyProto proto_of(std::string_view s) {
  if (auto p = parse_proto(s)) return *p;
  throw Invalid{in_quotes(s) + " is not a protocol (tcp, udp, icmp or any)"};
}

uint16_t port_number(std::string_view s, std::string_view whole) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && end == s.data() + s.size() && (v == 0 || v > 65535)))
    throw Invalid{"port " + std::string(s) + " is out of range (1-65535)"};
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    throw Invalid{in_quotes(whole) + " is not a port or a range LO-HI"};
  return static_cast<uint16_t>(v);
}

void set_ports(PolicyRule& r, std::string_view s) {
  auto dash = s.find('-');
  r.port_min = port_number(s.substr(0, dash), s);
  r.port_max = dash == std::string_view::npos ? r.port_min : port_number(s.substr(dash + 1), s);
  if (r.port_min > r.port_max)
    throw Invalid{"port range " + std::string(s) + " ends below its start"};
}

void check_port_allowed(PolicyProto p) {
  if (!takes_ports(p))
    throw Invalid{"a port needs proto tcp or udp, not " + std::string(to_string(p))};
}

Ipv4Cidr resolve_peer(std::string_view peer, const PeerResolver& resolve) {
  if (peer == "any") return {};
  if (auto slash = peer.find('/'); slash != std::string_view::npos) {
    if (auto c = Ipv4Cidr::parse(peer)) return *c;
    auto addr = Ipv4::parse(peer.substr(0, slash));
    auto len = peer.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (addr && ec == std::errc() && end == len.data() + len.size() && prefix >= 0 &&
        prefix <= 32) {
      Ipv4Cidr net{Ipv4(addr->host() & Ipv4Cidr{*addr, prefix}.mask()), prefix};
      throw Invalid{in_quotes(peer) + " has host bits set; did you mean " + net.str() + "?"};
    }
    throw Invalid{in_quotes(peer) + " is not a CIDR"};
  }
  if (auto a = Ipv4::parse(peer)) return {*a, 32};
  if (peer.empty()) throw Invalid{"the peer is empty"};
  if (resolve)
    if (auto a = resolve(peer)) return {*a, 32};
  throw Invalid{"no endpoint named " + in_quotes(peer) +
                " (a peer is any, an IPv4 address or CIDR, or an endpoint name)"};
}

std::string rule_syntax(PolicyDir dir) {
  return std::string("ACTION [PROTO [PORT|LO-HI]] [") +
         (dir == PolicyDir::ingress ? "from" : "to") + " PEER]";
}

PolicyRule rule_from_words(const std::vector<std::string_view>& w, PolicyDir dir,
                           const PeerResolver& resolve) {
  std::string_view peer_word = dir == PolicyDir::ingress ? "from" : "to";
  std::string_view wrong_word = dir == PolicyDir::ingress ? "to" : "from";
  if (w.empty()) throw Invalid{"empty; expected " + rule_syntax(dir)};
  PolicyRule r;
  size_t i = 0;
  r.action = action_of(w[i++]);
  auto more = [&] { return i < w.size() && w[i] != "from" && w[i] != "to"; };
  if (more()) {
    r.proto = proto_of(w[i++]);
    if (more()) {
      check_port_allowed(r.proto);
      set_ports(r, w[i++]);
    }
  }
  if (i < w.size() && w[i] == wrong_word)
    throw Invalid{"an " + std::string(to_string(dir)) + " rule names its peer with '" +
                  std::string(peer_word) + "', not '" + std::string(wrong_word) + "'"};
  if (i < w.size() && w[i] == peer_word) {
    if (++i == w.size()) throw Invalid{"'" + std::string(peer_word) + "' needs a peer"};
    r.peer = std::string(w[i]);
    r.cidr = resolve_peer(w[i++], resolve);
  }
  if (i < w.size())
    throw Invalid{"unexpected " + in_quotes(w[i]) + "; expected " + rule_syntax(dir)};
  return r;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size();) {
    i = s.find_first_not_of(" \t", i);
    if (i == std::string_view::npos) break;
    size_t end = std::min(s.find_first_of(" \t", i), s.size());
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

// Reads a parsed YAML document, naming the file line of whatever is wrong.
class YamlReader {
 public:
  // where: how errors name the policy's own level ("at the top level" of a policy file).
  YamlReader(const YamlFile& file, const PeerResolver& resolve, std::string where)
      : file_(file), resolve_(resolve), where_(std::move(where)) {}

  Policy policy(const YAML::Node& doc) const {
    Policy p;
    if (doc.IsNull()) return p;
    if (!doc.IsMap()) file_.fail(doc, "a policy is a mapping with the keys ingress and egress");
    file_.for_each_entry(doc, where_, {"ingress", "egress"},
                         [&](const std::string& key, const YAML::Node& value, const YAML::Node&) {
                           auto dir = key == "ingress" ? PolicyDir::ingress : PolicyDir::egress;
                           p.dir(dir) = direction(key, value);
                         });
    return p;
  }

 private:
  DirectionPolicy direction(const std::string& name, const YAML::Node& n) const {
    DirectionPolicy d;
    if (n.IsNull()) return d;
    if (!n.IsMap()) file_.fail(n, name + " must be a mapping with the keys default and rules");
    file_.for_each_entry(n, "in " + name, {"default", "rules"},
                         [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
                           if (key == "default") {
                             auto s = file_.scalar(key, v, k);
                             d.default_action = file_.at(v, [&] { return action_of(s); });
                             return;
                           }
                           if (v.IsNull()) return;
                           if (!v.IsSequence()) file_.fail(v, "rules must be a list");
                           for (const auto& item : v) d.rules.push_back(rule(item));
                         });
    return d;
  }

  PolicyRule rule(const YAML::Node& n) const {
    if (!n.IsMap()) file_.fail(n, "a rule must be a mapping with the keys action, proto, port, peer");
    PolicyRule r;
    bool has_action = false;
    std::optional<YAML::Node> port;
    file_.for_each_entry(n, "in a rule", {"action", "proto", "port", "peer"},
                         [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
                           auto s = file_.scalar(key, v, k);
                           if (key == "action") {
                             r.action = file_.at(v, [&] { return action_of(s); });
                             has_action = true;
                           } else if (key == "proto") {
                             r.proto = file_.at(v, [&] { return proto_of(s); });
                           } else if (key == "port") {
                             file_.at(v, [&] { set_ports(r, s); });
                             port.emplace(v);
                           } else {
                             r.cidr = file_.at(v, [&] { return resolve_peer(s, resolve_); });
                             r.peer = s;
                           }
                         });
    if (!has_action) file_.fail(n, "a rule needs an action (allow or deny)");
    // Checked after all keys, since proto may come after port.
    if (port) file_.at(*port, [&] { check_port_allowed(r.proto); });
    return r;
  }

  const YamlFile& file_;
  const PeerResolver& resolve_;
  std::string where_;
};

json rule_json(const PolicyRule& r) {
  return {{"action", to_string(r.action)},
          {"proto", to_string(r.proto)},
          {"port_min", r.port_min},
          {"port_max", r.port_max},
          {"peer", r.peer},
          {"cidr", r.cidr.str()}};
}

PolicyRule rule_from_json(const json& j) {
  auto bad = [&] { return Error(Errc::failed, "state: bad policy rule " + j.dump()); };
  PolicyRule r;
  auto action = parse_policy_action(j.at("action").get<std::string>());
  auto proto = parse_proto(j.at("proto").get<std::string>());
  auto cidr = Ipv4Cidr::parse(j.at("cidr").get<std::string>());
  auto lo = j.at("port_min").get<int64_t>(), hi = j.at("port_max").get<int64_t>();
  if (!action || !proto || !cidr || lo < 0 || hi > 65535 || lo > hi) throw bad();
  r.action = *action;
  r.proto = *proto;
  r.port_min = static_cast<uint16_t>(lo);
  r.port_max = static_cast<uint16_t>(hi);
  r.peer = j.at("peer").get<std::string>();
  r.cidr = *cidr;
  return r;
}

}  // namespace

std::string_view to_string(PolicyAction a) { return a == PolicyAction::allow ? "allow" : "deny"; }

std::string_view to_string(PolicyProto p) {
  switch (p) {
    case PolicyProto::tcp: return "tcp";
    case PolicyProto::udp: return "udp";
    case PolicyProto::icmp: return "icmp";
    case PolicyProto::any: break;
  }
  return "any";
}

std::string_view to_string(PolicyDir d) { return d == PolicyDir::ingress ? "ingress" : "egress"; }

std::optional<PolicyAction> parse_policy_action(std::string_view s) {
  if (s == "allow") return PolicyAction::allow;
  if (s == "deny") return PolicyAction::deny;
  return std::nullopt;
}

Policy parse_policy_yaml(std::string_view text, const std::string& source,
                         const PeerResolver& resolve) {
  YamlFile file(source);
  return YamlReader(file, resolve, "at the top level").policy(file.load(text));
}

Policy parse_policy_node(const YAML::Node& n, const YamlFile& file, const PeerResolver& resolve) {
  return YamlReader(file, resolve, "in a policy").policy(n);
}

PolicyRule parse_policy_rule(std::string_view text, PolicyDir dir, const PeerResolver& resolve) {
  try {
    return rule_from_words(words(text), dir, resolve);
  } catch (const Invalid& e) {
    throw Error(Errc::usage, "rule " + in_quotes(text) + ": " + e.reason);
  }
}

std::string format_rule(const PolicyRule& r, PolicyDir dir) {
  std::string s(to_string(r.action));
  if (r.proto != PolicyProto::any) {
    s += " " + std::string(to_string(r.proto));
    if (takes_ports(r.proto) && !(r.port_min == 0 && r.port_max == 65535)) {
      s += " " + std::to_string(r.port_min);
      if (r.port_max != r.port_min) s += "-" + std::to_string(r.port_max);
    }
  }
  if (r.peer != "any") s += (dir == PolicyDir::ingress ? " from " : " to ") + r.peer;
  return s;
}

json to_json(const Policy& p) {
  json out = json::object();
  for (auto dir : {PolicyDir::ingress, PolicyDir::egress}) {
    const auto& d = p.dir(dir);
    json rules = json::array();
    for (const auto& r : d.rules) rules.push_back(rule_json(r));
    out[std::string(to_string(dir))] = {{"default", to_string(d.default_action)}, {"rules", rules}};
  }
  return out;
}

Policy policy_from_json(const json& j) {
  Policy p;
  for (auto dir : {PolicyDir::ingress, PolicyDir::egress}) {
    const json& d = j.at(std::string(to_string(dir)));
    auto def = parse_policy_action(d.at("default").get<std::string>());
    if (!def) throw Error(Errc::failed, "state: bad policy default " + d.at("default").dump());
    p.dir(dir).default_action = *def;
    for (const auto& r : d.at("rules")) p.dir(dir).rules.push_back(rule_from_json(r));
  }
  return p;
}

}  // namespace ebpfnet
