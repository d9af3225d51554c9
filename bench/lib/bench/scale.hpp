// A dense node: N endpoints on one sandbox node, added in rows from the
// command line, listed, asked for status, probed between random pairs and
// deleted; with the CLI's peak memory and what each endpoint costs the
// kernel and ebpfnet itself.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace ebpfnet::bench {

struct ScaleSample {
  std::string metric;  // scale_*
  double value = 0;
};

struct ScaleConfig {
  std::string prefix;
  std::filesystem::path ebpfnet_bin, state_dir;
  int endpoints = 10000;
  int row = 1000;   // endpoints per `endpoint add` / `endpoint del`
  int pairs = 20;   // random pairs probed with ICMP
};

// Calls emit for each sample; removes everything it made, also on failure.
void run_scale(const ScaleConfig& cfg, const std::function<void(const ScaleSample&)>& emit,
               const std::function<void(const std::string&)>& progress);

}  // namespace ebpfnet::bench
