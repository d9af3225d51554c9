// ebpfnet node create|delete|list, and attach.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {

Ipv4Cidr parse_cidr(const std::string& s) {
  auto c = Ipv4Cidr::parse(s);
  if (!c) throw Error(Errc::usage, "'" + s + "' is not an IPv4 prefix such as 10.240.0.0/24");
  return *c;
}

void add_node_commands(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string name, cidr, tc_mode = "auto", uplink, outside;
    bool uplink_sandbox = false;
    std::vector<std::string> ct_timeouts;
  };
  auto a = std::make_shared<Args>();

  auto* node = app.add_subcommand("node", "sandbox nodes: a namespace that plays the host");
  node->require_subcommand(1);

  auto* create = node->add_subcommand("create", "create a sandbox node with an address pool");
  create->add_option("NAME", a->name, "node name (also its namespace's name)")->required();
  create->add_option("--cidr", a->cidr, "the endpoints' address pool; its first address is the gateway")
      ->required();
  create->add_flag("--uplink-sandbox", a->uplink_sandbox,
                   "also make a namespace NAME-out playing the internet, wired to the node's eth0 "
                   "(its uplink, 198.18.0.2/24; the outside is 198.18.0.1 and 203.0.113.1)");
  create->add_option("--outside", a->outside,
                     "with --uplink-sandbox: join this existing outside namespace (another node's "
                     "NAME-out) instead, which then routes between the nodes");
  create->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      if (!a->outside.empty() && !a->uplink_sandbox)
        throw Error(Errc::usage, "--outside goes with --uplink-sandbox");
      Node::create(ctx.env, a->name, parse_cidr(a->cidr), {}, a->uplink_sandbox, a->outside);
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
      "attach", "load and pin the node's datapath (idempotent; repairs missing links)");
  attach->add_option("--cidr", a->cidr, "address pool (needed the first time on the root node)");
  attach->add_option("--tc-mode", a->tc_mode, "how programs attach to veths")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  attach->add_option("--uplink", a->uplink,
                     "the node's way out (production: eth0): masquerade and published ports use "
                     "its address");
  attach->add_option("--ct-timeout", a->ct_timeouts,
                     "a conntrack timeout in seconds (defaults: syn=60, tcp=21600, closing=10, "
                     "udp=60, icmp=30); the others keep their values")
      ->type_name("NAME=SECONDS");
  attach->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      AttachOptions opts;
      if (!a->uplink.empty()) opts.uplink = a->uplink;
      opts.ct_timeouts = a->ct_timeouts;
      if (!a->cidr.empty()) opts.cidr = parse_cidr(a->cidr);
      if (a->tc_mode != "auto") opts.tc_mode = parse_tc_mode(a->tc_mode);
      AttachResult r = ctx.open_node().attach(opts);
      if (ctx.json()) {
        std::cout << nlohmann::json{{"node", ctx.node}, {"loaded", r.loaded},
                                    {"links_repaired", r.links_repaired}}
                         .dump()
                  << "\n";
      } else if (r.loaded) {
        std::cout << "datapath of node " << ctx.node << " loaded and pinned\n";
      } else {
        std::cout << "datapath of node " << ctx.node << " already attached";
        if (r.links_repaired) std::cout << "; re-attached " << r.links_repaired << " endpoint(s)";
        std::cout << "\n";
      }
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
