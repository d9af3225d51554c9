// Network policy: rules per direction, their text forms (YAML files, one-line
// rules, the state file's JSON) and their compilation into the policy_cidr /
// policy_port LPM tries of abi.h.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ebpfnet/abi.h"
#include "ebpfnet/ipv4.hpp"

namespace ebpfnet {

static_assert(sizeof(ebpfnet_policy_cidr_key) == 12,
              "abi.h: ebpfnet_policy_cidr_key layout changed");
static_assert(sizeof(ebpfnet_policy_port_key) == 12,
              "abi.h: ebpfnet_policy_port_key layout changed");
static_assert(sizeof(ebpfnet_policy_verdict) == 8, "abi.h: ebpfnet_policy_verdict layout changed");

enum class PolicyAction { allow = EBPFNET_POLICY_ALLOW, deny = EBPFNET_POLICY_DENY };
enum class PolicyProto { any, tcp, udp, icmp };
enum class PolicyDir { ingress = EBPFNET_INGRESS, egress = EBPFNET_EGRESS };

struct PolicyRule {
  PolicyAction action = PolicyAction::allow;
  PolicyProto proto = PolicyProto::any;
  uint16_t port_min = 0, port_max = 65535;  // tcp/udp only; 0-65535 = every port
  std::string peer = "any";  // as written: any, CIDR, IPv4 (= /32) or an endpoint name
  Ipv4Cidr cidr{};           // resolved; 0.0.0.0/0 for any
  bool operator==(const PolicyRule&) const = default;
};

struct DirectionPolicy {
  PolicyAction default_action = PolicyAction::allow;
  std::vector<PolicyRule> rules;
  bool operator==(const DirectionPolicy&) const = default;
};

struct Policy {
  DirectionPolicy ingress, egress;
  DirectionPolicy& dir(PolicyDir d) { return d == PolicyDir::ingress ? ingress : egress; }
  const DirectionPolicy& dir(PolicyDir d) const {
    return d == PolicyDir::ingress ? ingress : egress;
  }
  bool operator==(const Policy&) const = default;
};

// Endpoint name -> its address; nullopt when there is no such endpoint.
using PeerResolver = std::function<std::optional<Ipv4>(std::string_view)>;

// A policy file (YAML or JSON; format in policy_parse.cpp). Errors are
// Errc::usage, "<source>:<line>: <reason>".
Policy parse_policy_yaml(std::string_view text, const std::string& source,
                         const PeerResolver& resolve);

// "ACTION [PROTO [PORT|LO-HI]] [from PEER]" (ingress) or "... [to PEER]"
// (egress). Errors are Errc::usage, "rule 'TEXT': <reason>".
PolicyRule parse_policy_rule(std::string_view text, PolicyDir dir, const PeerResolver& resolve);
std::optional<PolicyAction> parse_policy_action(std::string_view s);  // "allow" / "deny"

// The canonical one-line form; parse_policy_rule reads it back.
std::string format_rule(const PolicyRule& rule, PolicyDir dir);

std::string_view to_string(PolicyAction a);
std::string_view to_string(PolicyProto p);
std::string_view to_string(PolicyDir d);

// The state file's form: keeps the peer as written and the address it
// resolved to, so a rule means what it meant when it was given.
nlohmann::json to_json(const Policy& p);
Policy policy_from_json(const nlohmann::json& j);  // throws Errc::failed on bad values

// One direction's rules as entries of policy_cidr and policy_port.
struct CompiledSet {
  std::vector<std::pair<ebpfnet_policy_cidr_key, uint32_t>> cidrs;
  std::vector<std::pair<ebpfnet_policy_port_key, ebpfnet_policy_verdict>> ports;
  uint32_t classes = 0;  // class ids used: first_class .. first_class+classes-1
};
CompiledSet compile_policy(const DirectionPolicy& d, uint32_t set_id, uint32_t first_class);

struct PolicyDecision {
  PolicyAction action;
  uint32_t rule;  // 1-based; 0: the default decided
};

// The semantics the compiled tries implement. A rule matches a packet when
// the peer (source for ingress, destination for egress) is in its cidr, its
// proto is any or the packet's, and, for a tcp/udp rule, the destination
// port is in [port_min, port_max]. Of the matching rules the longest cidr
// decides, at equal length deny beats allow, then the earliest rule wins; no
// match: the default. Protocols other than tcp, udp and icmp match only
// proto any; dport is ignored for them.
PolicyDecision evaluate_policy(const DirectionPolicy& d, Ipv4 peer, uint8_t ip_proto,
                               uint16_t dport);

}  // namespace ebpfnet
