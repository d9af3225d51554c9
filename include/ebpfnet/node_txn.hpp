// One operation on a node: its lock, its state, its pinned maps, its journal,
// the undo of what the operation did so far, and the commit that saves the
// state. Every operation begins here (the constructor) and ends here
// (commit), so what every transaction must do is added in one place, not in
// each operation.
//
// Crash safety: an operation that changes anything beyond the state writes
// a journal first (journal()); commit saves the state file, then commits
// the node's database (endpoints, services), then drops the journal. A journal found when a transaction begins was left by a killed
// process (the lock says no one else holds the node), and recovery takes
// back or finishes that operation before this one starts.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/bpf_maps.hpp"
#include "ebpfnet/endpoint_table.hpp"
#include "ebpfnet/node.hpp"
#include "ebpfnet/service_table.hpp"
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
  ~NodeTxn();
  NodeTxn(const NodeTxn&) = delete;
  NodeTxn& operator=(const NodeTxn&) = delete;

  const Node& node() const { return node_; }
  bool has_state() const { return has_state_; }
  NodeState& state() { return state_; }
  // The node's services, opened at first use; its writes are committed with
  // the state (after it: see save()).
  ServiceTable& services();
  // The node's endpoints, in the same database and transaction.
  EndpointTable& endpoints();
  // Errc::not_found when the node has no such endpoint.
  EndpointRecord endpoint(const std::string& name);

  DatapathMaps& maps();
  // nullptr when the datapath is not attached: removals go on without it.
  DatapathMaps* maps_if_attached();

  // Called before each step, with the step's name: tests fail an operation
  // there (the checkpoint) or kill the process there (EBPFNET_FAILPOINT,
  // "STEP" or "STEP#N" for its Nth time).
  void step(std::string_view name) const;
  // Records what the operation is about to do, before it does any of it.
  void journal(Journal j);
  // The journal of a killed operation this transaction recovered from.
  const std::optional<Journal>& recovered() const { return recovered_; }
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
  // Commits, then runs cleanup that only the saved state allows (old rule
  // sets nothing points at any more) before the journal goes: a kill during
  // the cleanup is recovered like one before the commit.
  void commit_then(const std::function<void()>& cleanup);
  // Ends the node instead: its state goes.
  void commit_removal();

 private:
  const Node& node_;
  const StateStore& store_;
  void recover();
  void save();
  std::shared_ptr<NodeDb> db();
  void move_legacy_records();
  void check_published();

  std::optional<StateStore::Lock> lock_;
  bool has_state_ = false;
  bool journaled_ = false;
  std::optional<Journal> recovered_;
  NodeState state_;
  Checkpoint cp_;
  bool maps_opened_ = false;
  std::optional<DatapathMaps> maps_;
  std::shared_ptr<NodeDb> db_;
  std::optional<ServiceTable> services_;
  std::optional<EndpointTable> endpoints_;
  std::vector<std::shared_ptr<void>> held_;
  Undo undo_;  // last, so its steps run while everything above exists
};

}  // namespace ebpfnet
