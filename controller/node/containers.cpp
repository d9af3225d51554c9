#include "containers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ebpfnet/error.hpp"
#include "endpoints.hpp"

namespace ebpfnet::containers {
namespace {

bool belongs_to(const EndpointRecord& e, const ContainerRef& c) {
  return !e.container_id.empty() && e.container_id == c.id && e.ifname == c.ifname;
}

}  // namespace

std::optional<EndpointRecord> find(NodeTxn& txn, const ContainerRef& c) {
  if (!txn.has_state()) return std::nullopt;
  for (const auto& e : txn.state().endpoints)
    if (belongs_to(e, c)) return e;
  return std::nullopt;
}

std::optional<EndpointRecord> del(NodeTxn& txn, const ContainerRef& c) {
  if (!txn.has_state()) return std::nullopt;
  NodeState& st = txn.state();
  auto it = std::find_if(st.endpoints.begin(), st.endpoints.end(),
                         [&](const EndpointRecord& e) { return belongs_to(e, c); });
  if (it == st.endpoints.end()) return std::nullopt;
  // Everything is found from the record and the node side, so this works
  // when the container's namespace is already gone.
  txn.journal({.op = "CNI DEL", .removing = {it->name}});
  endpoints::remove(txn, {*it}, txn.maps_if_attached());
  EndpointRecord removed = std::move(*it);
  st.endpoints.erase(it);
  txn.commit();
  return removed;
}

std::vector<EndpointRecord> gc(NodeTxn& txn, const std::string& network, const std::vector<ContainerRef>& keep) {
  std::vector<EndpointRecord> removed;
  if (!txn.has_state()) return removed;
  NodeState& st = txn.state();
  DatapathMaps* maps = txn.maps_if_attached();
  auto stale = [&](const EndpointRecord& e) {
    return e.cni_network == network && !e.container_id.empty() &&
           std::none_of(keep.begin(), keep.end(), [&](const ContainerRef& c) { return belongs_to(e, c); });
  };
  std::optional<Error> first_error;
  std::vector<EndpointRecord> left;
  Journal j{.op = "CNI GC"};
  for (const auto& e : st.endpoints)
    if (stale(e)) j.removing.push_back(e.name);
  if (j.removing.empty()) return removed;
  txn.journal(std::move(j));
  for (auto& e : st.endpoints) {
    if (!stale(e)) {
      left.push_back(std::move(e));
      continue;
    }
    // One endpoint that cannot be removed must not keep the others.
    try {
      endpoints::remove(txn, {e}, maps);
      removed.push_back(std::move(e));
    } catch (const Error& err) {
      spdlog::warn("node {}: garbage-collecting endpoint {}: {}", txn.node().name(), e.name, err.what());
      if (!first_error) first_error = err;
      left.push_back(std::move(e));
    }
  }
  st.endpoints = std::move(left);
  if (!removed.empty()) txn.commit();
  if (first_error) throw *first_error;
  return removed;
}

}  // namespace ebpfnet::containers
