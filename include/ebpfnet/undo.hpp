// Undo steps of a transactional operation: each step that succeeded pushes
// how to take itself back; unless commit() is reached, the destructor runs
// them newest first. A failing undo step is logged, never thrown.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace ebpfnet {

class Undo {
 public:
  Undo() = default;
  Undo(const Undo&) = delete;
  Undo& operator=(const Undo&) = delete;
  ~Undo();

  void push(std::string what, std::function<void()> step);
  void commit() { steps_.clear(); }
  // Runs the steps now; false when one of them failed.
  bool rollback();

 private:
  std::vector<std::pair<std::string, std::function<void()>>> steps_;
};

}  // namespace ebpfnet
