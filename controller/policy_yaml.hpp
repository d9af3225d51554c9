// A policy inside a larger YAML file (node.yaml's policies), read by the
// same parser as a policy file so both speak one rule language, with
// errors on the larger file's lines.
#pragma once

#include "ebpfnet/policy.hpp"
#include "yaml_file.hpp"

namespace ebpfnet {

Policy parse_policy_node(const YAML::Node& n, const YamlFile& file, const PeerResolver& resolve);

}  // namespace ebpfnet
