#include "ebpfnet/undo.hpp"

#include <spdlog/spdlog.h>

#include <exception>

namespace ebpfnet {

Undo::~Undo() { rollback(); }

bool Undo::rollback() {
  bool clean = true;
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
    try {
      it->second();
    } catch (const std::exception& e) {
      spdlog::warn("undoing {}: {}", it->first, e.what());
      clean = false;
    }
  }
  steps_.clear();
  return clean;
}

void Undo::push(std::string what, std::function<void()> step) {
  steps_.emplace_back(std::move(what), std::move(step));
}

}  // namespace ebpfnet
