// ebpfnet node create|delete|list, and attach.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {

namespace {

nlohmann::json attach_json(const std::string& node, const AttachResult& r) {
  nlohmann::json progs = nlohmann::json::array(), maps = nlohmann::json::array();
  for (const auto& p : r.programs)
    progs.push_back({{"program", p.program}, {"from_tag", p.from_tag}, {"to_tag", p.to_tag},
                     {"attachments", p.attachments}});
  for (const auto& m : r.maps)
    maps.push_back({{"name", m.name}, {"from", m.from}, {"to", m.to}, {"how", m.how}, {"entries", m.entries}});
  return {{"node", node},         {"loaded", r.loaded},       {"dry_run", r.dry_run},
          {"from_abi", r.from_abi}, {"to_abi", r.to_abi},     {"programs", progs},
          {"maps", maps},          {"links_repaired", r.links_repaired}};
}

std::string short_tag(const std::string& tag) { return tag.empty() ? "none" : tag.substr(0, 8) + ".."; }

void print_attach(const std::string& node, const AttachResult& r) {
  if (!r.loaded) {
    std::cout << "datapath of node " << node << " is up to date (ABI " << r.to_abi << ")";
    if (r.links_repaired) std::cout << "; re-attached " << r.links_repaired << " program(s)";
    std::cout << "\n";
    return;
  }
  std::cout << "datapath of node " << node << (r.dry_run ? " would be " : " ");
  if (r.from_abi == 0) {
    std::cout << "loaded and pinned (ABI " << r.to_abi << ")\n";
    return;
  }
  std::cout << (r.from_abi == r.to_abi ? "reloaded" : "upgraded") << " (ABI " << r.from_abi << " -> " << r.to_abi
            << ")\n";
  for (const auto& p : r.programs) {
    std::cout << "  " << p.program << " " << short_tag(p.from_tag) << " -> "
              << (r.dry_run ? "new" : short_tag(p.to_tag));
    if (!r.dry_run) std::cout << " on " << p.attachments << " attachment(s)";
    std::cout << "\n";
  }
  for (const auto& m : r.maps) {
    std::cout << "  map " << m.name << (r.dry_run ? " would be " : " ") << (m.from.empty() ? "created" : m.how)
              << ": " << (m.from.empty() ? "" : m.from + " -> ") << m.to;
    if (m.how == "copied" && !r.dry_run) std::cout << " (" << m.entries << " entries kept)";
    std::cout << "\n";
  }
}

}  // namespace

