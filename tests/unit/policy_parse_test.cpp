#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/policy.hpp"

namespace ebpfnet {
namespace {

Ipv4 ip(const char* s) { return *Ipv4::parse(s); }
Ipv4Cidr cidr(const char* s) { return *Ipv4Cidr::parse(s); }

std::optional<Ipv4> fake_endpoints(std::string_view name) {
  static const std::map<std::string, Ipv4, std::less<>> eps = {{"web", ip("10.240.0.5")},
                                                               {"db", ip("10.240.0.9")}};
  auto it = eps.find(name);
  if (it == eps.end()) return std::nullopt;
  return it->second;
}

Policy parse(const std::string& text) {
  return parse_policy_yaml(text, "pol.yaml", fake_endpoints);
}

TEST(PolicyParse, ReadsEveryField) {
  Policy p = parse(R"(# a comment
ingress:
  default: deny
  rules:
    - action: allow
      proto: tcp
      port: 80
      peer: 10.0.0.0/8
    - peer: web
      port: "8000-8080"
      proto: udp
      action: allow
    - action: deny
      proto: icmp
      peer: 192.0.2.7
    - action: allow
      proto: any
      peer: any
egress:
  default: allow
  rules: []
)");
  EXPECT_EQ(p.ingress.default_action, PolicyAction::deny);
  ASSERT_EQ(p.ingress.rules.size(), 4u);
  const auto& r = p.ingress.rules;
  EXPECT_EQ(r[0].action, PolicyAction::allow);
  EXPECT_EQ(r[0].proto, PolicyProto::tcp);
  EXPECT_EQ(r[0].port_min, 80);
  EXPECT_EQ(r[0].port_max, 80);
  EXPECT_EQ(r[0].peer, "10.0.0.0/8");
  EXPECT_EQ(r[0].cidr, cidr("10.0.0.0/8"));
  EXPECT_EQ(r[1].proto, PolicyProto::udp);
  EXPECT_EQ(r[1].port_min, 8000);
  EXPECT_EQ(r[1].port_max, 8080);
  EXPECT_EQ(r[1].peer, "web");
  EXPECT_EQ(r[1].cidr, cidr("10.240.0.5/32"));
  EXPECT_EQ(r[2].action, PolicyAction::deny);
  EXPECT_EQ(r[2].proto, PolicyProto::icmp);
  EXPECT_EQ(r[2].port_min, 0);
  EXPECT_EQ(r[2].port_max, 65535);
  EXPECT_EQ(r[2].cidr, cidr("192.0.2.7/32"));
  EXPECT_EQ(r[3].proto, PolicyProto::any);
  EXPECT_EQ(r[3].peer, "any");
  EXPECT_EQ(r[3].cidr, cidr("0.0.0.0/0"));
  EXPECT_EQ(p.egress, DirectionPolicy{});
}

TEST(PolicyParse, JsonIsAccepted) {
  Policy p = parse(R"({"egress": {"default": "deny",
  "rules": [{"action": "allow", "proto": "udp", "port": 53, "peer": "db"},
            {"action": "allow", "proto": "tcp", "port": "1-1024"}]}})");
  EXPECT_EQ(p.ingress, DirectionPolicy{});
  EXPECT_EQ(p.egress.default_action, PolicyAction::deny);
  ASSERT_EQ(p.egress.rules.size(), 2u);
  EXPECT_EQ(p.egress.rules[0].cidr, cidr("10.240.0.9/32"));
  EXPECT_EQ(p.egress.rules[0].port_min, 53);
  EXPECT_EQ(p.egress.rules[1].port_min, 1);
  EXPECT_EQ(p.egress.rules[1].port_max, 1024);
  EXPECT_EQ(p.egress.rules[1].cidr, cidr("0.0.0.0/0"));
}

