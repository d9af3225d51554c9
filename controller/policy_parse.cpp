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
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <set>

#include "ebpfnet/error.hpp"
#include "ebpfnet/policy.hpp"

namespace ebpfnet {

using nlohmann::json;

namespace {

// A reason without its context; the caller adds the file line or the rule.
struct Invalid {
  std::string reason;
};

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

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
  YamlReader(const std::string& source, const PeerResolver& resolve)
      : source_(source), resolve_(resolve) {}

  Policy policy(const YAML::Node& doc) const {
    Policy p;
    if (doc.IsNull()) return p;
    if (!doc.IsMap()) fail(doc, "a policy is a mapping with the keys ingress and egress");
    for_each_entry(doc, "at the top level", {"ingress", "egress"},
                   [&](const std::string& key, const YAML::Node& value, const YAML::Node&) {
                     auto dir = key == "ingress" ? PolicyDir::ingress : PolicyDir::egress;
                     p.dir(dir) = direction(key, value);
                   });
    return p;
  }

  [[noreturn]] void fail(const YAML::Mark& m, const std::string& reason) const {
    throw Error(Errc::usage, source_ + ":" + std::to_string(m.line + 1) + ": " + reason);
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& reason) const {
    fail(n.Mark(), reason);
  }

 private:
  // Runs f, placing an Invalid it throws on the line of n.
  template <class F>
  auto at(const YAML::Node& n, F f) const {
    try {
      return f();
    } catch (const Invalid& e) {
      fail(n, e.reason);
    }
  }

  // Calls f(key, value, key node) for each entry of a mapping, refusing
  // unknown and repeated keys.
  template <class F>
  void for_each_entry(const YAML::Node& map, const std::string& where,
                      std::initializer_list<std::string_view> allowed, F f) const {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) fail(k, "keys " + where + " must be names");
      const std::string& key = k.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(k, "unknown key " + in_quotes(key) + " " + where + " (allowed: " + list + ")");
      }
      if (!seen.insert(key).second) fail(k, "duplicate key " + in_quotes(key));
      f(key, kv.second, k);
    }
  }

  // A single value; a missing one is reported on its key's line.
  std::string scalar(const std::string& key, const YAML::Node& value, const YAML::Node& k) const {
    if (!value.IsScalar()) fail(value.IsNull() ? k : value, key + " must be a single value");
    return value.Scalar();
  }

  DirectionPolicy direction(const std::string& name, const YAML::Node& n) const {
    DirectionPolicy d;
    if (n.IsNull()) return d;
    if (!n.IsMap()) fail(n, name + " must be a mapping with the keys default and rules");
    for_each_entry(n, "in " + name, {"default", "rules"},
                   [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
                     if (key == "default") {
                       auto s = scalar(key, v, k);
                       d.default_action = at(v, [&] { return action_of(s); });
                       return;
                     }
                     if (v.IsNull()) return;
                     if (!v.IsSequence()) fail(v, "rules must be a list");
                     for (const auto& item : v) d.rules.push_back(rule(item));
                   });
    return d;
  }

  PolicyRule rule(const YAML::Node& n) const {
    if (!n.IsMap()) fail(n, "a rule must be a mapping with the keys action, proto, port, peer");
    PolicyRule r;
    bool has_action = false;
    std::optional<YAML::Node> port;
    for_each_entry(n, "in a rule", {"action", "proto", "port", "peer"},
                   [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
                     auto s = scalar(key, v, k);
                     if (key == "action") {
                       r.action = at(v, [&] { return action_of(s); });
                       has_action = true;
                     } else if (key == "proto") {
                       r.proto = at(v, [&] { return proto_of(s); });
                     } else if (key == "port") {
                       at(v, [&] { set_ports(r, s); });
                       port.emplace(v);
                     } else {
                       r.cidr = at(v, [&] { return resolve_peer(s, resolve_); });
                       r.peer = s;
                     }
                   });
    if (!has_action) fail(n, "a rule needs an action (allow or deny)");
    // Checked after all keys, since proto may come after port.
    if (port) at(*port, [&] { check_port_allowed(r.proto); });
    return r;
  }

  const std::string& source_;
  const PeerResolver& resolve_;
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
  YamlReader reader(source, resolve);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    reader.fail(e.mark, e.msg);
  }
  if (docs.empty()) return {};
  if (docs.size() > 1) reader.fail(docs[1], "more than one YAML document");
  return reader.policy(docs[0]);
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
