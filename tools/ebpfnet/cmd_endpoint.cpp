// ebpfnet endpoint add|del|list.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "output.hpp"

namespace ebpfnet::cli {

void add_endpoint_commands(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string ip, ip6, netns, ifname = "eth0";
    std::vector<std::string> names;
    int pid = 0;
  };
  auto a = std::make_shared<Args>();

  auto* ep = app.add_subcommand("endpoint", "endpoints: namespaces wired to the node by a veth");
  ep->require_subcommand(1);

  auto* add = ep->add_subcommand(
      "add", "wire a namespace to the node: veth, address, routes, datapath entry; several names "
             "add several endpoints at once (all or none), much faster than one by one");
  add->add_option("NAME", a->names, "endpoint name (and the new namespace's name)")->required();
  auto* ip_opt = add->add_option("--ip", a->ip, "its address (default: the next free one of the pool)");
  auto* ip6_opt = add->add_option(
      "--ip6", a->ip6, "its IPv6 address on a dual-stack node (default: its IPv4 address's offset in the IPv6 pool)");
  auto* netns_opt = add->add_option(
      "--netns", a->netns, "wire an existing namespace (a name under /run/netns or a path)");
  auto* pid_opt = add->add_option("--pid", a->pid, "wire the namespace of a running process (a container)")
                      ->excludes(netns_opt);
  add->add_option("--ifname", a->ifname, "interface name inside the namespace")->capture_default_str();
  add->callback([&ctx, &action, a, ip_opt, ip6_opt, netns_opt, pid_opt] {
    const bool one_only = ip_opt->count() || ip6_opt->count() || netns_opt->count() || pid_opt->count();
    action = [&ctx, a, given = ip_opt->count() > 0, given6 = ip6_opt->count() > 0, one_only] {
      if (one_only && a->names.size() > 1)
        throw Error(Errc::usage, "--ip, --ip6, --netns and --pid describe one endpoint; give one NAME with them");
      std::vector<EndpointRequest> reqs;
      for (const auto& name : a->names) {
        EndpointRequest req;
        req.name = name;
        req.ifname = a->ifname;
        if (given) {
          req.ip = Ipv4::parse(a->ip);
          if (!req.ip) throw Error(Errc::usage, "'" + a->ip + "' is not an IPv4 address");
        }
        if (given6) {
          req.ip6 = Ipv6::parse(a->ip6);
          if (!req.ip6) throw Error(Errc::usage, "'" + a->ip6 + "' is not an IPv6 address");
        }
        if (!a->netns.empty()) req.netns = a->netns;
        if (a->pid != 0) req.netns = "pid:" + std::to_string(a->pid);
        reqs.push_back(std::move(req));
      }
      nlohmann::json all = nlohmann::json::array();
      for (const EndpointRecord& r : ctx.open_node().add_endpoints(reqs)) {
        if (ctx.json()) {
          // Counters and the attached program belong to list and status.
          nlohmann::json j = to_json(EndpointView{r, std::nullopt, 0});
          j.erase("prog_id");
          j.erase("stats");
          all.push_back(j);
        } else {
          std::cout << "endpoint " << r.name << " " << r.ip.str() << (r.ip6 ? " " + r.ip6->str() : std::string())
                    << " (netns " << r.netns << ", veth "
                    << r.host_ifname << ")\n";
        }
      }
      // One endpoint: its object; several: an array of them.
      if (ctx.json()) std::cout << (all.size() == 1 ? all.at(0) : all).dump() << "\n";
      return 0;
    };
  });

  auto* del = ep->add_subcommand("del", "remove an endpoint: veth, address, datapath entry, and "
                                        "the namespace if ebpfnet created it; several names remove "
                                        "several at once (all or none), much faster than one by one");
  del->add_option("NAME", a->names, "endpoint name")->required();
  del->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      ctx.open_node().del_endpoints(a->names);
      if (!ctx.json())
        for (const auto& name : a->names) std::cout << "endpoint " << name << " deleted\n";
      return 0;
    };
  });

  auto* list = ep->add_subcommand("list", "list endpoints with their counters");
  list->callback([&ctx, &action] {
    action = [&ctx] {
      if (ctx.json()) {
        // One endpoint per line as it is read: a node of 10,000 is never
        // one JSON document in memory.
        bool first = true;
        std::cout << "[";
        ctx.open_node().each_endpoint([&](const EndpointView& v) {
          std::cout << (first ? "\n  " : ",\n  ") << to_json(v).dump();
          first = false;
        });
        std::cout << (first ? "]\n" : "\n]\n");
      } else {
        std::vector<std::vector<std::string>> rows;
        ctx.open_node().each_endpoint([&](const EndpointView& v) { rows.push_back(endpoint_row(v)); });
        print_table(endpoint_header(), rows);
      }
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
