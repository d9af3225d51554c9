// An endpoint's policy in the datapath maps: compiled rule sets written
// beside any old ones, then switched to with one ep_policy update.
#pragma once

#include "ebpfnet/endpoint_table.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet {

// Resolves endpoint names against the table (which must outlive the resolver).
PeerResolver endpoint_resolver(EndpointTable& table);

// Picks ids for p's rule sets from counters (advancing them).
PolicyIds allocate_policy_ids(const Policy& p, PolicyIdCounters& counters);

// Writes p's rule sets under ids; on failure removes what it wrote and
// rethrows. Nothing points at them until switch_policy.
void write_rule_sets(DatapathMaps& maps, const Policy& p, const PolicyIds& ids);

// Removes the rule sets written for p under ids (missing entries are fine).
void erase_rule_sets(DatapathMaps& maps, const Policy& p, const PolicyIds& ids);

// Points the endpoint at the rule sets under ids: one map update, so each
// connection sees the old policy or the new one, never a mix.
void switch_policy(DatapathMaps& maps, Ipv4 endpoint, const Policy& p, const PolicyIds& ids);

// Takes the endpoint's policy out of the datapath: its traffic is allowed.
void remove_policy(DatapathMaps& maps, Ipv4 endpoint, const Policy& p, const PolicyIds& ids);

// Entries p's rule sets take, for `policy show`.
PolicySize policy_size(const Policy& p, const PolicyIds& ids);

}  // namespace ebpfnet
