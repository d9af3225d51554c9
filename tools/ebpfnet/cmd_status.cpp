// ebpfnet status: the node's programs, maps, endpoints and counters.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

nlohmann::json attachment_json(const AttachmentView& a) {
  nlohmann::json j = {{"owner", a.owner}, {"ifname", a.ifname},   {"hook", a.xdp ? "xdp" : "tc"},
                      {"program", a.prog.name}, {"id", a.prog.id}, {"tag", a.prog.tag}, {"stale", a.stale}};
  if (a.xdp)
    j["xdp_mode"] = to_string(*a.xdp);
  else
    j["tc_mode"] = to_string(a.tc_mode);
  return j;
}

// Everything but the endpoints and the attachments, which are streamed.
nlohmann::json status_head_json(const NodeStatus& s) {
  nlohmann::json maps = nlohmann::json::array();
  for (const auto& m : s.maps)
    maps.push_back({{"name", m.name}, {"type", m.type}, {"id", m.id},
                    {"max_entries", m.max_entries}, {"entries", m.entries}});
  nlohmann::json drops = nlohmann::json::object();
  for (int r = 0; r < EBPFNET_DROP_REASON_MAX; ++r)
    drops[std::string(drop_reason_name(r))] = s.node_drops[r];
  nlohmann::json progs = nlohmann::json::array();
  for (const auto* p : {&s.prog, &s.uplink_prog, &s.prefilter_prog, &s.tunnel_prog})
    if (*p) progs.push_back({{"name", (*p)->name}, {"id", (*p)->id}, {"tag", (*p)->tag}});
  nlohmann::json uplink = nullptr;
  if (s.state.uplink)
    uplink = {{"ifname", s.state.uplink->ifname},
              {"ip", s.uplink_ip ? nlohmann::json(s.uplink_ip->str()) : nlohmann::json(nullptr)},
              {"outside_netns", s.state.uplink->outside},
              {"tc_mode", to_string(s.state.uplink->tc_mode)},
              {"prefilter_entries", s.state.prefilter.size()},
              {"xdp_mode", s.state.uplink->xdp ? nlohmann::json(to_string(*s.state.uplink->xdp)) : nlohmann::json(nullptr)}};
  nlohmann::json overlay = nullptr;
  if (s.state.overlay)
    overlay = {{"ifname", s.state.overlay->ifname},
               {"vni", s.state.overlay->vni},
               {"port", s.state.overlay->port},
               {"tc_mode", to_string(s.state.overlay->tc_mode)},
               {"peers", s.state.overlay->peers.size()}};
  return {{"node", s.state.name},
          {"sandbox", s.state.sandbox},
          {"cidr", s.state.cidr.str()},
          {"gateway", s.state.gateway().str()},
          {"cidr6", s.state.cidr6 ? nlohmann::json(s.state.cidr6->str()) : nlohmann::json(nullptr)},
          {"gateway6", s.state.gateway6() ? nlohmann::json(s.state.gateway6()->str()) : nlohmann::json(nullptr)},
          {"attached", s.prog.has_value()},
          {"pin_dir", s.pin_dir.string()},
          {"datapath", {{"abi", s.abi}, {"build", s.abi ? hex(s.build) : ""},
                        {"binary_abi", EBPFNET_ABI_VERSION}, {"binary_build", hex(s.binary_build)},
                        {"current", s.abi == EBPFNET_ABI_VERSION && s.build == s.binary_build}}},
          {"programs", progs},
          {"uplink", uplink},
          {"overlay", overlay},
          {"published", s.state.published.size()},
          {"services", s.services},
          {"endpoint_count", s.endpoint_count},
          {"socket_lb", s.socket_lb},
          {"maps", maps},
          {"node_drops", drops},
          {"bridges", s.bridges}};
}

// The head's fields, then "endpoints" and "attachments" written as the
// endpoints come: a node of 10,000 never holds them as one JSON document.
// Each endpoint's attachment is kept as text until its list is written.
void stream_status_json(Node node) {
  std::string attachments;
  std::vector<AttachmentView> others;
  bool first = true;
  node.status(
      [&](const NodeStatus& s) {
        std::string head = status_head_json(s).dump(2);
        head.pop_back();  // the closing brace: the lists follow
        while (!head.empty() && (head.back() == '\n' || head.back() == ' ')) head.pop_back();
        std::cout << head << ",\n  \"endpoints\": [";
        others = s.attachments;
      },
      [&](const EndpointView& v, const AttachmentView& a) {
        std::cout << (first ? "\n    " : ",\n    ") << to_json(v).dump();
        attachments += (attachments.empty() ? "\n    " : ",\n    ") + attachment_json(a).dump();
        first = false;
      });
  for (const auto& a : others) attachments += (attachments.empty() ? "\n    " : ",\n    ") + attachment_json(a).dump();
  std::cout << (first ? "]" : "\n  ]") << ",\n  \"attachments\": [" << attachments
            << (attachments.empty() ? "]" : "\n  ]") << "\n}\n";
}

