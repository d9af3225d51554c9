// Declarative node configuration: a node.yaml describes a node's whole
// desired state (pool, uplink, conntrack, published ports, routes,
// policies); apply computes the plan that converges the node to it and
// carries it out through the Node facade, one transactional operation per
// change. Parsing and planning are pure (no root, no kernel), so they are
// unit-tested; only carry_out touches the node. The file format is in
// controller/apply/node_yaml.cpp and docs/apply.md.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/node.hpp"
#include "ebpfnet/policy.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet::apply {

// The node's way out, as node.yaml says it.
struct UplinkSpec {
  enum class Kind { none, interface, sandbox, outside } kind = Kind::none;
  std::string name;  // the interface (interface) or the outside namespace to join (outside)
  int line = 0;
};

struct PublishSpec {
  PublishRecord rec;
  int line = 0;
};

struct RouteSpec {
  RouteRecord rec;
  int line = 0;
};

struct PrefilterSpec {
  Ipv4Cidr cidr;  // an address is its /32
  int line = 0;
};

struct ServiceEntry {
  ServiceSpec spec;
  int line = 0;
};

struct PolicySpec {
  std::string endpoint;
  Policy policy;  // endpoint-name peers resolved against the node's state
  int line = 0;
};

// A parsed node.yaml. Lines are 1-based lines of the file, so checks made
// against the node later still report "FILE:LINE: reason".
struct NodeSpec {
  std::string source;  // the file, as errors name it
  std::string node;
  int node_line = 0;
  bool sandbox = true;
  Ipv4Cidr pool;
  int pool_line = 0;
  UplinkSpec uplink;
  uint32_t ct_size = NodeState{}.ct_size;  // omitted: the defaults, like a new node's
  CtTimeouts ct_timeouts;
  std::vector<PublishSpec> published;
  std::vector<RouteSpec> routes;
  std::vector<PolicySpec> policies;
  std::vector<PrefilterSpec> prefilter;  // sources the uplink's XDP prefilter drops
  std::vector<ServiceEntry> services;
};

// How policy peers that name endpoints are resolved: against the state of
// the node the file names (which the parser learns from the file).
using ResolverFor = std::function<PeerResolver(const std::string& node)>;

// Errors are Errc::usage, "SOURCE:LINE: reason": syntax, unknown keys,
// wrong types, bad prefixes, addresses and ports, duplicates.
NodeSpec parse_node_yaml(std::string_view text, const std::string& source, const ResolverFor& resolver_for);

// What is pinned for the node, as far as the plan cares.
struct DatapathFacts {
  uint32_t abi = 0;      // of the pinned datapath; 0: nothing is pinned
  bool current = false;  // the pinned programs are this binary's
  size_t stale = 0;      // attachments (endpoints, uplink) not running them, missing ones included
};

// One line of the plan, as --diff shows it.
struct Change {
  enum class Op { add, remove, change } op = Op::add;
  std::string kind;                  // node, datapath, uplink, conntrack, published, route, policy, prefilter, service
  std::string what;                  // e.g. "tcp 8080 -> web:80"
  std::vector<std::string> details;  // e.g. the rules a policy change adds and removes
};
char symbol(Change::Op op);  // '+', '-', '~'

// The changes, as --diff lists them (node and datapath first, then
// published ports, routes and policies, each removals first), and what
// carry_out does for them, in the order it does it.
struct Plan {
  std::string node;
  std::vector<Change> changes;

  bool create = false;  // a sandbox node that does not exist yet
  Ipv4Cidr pool;
  bool uplink_sandbox = false;
  std::string outside;  // join this outside at creation ("" : make the node's own)
  std::optional<AttachOptions> attach;
  // Removals first, so a port or route moved to another target is free again.
  std::vector<PublishRecord> unexpose;
  std::vector<Ipv4Cidr> route_del;
  std::vector<std::string> policy_del;
  std::vector<RouteRecord> route_add;
  std::vector<PublishRecord> expose;
  std::vector<std::pair<std::string, Policy>> policy_set;
  // The whole deny list, when it differs from the node's (one operation).
  std::optional<std::vector<Ipv4Cidr>> prefilter;
  // A service that differs from the file's is deleted and added again.
  std::vector<std::string> service_del;
  std::vector<ServiceSpec> service_add;

  bool empty() const { return changes.empty(); }
};

// The node as apply finds it: its state and its endpoints' records.
struct CurrentNode : NodeState {
  std::vector<EndpointRecord> endpoints;
  EndpointRecord* find(std::string_view endpoint) {
    for (auto& e : endpoints)
      if (e.name == endpoint) return &e;
    return nullptr;
  }
};

// The diff between the node (nullopt: it does not exist yet) and the file.
// What apply cannot converge is refused here, before anything changes,
// as "SOURCE:LINE: reason": an endpoint that does not exist (Errc::not_found),
// a different pool or uplink than the node has (Errc::usage). services: the
// ones the node has (its services table).
Plan make_plan(const NodeSpec& want, const std::optional<CurrentNode>& have, const DatapathFacts& dp,
               const std::vector<ServiceRecord>& services = {});

// Reads the node the file names and plans. node: the --node the user gave,
// which must be the file's.
Plan plan_file(const Env& env, std::string_view text, const std::string& source,
               const std::optional<std::string>& node = std::nullopt);

// Makes the plan's changes through the Node facade, in order. Each is an
// operation that undoes itself on failure; a failure stops the apply with
// the change it was making named, and what came before stays applied, so
// running apply again finishes it.
void carry_out(const Env& env, const Plan& plan);

}  // namespace ebpfnet::apply
