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
        // Before recovery, which reads the endpoints from the database.
        move_legacy_records();
      }
      recover();
      if (!has_state_) {
        state_ = store_.load();  // throws: the node does not exist
        has_state_ = true;
        move_legacy_records();
      }
      check_published();
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
  if (has_state_) {
    state_ = store_.load();
    move_legacy_records();
  }
  recover();
  check_published();
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

std::shared_ptr<NodeDb> NodeTxn::db() {
  if (!db_) db_ = std::make_shared<NodeDb>(store_.checked_path("services.db"), NodeDb::Mode::write);
  return db_;
}

ServiceTable& NodeTxn::services() {
  if (!services_) services_.emplace(db());
  return *services_;
}

EndpointTable& NodeTxn::endpoints() {
  if (!endpoints_) endpoints_.emplace(db(), state_.cidr, state_.cidr6);
  return *endpoints_;
}

EndpointRecord NodeTxn::endpoint(const std::string& name) {
  auto e = endpoints().get(name);
  if (!e) throw Error(Errc::not_found, "endpoint '" + name + "' does not exist on node " + node_.name());
  return std::move(*e);
}

// The state file first, then the database. Killed in between, the journal
// is left, and recovery reads the rows as they were before the operation:
// an endpoint being added is not there (recovery takes it back; the pool's
// hint has moved on, as after any delete), one being removed still is
// (recovery finishes its removal, which a published port the saved state
// no longer holds cannot stop), and policy ids the state has handed out
// are never handed out again.
void NodeTxn::save() {
  store_.save(state_);
  if (!db_) return;
  step("database");
  db_->commit();
}

// A state of schema 7 or older held the endpoints (and one of 6 or older
// the services): into the database, then the state without them. Killed in
// between, the next load moves them again.
void NodeTxn::move_legacy_records() {
  if (!has_state_ || (!state_.legacy_services && !state_.legacy_endpoints)) return;
  const std::string file = (store_.dir() / "services.db").string();
  if (state_.legacy_endpoints) {
    endpoints().replace_all(*state_.legacy_endpoints);
    spdlog::info("node {}: {} endpoints moved into {}", node_.name(), state_.legacy_endpoints->size(), file);
    state_.legacy_endpoints.reset();
  }
  if (state_.legacy_services) {
    services().replace_all(state_.legacy_services->services, state_.legacy_services->counters);
    spdlog::info("node {}: {} services moved into {}", node_.name(), state_.legacy_services->services.size(), file);
    state_.legacy_services.reset();
  }
  // Here the database first: the state saved without them is their only
  // copy once it is written.
  db_->commit();
  step("legacy-moved");
  store_.save(state_);
}

// What validate_state checks for a file that held its endpoints: every
// published port leads to an endpoint of the node.
void NodeTxn::check_published() {
  if (!has_state_) return;
  for (size_t i = 0; i < state_.published.size(); ++i)
    if (!endpoints().contains(state_.published[i].endpoint))
      throw Error(Errc::failed, "state of node " + node_.name() + ": published[" + std::to_string(i) +
                                    "].endpoint: '" + state_.published[i].endpoint +
                                    "' is not an endpoint of this node");
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
  endpoints_.reset();
  db_.reset();
  store_.remove();
  has_state_ = false;
  journaled_ = false;
  undo_.commit();
}

}  // namespace ebpfnet
