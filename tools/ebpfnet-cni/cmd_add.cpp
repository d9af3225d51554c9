// ADD: the container's namespace becomes an endpoint of the node.
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <cstring>

#include "cni.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/netlink.hpp"

namespace ebpfnet::cni {
namespace {

// Checked before the node is locked, so a bad CNI_NETNS costs nothing and
// gets its own code: a namespace that is gone means the container is.
void check_netns(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      throw CniError(kUnknownContainer, "network namespace " + path + " does not exist",
                     "the container is gone, or CNI_NETNS is wrong");
    throw CniError(kIoFailure, "network namespace " + path + ": " + std::strerror(errno));
  }
  // A namespace is a regular file; opening a FIFO would block, a device act.
  if (!S_ISREG(st.st_mode))
    throw CniError(kInvalidEnv, "CNI_NETNS " + path + " is not a network namespace");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    throw CniError(kIoFailure, "opening network namespace " + path + ": " + std::strerror(errno));
  if (::ioctl(fd.get(), NS_GET_NSTYPE) != CLONE_NEWNET)
    throw CniError(kInvalidEnv, "CNI_NETNS " + path + " is not a network namespace");
}

// The node's state, made on first use for the root node (a runtime alone is
// enough: the config's subnet becomes its pool). A sandbox node must exist.
NodeState node_state(Node& node, const NetConf& conf) {
  auto st = node.load_state();
  if (!st && !node.is_root())
    throw CniError(kInvalidConfig, "node '" + node.name() + "' does not exist",
                   "create it with `ebpfnet node create " + node.name() +
                       " --cidr CIDR`, or set \"node\" to an existing one");
  if (!st) {
    if (!conf.subnet)
      throw CniError(kInvalidConfig,
                     "the root node has no address pool yet: set \"subnet\" in the network config");
    spdlog::info("node {}: first use, attaching the datapath with pool {}", node.name(),
                 conf.subnet->str());
    node.attach({conf.subnet, std::nullopt});
    st = node.load_state();
    if (!st) throw CniError(kIoFailure, "node " + node.name() + " has no state after attach");
  }
  if (conf.subnet && !(*conf.subnet == st->cidr))
    throw CniError(kInvalidConfig, "network config: \"subnet\" " + conf.subnet->str() +
                                       " is not the pool of node '" + node.name() + "' (" +
                                       st->cidr.str() + ")");
  return *st;
}

// ebpfnet gives its interface the container's default route (via the
// node's gateway), so it must be the container's primary network: a second
// interface would fail on that route, and is refused up front with why.
void check_no_default_route(const std::string& path) {
  for (const auto& r : Netlink::in(Netns::open_path(path)).routes())
    if (r.dst.prefix == 0)
      throw CniError(kInUse, "the container already has a default route",
                     "ebpfnet-cni sets the container's default route, so it can only be the "
                     "container's first (primary) network");
}

bool same_netns(const std::string& a, const std::string& b) {
  try {
    return Netns::open_path(a).same_as(Netns::open_path(b));
  } catch (const Error&) {
    return false;  // one of them is gone
  }
}

bool published(const NodeState& st, const PublishRecord& p) {
  return std::any_of(st.published.begin(), st.published.end(), [&](const PublishRecord& q) {
    return q.endpoint == p.endpoint && q.proto == p.proto && q.port == p.port && q.target_port == p.target_port;
  });
}

}  // namespace

// runtimeConfig.portMappings, checked before anything is made.
std::vector<PublishRecord> port_mappings(const json& list) {
  std::vector<PublishRecord> out;
  if (list.is_null()) return out;
  for (const auto& m : list) {
    if (!m.is_object())
      throw CniError(kInvalidConfig, "portMappings: an entry is not an object: " + to_text(m));
    auto port = [&](const char* key) -> uint16_t {
      auto it = m.find(key);
      if (it == m.end() || !it->is_number_integer() || it->get<int64_t>() < 1 ||
          it->get<int64_t>() > 65535)
        throw CniError(kInvalidConfig, std::string("portMappings: \"") + key +
                                           "\" must be a port from 1 to 65535: " + to_text(m));
      return static_cast<uint16_t>(it->get<int>());
    };
    auto text = [&](const char* key, const char* absent) -> std::string {
      auto it = m.find(key);
      if (it == m.end() || it->is_null()) return absent;
      if (!it->is_string())
        throw CniError(kInvalidConfig, std::string("portMappings: \"") + key +
                                           "\" must be a string: " + to_text(m));
      return it->get<std::string>();
    };
    std::string proto = text("protocol", "tcp");
    if (proto != "tcp" && proto != "udp")
      throw CniError(kUnsupportedField, "portMappings: protocol '" + proto + "' is not tcp or udp");
    std::string host_ip = text("hostIP", "");
    if (!host_ip.empty() && host_ip != "0.0.0.0")
      throw CniError(kUnsupportedField, "portMappings: hostIP " + host_ip + " is not supported",
                     "ports are published on the node's uplink address");
    out.push_back({"", proto, port("containerPort"), port("hostPort")});
  }
  return out;
}

void cmd_add(const Invocation& inv, const NetConf& conf, std::ostream& out) {
  std::vector<PublishRecord> publish = port_mappings(conf.port_mappings);
  check_netns(inv.netns);
  Node node(conf.env(), conf.node);
  NodeState st = node_state(node, conf);
  // The same attachment again (an ADD killed after the endpoint was made,
  // then retried) is answered as done. Another namespace under the same ID
  // is a runtime's mistake.
  std::optional<EndpointRecord> done = node.find_container_endpoint(inv.container());
  if (done && !same_netns(done->netns_path, inv.netns))
    throw CniError(kInUse,
                   "container " + inv.container_id + " " + inv.ifname + " already exists as endpoint " +
                       done->name + " (" + done->ip.str() + ") in another network namespace",
                   "a runtime must DEL an attachment before it ADDs it again");
  if (!done) check_no_default_route(inv.netns);

  EndpointRequest req;
  req.name = endpoint_name(inv.container());
  req.netns = inv.netns;
  req.ifname = inv.ifname;
  req.container_id = inv.container_id;
  req.cni_network = conf.name;
  // Attaches the node's datapath first if it is not (and logs that).
  EndpointRecord rec = done ? *done : node.add_endpoint(req);
  // Published through ebpfnet's NAT on the uplink, like `docker -p`; a port
  // that cannot be published takes the whole ADD back.
  try {
    for (auto& p : publish) {
      p.endpoint = rec.name;
      if (!published(st, p)) node.expose(p);
    }
  } catch (...) {
    node.del_container_endpoint(inv.container());
    throw;
  }

  std::string node_sandbox = node.is_root() ? "" : netns::path_of(node.name());
  out << to_text(make_result(conf, inv, rec, st.gateway(), node_sandbox)) << "\n";
}

}  // namespace ebpfnet::cni
