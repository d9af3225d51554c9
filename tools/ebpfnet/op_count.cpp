#include "op_count.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <string_view>

#include "ebpfnet/metrics/operations.hpp"

namespace ebpfnet::cli {
namespace {

// Commands that change a node named by --node (node create and delete name
// theirs otherwise; reading commands are not operations).
constexpr std::array<std::string_view, 17> kCounted = {
    "attach",        "endpoint add",  "endpoint del",    "expose",        "unexpose",      "route add",
    "route del",     "policy set",    "policy del",      "conntrack flush", "prefilter add", "prefilter del",
    "service add",   "service del",   "service backend", "service drain", "service backend-del"};

std::string command_of(const CLI::App& app) {
  std::string name;
  for (const CLI::App* a = &app; !a->get_subcommands().empty();) {
    a = a->get_subcommands().front();
    name += (name.empty() ? "" : " ") + a->get_name();
  }
  return name;
}

}  // namespace

OperationCount::OperationCount(const CLI::App& app, const Context& ctx)
    : ctx_(ctx), start_(std::chrono::steady_clock::now()) {
  const std::string cmd = command_of(app);
  for (auto c : kCounted)
    if (cmd == c) operation_ = cmd;
}

OperationCount::~OperationCount() { done(false); }

void OperationCount::done(bool ok) {
  if (operation_.empty()) return;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  try {
    metrics::record_operation(ctx_.env, ctx_.node, operation_, ok, secs);
  } catch (const std::exception& e) {
    // Counting must never fail the operation it counts.
    spdlog::info("operation not counted for metrics: {}", e.what());
  }
  operation_.clear();
}

}  // namespace ebpfnet::cli
