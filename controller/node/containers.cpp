#include "containers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ebpfnet/error.hpp"
#include "endpoints.hpp"

namespace ebpfnet::containers {
std::optional<EndpointRecord> find(NodeTxn& txn, const ContainerRef& c) {
  if (!txn.has_state()) return std::nullopt;
  return txn.endpoints().of_container(c.id, c.ifname);
}

std::optional<EndpointRecord> del(NodeTxn& txn, const ContainerRef& c) {
  std::optional<EndpointRecord> e = find(txn, c);
  if (!e) return std::nullopt;
  // Everything is found from the record and the node side, so this works
  // when the container's namespace is already gone.
  txn.journal({.op = "CNI DEL", .removing = {e->name}});
  endpoints::remove(txn, {*e}, txn.maps_if_attached());
  txn.endpoints().erase(e->name);
  txn.commit();
  return e;
}

std::vector<EndpointRecord> gc(NodeTxn& txn, const std::string& network, const std::vector<ContainerRef>& keep) {
  std::vector<EndpointRecord> removed;
  if (!txn.has_state()) return removed;
  DatapathMaps* maps = txn.maps_if_attached();
  std::vector<EndpointRecord> stale;
  txn.endpoints().for_each([&](const EndpointRecord& e) {
    if (e.cni_network == network && !e.container_id.empty() &&
        std::none_of(keep.begin(), keep.end(),
                     [&](const ContainerRef& c) { return e.container_id == c.id && e.ifname == c.ifname; }))
      stale.push_back(e);
  });
  if (stale.empty()) return removed;
  Journal j{.op = "CNI GC"};
  for (const auto& e : stale) j.removing.push_back(e.name);
  txn.journal(std::move(j));
  std::optional<Error> first_error;
  for (auto& e : stale) {
    // One endpoint that cannot be removed must not keep the others.
    try {
      endpoints::remove(txn, {e}, maps);
      txn.endpoints().erase(e.name);
      removed.push_back(std::move(e));
    } catch (const Error& err) {
      spdlog::warn("node {}: garbage-collecting endpoint {}: {}", txn.node().name(), e.name, err.what());
      if (!first_error) first_error = err;
    }
  }
  if (!removed.empty()) txn.commit();
  if (first_error) throw *first_error;
  return removed;
}

}  // namespace ebpfnet::containers
