// Counts the node operation a command line runs, for `ebpfnet metrics`
// (ebpfnet_operations_total and its duration): one small file replace
// beside the node's state when the operation ends.
#pragma once

#include <chrono>
#include <string>

#include "cli.hpp"

namespace ebpfnet::cli {

class OperationCount {
 public:
  // Counts only the commands that change a node (attach, endpoint add, ...).
  OperationCount(const CLI::App& app, const Context& ctx);
  OperationCount(const OperationCount&) = delete;
  OperationCount& operator=(const OperationCount&) = delete;
  // An operation that ends by an exception counts as failed.
  ~OperationCount();
  void done(bool ok);

 private:
  const Context& ctx_;
  std::string operation_;  // "" when not counted
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ebpfnet::cli