void print_status(const NodeStatus& s) {
  std::cout << "node      " << s.state.name << (s.state.sandbox ? " (sandbox)" : " (root namespace)")
            << "\npool      " << s.state.cidr.str() << ", gateway " << s.state.gateway().str();
  if (s.state.cidr6)
    std::cout << "\npool6     " << s.state.cidr6->str() << ", gateway " << s.state.gateway6()->str()
              << " (and fe80::1)";
  std::cout << "\ndatapath  ";
  if (!s.prog) {
    std::cout << "not attached (ebpfnet --node " << s.state.name << " attach)\n";
  } else {
    std::cout << "pinned at " << s.pin_dir.string() << ", ABI " << s.abi << ", build "
              << (s.build ? hex(s.build).substr(0, 8) : "unknown");
    if (s.abi == EBPFNET_ABI_VERSION && s.build == s.binary_build)
      std::cout << " (this ebpfnet's)\n";
    else
      std::cout << " (this ebpfnet has ABI " << EBPFNET_ABI_VERSION << ", build " << hex(s.binary_build).substr(0, 8)
                << ": `ebpfnet --node " << s.state.name << " attach` upgrades it)\n";
    std::cout << "program   " << s.prog->name << " id " << s.prog->id << " tag " << s.prog->tag
              << ", tc ingress of every endpoint veth\n";
    size_t stale = 0;
    for (const auto& a : s.attachments) stale += a.stale;
    std::cout << "attached  " << s.attachments.size() << " program(s), " << stale << " stale";
    for (const auto& a : s.attachments)
      if (a.stale) std::cout << "\n  stale   " << a.owner << " (" << a.ifname << "): "
                             << (a.prog.id ? a.prog.name + " id " + std::to_string(a.prog.id) + " tag " + a.prog.tag
                                           : std::string("nothing attached"));
    std::cout << "\n";
  }
  if (s.state.uplink) {
    std::cout << "uplink    " << s.state.uplink->ifname;
    if (s.uplink_ip) std::cout << " " << s.uplink_ip->str() << " (masquerade, " << s.state.published.size() << " published ports)";
    if (s.uplink_prog) std::cout << ", program " << s.uplink_prog->name << " id " << s.uplink_prog->id;
    if (!s.state.uplink->outside.empty()) std::cout << ", outside netns " << s.state.uplink->outside;
    std::cout << "\nprefilter ";
    if (s.state.prefilter.empty())
      std::cout << "none (no XDP program on the uplink)";
    else
      std::cout << s.state.prefilter.size() << " entries, XDP ("
                << (s.state.uplink->xdp ? to_string(*s.state.uplink->xdp) : std::string("not attached")) << ") on "
                << s.state.uplink->ifname;
    std::cout << "\n";
  } else {
    std::cout << "uplink    none (no NAT; attach --uplink IFNAME)\n";
  }
  if (s.state.overlay) {
    std::cout << "overlay   " << s.state.overlay->ifname << " (vxlan, VNI " << s.state.overlay->vni << ", port "
              << s.state.overlay->port << "), " << s.state.overlay->peers.size() << " peer pool(s)";
    if (s.tunnel_prog) std::cout << ", program " << s.tunnel_prog->name << " id " << s.tunnel_prog->id;
    std::cout << "\n";
  }
  std::cout << "services  " << s.services << ", connect-time balancing " << s.socket_lb << "\n";
  std::cout << "bridges   " << (s.bridges.empty() ? "none" : std::to_string(s.bridges.size())) << "\n";
  std::cout << "drops     " << drops_summary(s.node_drops) << " (not tied to an endpoint)\n\n";
  if (!s.maps.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& m : s.maps)
      rows.push_back({m.name, m.type, std::to_string(m.id),
                      m.type == "percpu_array" ? "-" : std::to_string(m.entries),
                      std::to_string(m.max_entries)});
    print_table({"MAP", "TYPE", "ID", "ENTRIES", "MAX"}, rows);
    std::cout << "\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : s.endpoints) rows.push_back(endpoint_row(v));
  print_table(endpoint_header(), rows);
}

}  // namespace

void add_status_commands(CLI::App& app, Context& ctx, Action& action) {
  auto* status = app.add_subcommand("status", "programs, maps, endpoints and counters of a node");
  status->callback([&ctx, &action] {
    action = [&ctx] {
      if (ctx.json())
        stream_status_json(ctx.open_node());
      else
        print_status(ctx.open_node().status());
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
