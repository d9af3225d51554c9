// The node operations CNI runtimes need: find and remove a container's
// endpoint by (container id, interface), and garbage-collect a network's
// endpoints. Each runs under the node's lock, like every Node operation.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ebpfnet/error.hpp"
#include "ebpfnet/node.hpp"

namespace ebpfnet {
namespace {

bool belongs_to(const EndpointRecord& e, const ContainerRef& c) {
  return !e.container_id.empty() && e.container_id == c.id && e.ifname == c.ifname;
}

// The node's lock if the node exists. Never creates the node's directory: a
// DEL for a node that is gone (or never was) must leave nothing behind.
std::optional<StateStore::Lock> lock_if_exists(const StateStore& store) {
  if (!store.exists()) return std::nullopt;
  try {
    auto lock = store.lock();
    if (store.exists()) return lock;
  } catch (const Error& e) {
    if (e.code() != Errc::not_found) throw;  // deleted while we waited
  }
  return std::nullopt;
}

}  // namespace

std::optional<NodeState> Node::load_state() {
  auto lock = lock_if_exists(store_);
  if (!lock) return std::nullopt;
  return store_.load();
}

std::optional<EndpointRecord> Node::find_container_endpoint(const ContainerRef& c) {
  auto st = load_state();
  if (!st) return std::nullopt;
  for (const auto& e : st->endpoints)
    if (belongs_to(e, c)) return e;
  return std::nullopt;
}

std::optional<EndpointRecord> Node::del_container_endpoint(const ContainerRef& c) {
  auto lock = lock_if_exists(store_);
  if (!lock) return std::nullopt;
  NodeState st = store_.load();
  auto it = std::find_if(st.endpoints.begin(), st.endpoints.end(),
                         [&](const EndpointRecord& e) { return belongs_to(e, c); });
  if (it == st.endpoints.end()) return std::nullopt;
  // Everything is found from the record and the node side, so this works
  // when the container's namespace is already gone.
  auto maps = Datapath::open_pinned_maps(pin_dir());
  remove_endpoint_parts(st, *it, maps ? &*maps : nullptr);
  EndpointRecord removed = std::move(*it);
  st.endpoints.erase(it);
  store_.save(st);
  return removed;
}

std::vector<EndpointRecord> Node::gc_container_endpoints(const std::string& network,
                                                         const std::vector<ContainerRef>& keep) {
  std::vector<EndpointRecord> removed;
  auto lock = lock_if_exists(store_);
  if (!lock) return removed;
  NodeState st = store_.load();
  auto maps = Datapath::open_pinned_maps(pin_dir());
  std::optional<Error> first_error;
  std::vector<EndpointRecord> left;
  for (auto& e : st.endpoints) {
    bool stale = e.cni_network == network && !e.container_id.empty() &&
                 std::none_of(keep.begin(), keep.end(),
                              [&](const ContainerRef& c) { return belongs_to(e, c); });
    if (!stale) {
      left.push_back(std::move(e));
      continue;
    }
    // One endpoint that cannot be removed must not keep the others.
    try {
      remove_endpoint_parts(st, e, maps ? &*maps : nullptr);
      removed.push_back(std::move(e));
    } catch (const Error& err) {
      spdlog::warn("node {}: garbage-collecting endpoint {}: {}", name_, e.name, err.what());
      if (!first_error) first_error = err;
      left.push_back(std::move(e));
    }
  }
  st.endpoints = std::move(left);
  if (!removed.empty()) store_.save(st);
  if (first_error) throw *first_error;
  return removed;
}

}  // namespace ebpfnet