TEST(PolicyParse, EmptyDocumentsAreEmptyPolicies) {
  for (const char* text : {"", "# nothing\n", "ingress:\negress:\n", "ingress:\n  rules:\n", "{}"})
    EXPECT_EQ(parse(text), Policy{}) << text;
}

struct BadFile {
  const char* text;
  int line;
  const char* reason;
};

TEST(PolicyParse, RejectsBadFilesNamingTheLine) {
  const BadFile cases[] = {
      {"ingres:\n  default: deny\n", 1,
       "unknown key 'ingres' at the top level (allowed: ingress, egress)"},
      {"ingress:\n  default: deny\n  defaults: allow\n", 3,
       "unknown key 'defaults' in ingress (allowed: default, rules)"},
      {"egress:\n  rules:\n    - action: allow\n\n      prot: tcp\n", 5,
       "unknown key 'prot' in a rule (allowed: action, proto, port, peer)"},
      {"ingress: {}\negress: {}\ningress: {}\n", 3, "duplicate key 'ingress'"},
      {"- ingress\n", 1, "a policy is a mapping"},
      {"ingress: deny\n", 1, "ingress must be a mapping"},
      {"ingress:\n  rules: allow\n", 2, "rules must be a list"},
      {"ingress:\n  rules:\n    - allow tcp 80\n", 3, "a rule must be a mapping"},
      {"ingress:\n  rules:\n    - action: allow\n    - proto: tcp\n      port: 80\n", 4,
       "a rule needs an action"},
      {"ingress:\n  rules:\n    - action: permit\n", 3,
       "'permit' is not an action (allow or deny)"},
      {"ingress:\n  rules:\n    - action: [allow]\n", 3, "action must be a single value"},
      {"ingress:\n  rules:\n    - action:\n", 3, "action must be a single value"},
      {"egress:\n  default: maybe\n", 2, "'maybe' is not an action"},
      {"egress:\n  default:\n    - deny\n", 3, "default must be a single value"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: sctp\n", 4,
       "'sctp' is not a protocol (tcp, udp, icmp or any)"},
      {"ingress:\n  rules:\n    - action: allow\n      peer: 10.0.0.1/8\n", 4,
       "'10.0.0.1/8' has host bits set; did you mean 10.0.0.0/8?"},
      {"ingress:\n  rules:\n    - action: allow\n      peer: 10.0.0.0/33\n", 4, "is not a CIDR"},
      {"ingress:\n  rules:\n    - action: allow\n      peer: nosuch\n", 4,
       "no endpoint named 'nosuch'"},
      {"ingress:\n  rules:\n    - action: allow\n      peer: ''\n", 4, "the peer is empty"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: tcp\n      port: 0\n", 5,
       "port 0 is out of range (1-65535)"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: tcp\n      port: 65536\n", 5,
       "port 65536 is out of range"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: udp\n      port: 99999999999\n", 5,
       "out of range"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: tcp\n      port: 2000-1000\n", 5,
       "port range 2000-1000 ends below its start"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: tcp\n      port: http\n", 5,
       "'http' is not a port or a range LO-HI"},
      {"ingress:\n  rules:\n    - action: allow\n      proto: tcp\n      port: 80-\n", 5,
       "'80-' is not a port"},
      {"ingress:\n  rules:\n    - action: allow\n      port: 80\n", 4,
       "a port needs proto tcp or udp, not any"},
      {"ingress:\n  rules:\n    - port: 80\n      proto: icmp\n      action: allow\n", 3,
       "a port needs proto tcp or udp, not icmp"},
      // yaml-cpp finds the unclosed list at the end of the text.
      {"ingress:\n  default: [deny\n", 3, "end of sequence flow not found"},
      {"ingress:\n  rules:\n\t- action: allow\n", 3, "illegal block entry"},
      {"ingress: {}\n---\negress: {}\n", 3, "more than one YAML document"},
      {"{\"ingress\": {\"default\": \"deny\",\n  \"rules\": [{\"action\": \"alow\"}]}}", 2,
       "'alow' is not an action"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      parse(c.text);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::usage);
      std::string what = e.what(), prefix = "pol.yaml:" + std::to_string(c.line) + ": ";
      EXPECT_EQ(what.substr(0, prefix.size()), prefix) << what;
      EXPECT_NE(what.find(c.reason), std::string::npos) << what;
    }
  }
}

