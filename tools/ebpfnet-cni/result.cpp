// The ADD result in the spec's shape, and the endpoint name of a container.
#include <cstdio>

#include "cni.hpp"

namespace ebpfnet::cni {
namespace {

// FNV-1a: stable across runs and builds, so a name can be computed again.
uint32_t fnv1a(std::string_view s, uint32_t h = 2166136261u) {
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

json array_of(const json& prev, const char* key) {
  auto it = prev.find(key);
  return it != prev.end() && it->is_array() ? *it : json::array();
}

}  // namespace

std::string endpoint_name(const ContainerRef& c) {
  // Interface names may hold characters endpoint names may not.
  std::string ifname = c.ifname;
  for (char& ch : ifname) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.';
    if (!ok) ch = '_';
  }
  // The hash covers what the prefix cuts off and what '_' replaced.
  char hash[9];
  std::snprintf(hash, sizeof hash, "%08x", fnv1a(c.ifname, fnv1a(c.id + '\0')));
  return c.id.substr(0, 12) + "-" + ifname + "-" + hash;
}

json make_result(const NetConf& conf, const Invocation& inv, const EndpointRecord& rec,
                 Ipv4 gateway, const std::string& node_sandbox) {
  const json& prev = conf.prev_result.is_object() ? conf.prev_result : json::object();
  json interfaces = array_of(prev, "interfaces");
  json ips = array_of(prev, "ips");
  json routes = array_of(prev, "routes");

  // The node side first, as the reference ptp plugin does. Its sandbox is
  // the node's namespace when that is not the machine's own.
  json host = {{"name", rec.host_ifname}, {"mac", mac_str(rec.host_mac)}};
  if (!node_sandbox.empty()) host["sandbox"] = node_sandbox;
  interfaces.push_back(host);
  interfaces.push_back({{"name", rec.ifname}, {"mac", mac_str(rec.mac)}, {"sandbox", inv.netns}});

  // The container holds IP/32 with the gateway reached over the link, as
  // configured, so the result says /32.
  json ip = {{"address", rec.ip.str() + "/32"},
             {"gateway", gateway.str()},
             {"interface", interfaces.size() - 1}};
  if (conf.cni_version == "0.4.0") ip["version"] = "4";  // dropped in 1.0.0
  ips.push_back(ip);
  routes.push_back({{"dst", "0.0.0.0/0"}, {"gw", gateway.str()}});

  json r = {{"cniVersion", conf.cni_version},
            {"interfaces", interfaces},
            {"ips", ips},
            {"routes", routes}};
  if (!conf.dns.is_null())
    r["dns"] = conf.dns;
  else if (prev.contains("dns"))
    r["dns"] = prev["dns"];
  return r;
}

}  // namespace ebpfnet::cni
