#include "ebpfnet/node_txn.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/error.hpp"
#include "recovery.hpp"

namespace ebpfnet {

namespace {

Error not_attached(const Node& node) {
  return Error(Errc::not_found, "node '" + node.name() + "' has no datapath attached (ebpfnet --node " +
                                    node.name() + " attach)");
}

// EBPFNET_FAILPOINT=STEP[#N]: the process kills itself (SIGKILL, nothing
// runs after it) the Nth time (default 1st) it reaches STEP. For the tests
// of what a killed command leaves and how the next one recovers.
void failpoint(std::string_view step) {
  static const char* spec = std::getenv("EBPFNET_FAILPOINT");
  static int seen = 0;
  if (!spec) return;
  std::string_view s(spec), name = s.substr(0, s.find('#'));
  const int nth = name.size() < s.size() ? std::atoi(spec + name.size() + 1) : 1;
  if (name == step && ++seen == nth) ::kill(::getpid(), SIGKILL);
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
      if (store_.exists()) {
        state_ = store_.load();
        has_state_ = true;
      }
      recover();
      if (!has_state_) state_ = store_.load();  // throws: the node does not exist
      move_legacy_services();
      return;
    case Begin::create:
      if (!std::filesystem::exists(store_.dir())) undo("state directory", [this] { store_.remove(); });
      lock_.emplace(store_.lock(true));
      break;
    case Begin::if_exists:
      // Never makes the node's directory: a DEL for a node that is gone (or
      // never was) must leave nothing behind. A directory without state may
      // hold the journal of a killed node create.
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
  recover();
  move_legacy_services();
}

NodeTxn::~NodeTxn() {
  // Unless committed: the undo first, then the journal goes, but only when
  // everything was taken back (else the next command's recovery tries again).
  const bool clean = undo_.rollback();
  if (!journaled_ || !clean) return;
  try {
    store_.remove_journal();
  } catch (const std::exception& e) {
    spdlog::warn("node {}: {}", node_.name(), e.what());
  }
}

void NodeTxn::recover() {
  std::optional<Journal> j = store_.load_journal();
  if (!j) return;
  spdlog::warn("node {}: '{}' (pid {}) was interrupted; finishing or taking back what it did", node_.name(),
               j->op, j->pid);
  try {
    recovery::run(*this, *j);
    if (has_state_) save();
    store_.remove_journal();
  } catch (const Error& e) {
    throw Error(e.code(), "node " + node_.name() + ": recovering from an interrupted '" + j->op + "': " + e.what());
  }
  recovered_ = std::move(j);
}

void NodeTxn::journal(Journal j) {
  step("journal");
  j.pid = static_cast<int>(::getpid());
  store_.save_journal(j);
  journaled_ = true;
}

ServiceTable& NodeTxn::services() {
  if (!services_) services_.emplace(store_.checked_path("services.db"), ServiceTable::Mode::write);
  return *services_;
}

void NodeTxn::save() {
  if (services_) services_->commit();
  store_.save(state_);
}

// A state of schema 6 or older held the services: into the table, then the
// state without them. Killed in between, the next load moves them again.
void NodeTxn::move_legacy_services() {
  if (!has_state_ || !state_.legacy_services) return;
  services().replace_all(state_.legacy_services->services, state_.legacy_services->counters);
  spdlog::info("node {}: {} services moved into {}", node_.name(), state_.legacy_services->services.size(),
               (store_.dir() / "services.db").string());
  state_.legacy_services.reset();
  save();
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
  failpoint(name);
  if (cp_) cp_(name);
}

void NodeTxn::commit() {
  commit_then([] {});
}

void NodeTxn::commit_then(const std::function<void()>& cleanup) {
  step("state");
  save();
  has_state_ = true;
  undo_.commit();
  cleanup();
  if (!journaled_) return;
  step("journal-end");
  journaled_ = false;
  try {
    store_.remove_journal();
  } catch (const std::exception& e) {
    // Done and saved: a journal left behind only makes the next command check.
    spdlog::warn("node {}: {}", node_.name(), e.what());
  }
}

void NodeTxn::commit_removal() {
  services_.reset();
  store_.remove();
  has_state_ = false;
  journaled_ = false;
  undo_.commit();
}

}  // namespace ebpfnet
