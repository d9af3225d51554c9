// VERSION and STATUS: what the plugin speaks, and whether an ADD would work.
#include <unistd.h>

#include "cni.hpp"
#include "ebpfnet/ipam.hpp"

namespace ebpfnet::cni {

void cmd_version(std::string_view stdin_text, std::ostream& out) {
  // Runtimes ask often and with or without a config: this never fails.
  std::vector<std::string> versions(kVersions.begin(), kVersions.end());
  json reply = {{"cniVersion", sniff_version(stdin_text)}, {"supportedVersions", versions}};
  out << to_text(reply) << "\n";
}

void cmd_status(const NetConf& conf) {
  if (::geteuid() != 0) throw CniError(kNotAvailable, "ebpfnet-cni needs root");
  Node node(conf.env(), conf.node);
  auto st = node.load_state();
  if (!st) {
    if (!node.is_root()) throw CniError(kNotAvailable, "node '" + node.name() + "' does not exist");
    if (!conf.subnet)
      throw CniError(kNotAvailable,
                     "the root node has no address pool and the config no \"subnet\"");
    return;  // the first ADD attaches it
  }
  if (conf.subnet && !(*conf.subnet == st->cidr))
    throw CniError(kNotAvailable, "\"subnet\" " + conf.subnet->str() +
                                      " is not the pool of node '" + node.name() + "' (" +
                                      st->cidr.str() + ")");
  std::set<Ipv4> used;
  for (const auto& e : node.endpoint_records()) used.insert(e.ip);
  try {
    Ipam(st->cidr, used, st->last_allocated).allocate();
  } catch (const Error& e) {
    if (e.code() != Errc::exhausted) throw;
    throw CniError(kNotAvailable, "the pool " + st->cidr.str() + " of node '" + node.name() +
                                      "' has no free address");
  }
  // ADD would load it again, but the containers already there are cut off.
  if (st->attached && !Datapath::open_pinned(node.pin_dir()))
    throw CniError(kNotAvailableLimited,
                   "the datapath of node '" + node.name() + "' is not pinned",
                   "`ebpfnet --node " + node.name() + " attach` loads it and re-wires endpoints");
}

}  // namespace ebpfnet::cni
