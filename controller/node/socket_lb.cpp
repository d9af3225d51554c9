#include "socket_lb.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "ebpfnet/error.hpp"
#include "ebpfnet/sock_lb.hpp"

namespace ebpfnet::socket_lb {

bool wanted(NodeTxn& txn) {
  const NodeState& st = txn.state();
  return st.attached && st.socket_lb && txn.services().any_vip();
}

std::string status(const Node& node, const NodeState& st) {
  if (!st.socket_lb) return "off";
  // Hooks in place answer without probing the kernel (three program loads).
  if (sock_lb::attached(node.pin_dir())) return "attached";
  if (const std::string& why = sock_lb::unsupported_reason(); !why.empty()) return "unavailable: " + why;
  return "idle";
}

void converge(NodeTxn& txn, const DatapathMaps& maps, const DatapathMaps* replaced) {
  const std::filesystem::path dir = txn.node().pin_dir();
  const bool have = sock_lb::attached(dir);
  bool want = wanted(txn);
  // The kernel is probed (three program loads) only when hooks are to be
  // attached, not at every service change of a node that has them.
  if (want && (!have || replaced) && !sock_lb::unsupported_reason().empty()) {
    spdlog::info("node {}: services are balanced per packet: connect-time balancing is unavailable: {}",
                 txn.node().name(), sock_lb::unsupported_reason());
    want = false;
  }
  if (want && (!have || replaced)) {
    if (have)
      txn.undo("socket hooks", [dir, replaced] { sock_lb::attach(*replaced, dir); });
    else
      txn.undo("socket hooks", [dir] { sock_lb::detach(dir); });
    sock_lb::attach(maps, dir);
    spdlog::info("node {}: connect-time balancing {}", txn.node().name(), have ? "reloaded" : "attached");
  } else if (!want && have) {
    sock_lb::detach(dir);
    txn.undo("socket hooks", [dir, &maps] { sock_lb::attach(maps, dir); });
    spdlog::info("node {}: connect-time balancing detached", txn.node().name());
  }
}

void refill(EndpointTable& table, DatapathMaps& maps) {
  // Cookies learnt now are saved after the reading: the table is not
  // written while it is read.
  std::vector<EndpointRecord> learnt;
  table.for_each([&](const EndpointRecord& e) {
    if (!e.netns_cookie) {
      EndpointRecord known = e;
      try {
        known.netns_cookie = sock_lb::netns_cookie(Netns::open_path(e.netns_path));
      } catch (const Error& err) {
        // Its namespace is gone: the endpoint is left out of the datapath anyway.
        spdlog::debug("endpoint {}: no namespace cookie: {}", e.name, err.what());
        return;
      }
      learnt.push_back(std::move(known));
      return;
    }
    maps.put_sock_netns(e.netns_cookie, e.ip);
  });
  for (const auto& e : learnt) {
    maps.put_sock_netns(e.netns_cookie, e.ip);
    table.put(e);
  }
}

size_t prune(EndpointTable& table, DatapathMaps& maps) {
  std::set<uint64_t> cookies;
  table.for_each([&](const EndpointRecord& e) { cookies.insert(e.netns_cookie); });
  return maps.prune("sock_netns", sizeof(uint64_t), [&](const void* k) {
    uint64_t c;
    std::memcpy(&c, k, sizeof c);
    return cookies.count(c) > 0;
  });
}

}  // namespace ebpfnet::socket_lb
