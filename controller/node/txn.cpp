#include "ebpfnet/node_txn.hpp"

#include <filesystem>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet {

namespace {

Error not_attached(const Node& node) {
  return Error(Errc::not_found, "node '" + node.name() + "' has no datapath attached (ebpfnet --node " +
                                    node.name() + " attach)");
}

}  // namespace

DatapathMaps attached_maps(const Node& node) {
  auto maps = Datapath::open_pinned_maps(node.pin_dir());
  if (!maps) throw not_attached(node);
  return std::move(*maps);
}

NodeTxn::NodeTxn(const Node& node, Begin how, Checkpoint cp)
    : node_(node), store_(node.store_), cp_(std::move(cp)) {
  switch (how) {
    case Begin::existing:
      lock_.emplace(store_.lock());
      state_ = store_.load();
      has_state_ = true;
      return;
    case Begin::create:
      if (!std::filesystem::exists(store_.dir())) undo("state directory", [this] { store_.remove(); });
      lock_.emplace(store_.lock(true));
      break;
    case Begin::if_exists:
      // Never makes the node's directory: a DEL for a node that is gone (or
      // never was) must leave nothing behind.
      if (!store_.exists()) return;
      try {
        lock_.emplace(store_.lock());
      } catch (const Error& e) {
        if (e.code() != Errc::not_found) throw;  // deleted while we waited
        return;
      }
      break;
  }
  has_state_ = store_.exists();
  if (has_state_) state_ = store_.load();
}

DatapathMaps* NodeTxn::maps_if_attached() {
  if (!maps_opened_) {
    maps_ = Datapath::open_pinned_maps(node_.pin_dir());
    maps_opened_ = true;
  }
  return maps_ ? &*maps_ : nullptr;
}

DatapathMaps& NodeTxn::maps() {
  if (DatapathMaps* m = maps_if_attached()) return *m;
  throw not_attached(node_);
}

void NodeTxn::step(std::string_view name) const {
  if (cp_) cp_(name);
}

void NodeTxn::commit() {
  step("state");
  store_.save(state_);
  has_state_ = true;
  undo_.commit();
}

void NodeTxn::commit_removal() {
  store_.remove();
  has_state_ = false;
  undo_.commit();
}

}  // namespace ebpfnet