struct RuleText {
  const char* text;
  PolicyDir dir;
  const char* canonical;
};

TEST(PolicyRuleSyntax, FormatsTheCanonicalFormAndReadsItBack) {
  const RuleText cases[] = {
      {"allow tcp 80 from 10.0.0.0/8", PolicyDir::ingress, "allow tcp 80 from 10.0.0.0/8"},
      {"deny udp 1000-2000", PolicyDir::ingress, "deny udp 1000-2000"},
      {"allow icmp from web", PolicyDir::ingress, "allow icmp from web"},
      {"deny any to 192.0.2.7", PolicyDir::egress, "deny to 192.0.2.7"},
      {"allow", PolicyDir::ingress, "allow"},
      {"allow any from any", PolicyDir::ingress, "allow"},
      {"  allow \t tcp  80  ", PolicyDir::egress, "allow tcp 80"},
      {"allow tcp 80-80", PolicyDir::ingress, "allow tcp 80"},
      {"allow tcp 1-65535", PolicyDir::ingress, "allow tcp 1-65535"},
      {"deny tcp", PolicyDir::egress, "deny tcp"},
      {"allow udp 53 to db", PolicyDir::egress, "allow udp 53 to db"},
      {"deny from 0.0.0.0/0", PolicyDir::ingress, "deny from 0.0.0.0/0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    PolicyRule r = parse_policy_rule(c.text, c.dir, fake_endpoints);
    EXPECT_EQ(format_rule(r, c.dir), c.canonical);
    EXPECT_EQ(parse_policy_rule(c.canonical, c.dir, fake_endpoints), r);
  }
  PolicyRule r = parse_policy_rule("allow udp 53-54 to db", PolicyDir::egress, fake_endpoints);
  EXPECT_EQ(r.action, PolicyAction::allow);
  EXPECT_EQ(r.proto, PolicyProto::udp);
  EXPECT_EQ(r.port_min, 53);
  EXPECT_EQ(r.port_max, 54);
  EXPECT_EQ(r.peer, "db");
  EXPECT_EQ(r.cidr, cidr("10.240.0.9/32"));
  EXPECT_EQ(parse_policy_rule("deny from 10.1.2.3", PolicyDir::ingress, fake_endpoints).cidr,
            cidr("10.1.2.3/32"));
}

struct BadRule {
  const char* text;
  PolicyDir dir;
  const char* reason;
};

TEST(PolicyRuleSyntax, RejectsBadRules) {
  const BadRule cases[] = {
      {"", PolicyDir::ingress, "empty; expected ACTION [PROTO [PORT|LO-HI]] [from PEER]"},
      {"  ", PolicyDir::egress, "empty; expected ACTION [PROTO [PORT|LO-HI]] [to PEER]"},
      {"permit tcp", PolicyDir::ingress, "'permit' is not an action (allow or deny)"},
      {"Allow", PolicyDir::ingress, "'Allow' is not an action"},
      {"allow sctp", PolicyDir::ingress, "'sctp' is not a protocol"},
      {"allow 80", PolicyDir::ingress, "'80' is not a protocol"},
      {"allow icmp 8", PolicyDir::ingress, "a port needs proto tcp or udp, not icmp"},
      {"allow any 80", PolicyDir::ingress, "a port needs proto tcp or udp, not any"},
      {"allow tcp 0", PolicyDir::ingress, "port 0 is out of range (1-65535)"},
      {"allow tcp 65536", PolicyDir::ingress, "port 65536 is out of range"},
      {"allow tcp 90-80", PolicyDir::ingress, "port range 90-80 ends below its start"},
      {"allow tcp -80", PolicyDir::ingress, "'-80' is not a port or a range LO-HI"},
      {"allow tcp 80 to 10.0.0.1", PolicyDir::ingress,
       "an ingress rule names its peer with 'from', not 'to'"},
      {"allow from 10.0.0.1", PolicyDir::egress,
       "an egress rule names its peer with 'to', not 'from'"},
      {"allow from", PolicyDir::ingress, "'from' needs a peer"},
      {"allow from 10.0.0.1/8", PolicyDir::ingress, "has host bits set; did you mean 10.0.0.0/8?"},
      {"allow from nosuch", PolicyDir::ingress, "no endpoint named 'nosuch'"},
      {"allow tcp 80 90", PolicyDir::ingress, "unexpected '90'"},
      {"allow from web db", PolicyDir::ingress, "unexpected 'db'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      parse_policy_rule(c.text, c.dir, fake_endpoints);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::usage);
      std::string what = e.what(), prefix = "rule '" + std::string(c.text) + "': ";
      EXPECT_EQ(what.substr(0, prefix.size()), prefix) << what;
      EXPECT_NE(what.find(c.reason), std::string::npos) << what;
    }
  }
}

TEST(PolicyRuleSyntax, ActionsAndNames) {
  EXPECT_EQ(parse_policy_action("allow"), PolicyAction::allow);
  EXPECT_EQ(parse_policy_action("deny"), PolicyAction::deny);
  EXPECT_FALSE(parse_policy_action("drop"));
  EXPECT_EQ(to_string(PolicyAction::deny), "deny");
  EXPECT_EQ(to_string(PolicyProto::icmp), "icmp");
  EXPECT_EQ(to_string(PolicyDir::egress), "egress");
  EXPECT_EQ(static_cast<int>(PolicyDir::egress), EBPFNET_EGRESS);
  EXPECT_EQ(static_cast<int>(PolicyAction::deny), EBPFNET_POLICY_DENY);
}

TEST(PolicyJson, RoundTripsKeepingPeerAndAddress) {
  Policy p = parse(R"(
ingress:
  default: deny
  rules:
    - {action: allow, proto: tcp, port: 80-90, peer: web}
    - {action: deny, proto: icmp, peer: 10.0.0.0/8}
egress:
  rules:
    - {action: deny, proto: udp, port: 53}
)");
  nlohmann::json j = nlohmann::json::parse(to_json(p).dump());
  EXPECT_EQ(j["ingress"]["rules"][0]["peer"], "web");
  EXPECT_EQ(j["ingress"]["rules"][0]["cidr"], "10.240.0.5/32");
  // Read back without a resolver: the address is the one saved.
  EXPECT_EQ(policy_from_json(j), p);
  EXPECT_EQ(policy_from_json(to_json(Policy{})), Policy{});
}

TEST(PolicyJson, RejectsBadValues) {
  nlohmann::json good =
      to_json(parse("ingress:\n  rules:\n    - {action: allow, proto: tcp, port: 80}\n"));
  ASSERT_NO_THROW(policy_from_json(good));
  const std::pair<const char*, nlohmann::json> edits[] = {
      {"action", "maybe"}, {"proto", "sctp"}, {"cidr", "10.0.0.1/8"},
      {"port_max", 70000}, {"port_min", 90},
  };
  for (const auto& [field, value] : edits) {
    SCOPED_TRACE(field);
    nlohmann::json j = good;
    j["ingress"]["rules"][0][field] = value;
    try {
      policy_from_json(j);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::failed);
      EXPECT_NE(std::string(e.what()).find("state: bad policy rule"), std::string::npos)
          << e.what();
    }
  }
  nlohmann::json j = good;
  j["egress"]["default"] = "maybe";
  EXPECT_THROW(policy_from_json(j), Error);
}

}  // namespace
}  // namespace ebpfnet
