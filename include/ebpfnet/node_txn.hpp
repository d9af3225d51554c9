// One operation on a node: its lock, its state, its pinned maps, the undo of
// what the operation did so far, and the commit that saves the state. Every
// operation begins here (the constructor) and ends here (commit), so what
// every transaction must do is added in one place, not in each operation.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/state.hpp"
#include "ebpfnet/undo.hpp"

namespace ebpfnet {

// The pinned maps of a node; Errc::not_found when its datapath is not attached.
DatapathMaps attached_maps(const Node& node);

class NodeTxn {
 public:
  enum class Begin {
    existing,   // the node must have state: Errc::not_found otherwise
    create,     // the node's directory is made when missing, and removed again unless committed
    if_exists,  // a node without state is no error: nothing is locked, has_state() is false
  };
  explicit NodeTxn(const Node& node, Begin how = Begin::existing, Checkpoint cp = {});
  NodeTxn(const NodeTxn&) = delete;
  NodeTxn& operator=(const NodeTxn&) = delete;

  const Node& node() const { return node_; }
  bool has_state() const { return has_state_; }
  NodeState& state() { return state_; }

  DatapathMaps& maps();
  // nullptr when the datapath is not attached: removals go on without it.
  DatapathMaps* maps_if_attached();

  // Called before each step, with the step's name (tests fail an operation there).
  void step(std::string_view name) const;
  // An operation that runs another first (add_endpoint attaching) checks only its own steps.
  void set_checkpoint(Checkpoint cp) { cp_ = std::move(cp); }
  void undo(std::string what, std::function<void()> step) { undo_.push(std::move(what), std::move(step)); }
  // Keeps what undo steps refer to until they have run.
  template <class T>
  T& hold(T value) {
    auto p = std::make_shared<T>(std::move(value));
    held_.push_back(p);
    return *p;
  }

  // Saves the state and keeps what was done. Later steps may follow and
  // commit again: each commit makes what came before it last.
  void commit();
  // Ends the node instead: its state goes.
  void commit_removal();

 private:
  const Node& node_;
  const StateStore& store_;
  std::optional<StateStore::Lock> lock_;
  bool has_state_ = false;
  NodeState state_;
  Checkpoint cp_;
  bool maps_opened_ = false;
  std::optional<DatapathMaps> maps_;
  std::vector<std::shared_ptr<void>> held_;
  Undo undo_;  // last, so its steps run while everything above exists
};

}  // namespace ebpfnet