void add_node_commands(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string name, cidr, cidr6, tc_mode = "auto", uplink, outside;
    bool uplink_sandbox = false, dry_run = false;
    std::vector<std::string> ct_timeouts;
    uint32_t ct_size = 0;
    std::string socket_lb;
  };
  auto a = std::make_shared<Args>();

  auto* node = app.add_subcommand("node", "sandbox nodes: a namespace that plays the host");
  node->require_subcommand(1);

  auto* create = node->add_subcommand("create", "create a sandbox node with an address pool");
  create->add_option("NAME", a->name, "node name (also its namespace's name)")->required();
  create->add_option("--cidr", a->cidr, "the endpoints' address pool; its first address is the gateway")
      ->required();
  create->add_option("--cidr6", a->cidr6,
                     "dual stack: the endpoints' IPv6 pool (/48 to /120, e.g. fd00:240::/64); its first "
                     "address is the IPv6 gateway, and each endpoint gets an address of both pools");
  create->add_flag("--uplink-sandbox", a->uplink_sandbox,
                   "also make a namespace NAME-out playing the internet, wired to the node's eth0 "
                   "(its uplink, 198.18.0.2/24; the outside is 198.18.0.1 and 203.0.113.1; with "
                   "--cidr6 also fd18::2/64, fd18::1 and 2001:db8:ffff::1)");
  create->add_option("--outside", a->outside,
                     "with --uplink-sandbox: join this existing outside namespace (another node's "
                     "NAME-out) instead, which then routes between the nodes");
  create->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      if (!a->outside.empty() && !a->uplink_sandbox)
        throw Error(Errc::usage, "--outside goes with --uplink-sandbox");
      std::optional<Ipv6Cidr> cidr6;
      if (!a->cidr6.empty()) cidr6 = parse_cidr6(a->cidr6);
      Node::create(ctx.env, a->name, parse_cidr(a->cidr), {}, a->uplink_sandbox, a->outside, cidr6);
      if (ctx.json())
        std::cout << nlohmann::json{{"node", a->name}, {"cidr", a->cidr}}.dump() << "\n";
      else
        std::cout << "node " << a->name << " created (pool " << a->cidr << ")\n";
      return 0;
    };
  });

  auto* del = node->add_subcommand("delete", "delete a node: its endpoints, datapath, namespace, state");
  del->add_option("NAME", a->name, "node name")->required();
  del->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      Node::destroy(ctx.env, a->name);
      if (!ctx.json()) std::cout << "node " << a->name << " deleted\n";
      return 0;
    };
  });

  auto* list = node->add_subcommand("list", "list nodes");
  list->callback([&ctx, &action] {
    action = [&ctx] {
      auto names = Node::list(ctx.env);
      if (ctx.json()) {
        std::cout << nlohmann::json(names).dump() << "\n";
      } else {
        for (const auto& n : names) std::cout << n << "\n";
      }
      return 0;
    };
  });

  auto* attach = app.add_subcommand(
      "attach",
      "load and pin the node's datapath, or upgrade a pinned one in place (idempotent; repairs "
      "missing links)");
  attach->footer(
      "On a node whose pinned datapath is older than this binary, attach loads the new programs,\n"
      "migrates every map whose layout changed (conntrack and NAT flows are copied, the rest is\n"
      "rewritten from node state), switches each attachment atomically and removes the old maps.\n"
      "Established connections keep working. A failure leaves the old datapath running unchanged.\n"
      "A pinned datapath newer than this binary is refused (exit 7).");
  attach->add_option("--cidr", a->cidr, "address pool (needed the first time on the root node)");
  attach->add_option("--tc-mode", a->tc_mode,
                     "how programs attach: auto keeps each attachment's mode (new endpoint veths "
                     "clsact, the uplink TCX where the kernel has it); tcx or clsact moves every "
                     "attachment to that mode, the new program first")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  attach->add_option("--uplink", a->uplink,
                     "the node's way out (production: eth0): masquerade and published ports use "
                     "its address");
  attach->add_option("--ct-timeout", a->ct_timeouts,
                     "a conntrack timeout in seconds (defaults: syn=60, tcp=21600, closing=10, "
                     "udp=60, icmp=30); the others keep their values")
      ->type_name("NAME=SECONDS");
  attach->add_option("--ct-size", a->ct_size,
                     "conntrack entries, two per flow (default 262144); a change migrates the flows")
      ->type_name("N");
  attach->add_option("--socket-lb", a->socket_lb,
                     "connect-time service balancing for the node's endpoints (cgroup socket hooks; default "
                     "on where the kernel has them); off: every connection is balanced per packet at tc")
      ->check(CLI::IsMember({"on", "off"}))
      ->type_name("on|off");
  attach->add_flag("--dry-run", a->dry_run, "say what attach would do, change nothing");
  attach->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      AttachOptions opts;
      if (!a->uplink.empty()) opts.uplink = a->uplink;
      opts.ct_timeouts = a->ct_timeouts;
      if (!a->cidr.empty()) opts.cidr = parse_cidr(a->cidr);
      if (a->tc_mode != "auto") opts.tc_mode = parse_tc_mode(a->tc_mode);
      if (a->ct_size) opts.ct_size = a->ct_size;
      if (!a->socket_lb.empty()) opts.socket_lb = a->socket_lb == "on";
      opts.dry_run = a->dry_run;
      AttachResult r = ctx.open_node().attach(opts);
      if (ctx.json())
        std::cout << attach_json(ctx.node, r).dump() << "\n";
      else
        print_attach(ctx.node, r);
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
