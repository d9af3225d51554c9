// DEL and GC: removing what ADD made, from what ADD recorded, never the
// container's namespace itself (the runtime owns it).
#include <spdlog/spdlog.h>

#include "cni.hpp"

namespace ebpfnet::cni {

void cmd_del(const Invocation& inv, const NetConf& conf) {
  Node node(conf.env(), conf.node);
  // Idempotent: a second DEL, or one for an ADD that failed, finds nothing.
  if (auto e = node.del_container_endpoint(inv.container()))
    spdlog::info("node {}: removed endpoint {} ({}, veth {})", node.name(), e->name, e->ip.str(),
                 e->host_ifname);
  else
    spdlog::info("node {}: no endpoint for container {} {}; nothing to remove", node.name(),
                 inv.container_id, inv.ifname);
}

void cmd_gc(const NetConf& conf) {
  Node node(conf.env(), conf.node);
  for (const auto& e : node.gc_container_endpoints(conf.name, conf.valid_attachments))
    spdlog::info("node {}: GC removed endpoint {} ({}) of container {} {}", node.name(), e.name,
                 e.ip.str(), e.container_id, e.ifname);
}

}  // namespace ebpfnet::cni
