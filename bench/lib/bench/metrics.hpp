// The metrics the bench reports: ids, the --only group that measures them,
// units, which direction is better, and what each figure is compared with.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ebpfnet::bench {

struct MetricDef {
  std::string id;     // key in results.json
  std::string group;  // --only name: tput, pps, rr, crr, rules, cp
  std::string title;
  std::string unit;
  bool higher_better = true;
};

const std::vector<MetricDef>& metric_defs();
const MetricDef* find_metric(const std::string& id);
// The --only groups, in the order they run, with a line of help each.
const std::vector<std::pair<std::string, std::string>>& metric_groups();
// Groups the default run leaves out (they take minutes): only with --only.
const std::vector<std::string>& opt_in_groups();

// The summary rows of a list of samples ({round, metric, datapath, rules?,
// value}): per (metric, datapath, rules) the median, min and max, and ratios
// computed round by round against the baselines of the same rounds:
// `direct` and `bridge` for datapath metrics; the same datapath at 0 rules
// and bridge-iptables at the same rules for rule scaling; `ip` and
// `ip-batch` and `ip-batch+attach` for the control plane.
nlohmann::json summarize_samples(const nlohmann::json& samples);

}  // namespace ebpfnet::bench
