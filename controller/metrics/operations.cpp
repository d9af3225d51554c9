#include "ebpfnet/metrics/operations.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "ebpfnet/state.hpp"

namespace ebpfnet::metrics {
namespace {

constexpr const char* kFile = "ops.json";

OperationTally parse(const std::optional<std::string>& text) {
  OperationTally t;
  if (!text) return t;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j["operations"].is_object()) return t;
  for (const auto& [op, v] : j["operations"].items()) {
    if (!v.is_object()) continue;
    t[op] = {v.value("ok", uint64_t{0}), v.value("failed", uint64_t{0}), v.value("seconds", 0.0)};
  }
  return t;
}

std::string dump(const OperationTally& t) {
  nlohmann::json ops = nlohmann::json::object();
  for (const auto& [op, s] : t) ops[op] = {{"ok", s.ok}, {"failed", s.failed}, {"seconds", s.seconds}};
  return nlohmann::json{{"version", 1}, {"operations", ops}}.dump() + "\n";
}

}  // namespace

void record_operation(const Env& env, const std::string& node, const std::string& operation, bool ok,
                      double seconds) {
  StateStore(env.state_root, node).update_file(kFile, [&](const std::optional<std::string>& old) {
    OperationTally t = parse(old);
    OperationStats& s = t[operation];
    (ok ? s.ok : s.failed) += 1;
    s.seconds += seconds;
    return dump(t);
  });
}

OperationTally read_operations(const Env& env, const std::string& node) {
  try {
    return parse(StateStore(env.state_root, node).read_file(kFile));
  } catch (const std::exception& e) {
    spdlog::warn("metrics: operation counts of node {} not read: {}", node, e.what());
    return {};
  }
}

}  // namespace ebpfnet::metrics
