// ebpfnet service add|del|backend|drain|backend-del|list: virtual IPs and
// node ports balanced over endpoints of the node.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

struct ServiceArgs {
  std::string name, address, node_port, backend;
  std::vector<std::string> backends, names;
  uint32_t affinity = 0;
};

std::string address_str(const ServiceRecord& v) {
  return v.vip ? v.vip->str() + ":" + std::to_string(v.port) + "/" + v.proto : "-";
}

std::string node_port_str(const ServiceRecord& v) {
  return v.node_port ? std::to_string(v.node_port) + "/" + v.proto : "-";
}

nlohmann::json to_json(const ServiceView& s) {
  const ServiceRecord& v = s.record;
  nlohmann::json backends = nlohmann::json::array();
  for (const auto& b : s.backends)
    backends.push_back({{"endpoint", b.record.endpoint},
                        {"address", b.ip.str()},
                        {"port", b.record.port},
                        {"weight", b.record.weight},
                        {"state", b.record.draining ? "draining" : "active"},
                        {"connections", b.connections}});
  return {{"name", v.name},
          {"proto", v.proto},
          {"vip", v.vip ? nlohmann::json(v.vip->str()) : nlohmann::json(nullptr)},
          {"port", v.vip ? nlohmann::json(v.port) : nlohmann::json(nullptr)},
          {"node_port", v.node_port ? nlohmann::json(v.node_port) : nlohmann::json(nullptr)},
          {"affinity_seconds", v.affinity_s},
          {"backends", backends}};
}

}  // namespace

void add_service_commands(CLI::App& app, Context& ctx, Action& action) {
  auto args = std::make_shared<ServiceArgs>();
  auto* svc = app.add_subcommand(
      "service", "virtual IPs and node ports balanced over endpoints of the node (Maglev; at connect time "
                 "for the node's endpoints where the kernel has cgroup socket hooks, per packet otherwise)");
  svc->require_subcommand(1);

  auto* add = svc->add_subcommand(
      "add", "service add NAME [VIP:PORT[/PROTO]] [--node-port PORT[/PROTO]] --backend EP[:PORT][,weight=N]...\n"
             "  e.g. service add api 10.96.0.10:80/tcp --backend web1:8080 --backend web2:8080,weight=2");
  add->add_option("NAME", args->name, "the service's name")->required();
  add->add_option("ADDRESS", args->address,
                  "virtual IP and port, protocol tcp (default) or udp: 10.96.0.10:80/tcp; outside the node's pool");
  add->add_option("--node-port", args->node_port,
                  "also (or only) reachable on the uplink's address at this port: 30080/tcp");
  add->add_option("--backend", args->backends,
                  "an endpoint of the node and its port (default: the service's port), with a weight "
                  "(1-100, default 1): web1:8080,weight=2; repeatable, may be none");
  add->add_option("--affinity", args->affinity,
                  "session affinity: a client keeps its backend while it returns within SECONDS (0: none)");
  add->callback([&ctx, &action, args] {
    action = [&ctx, args] {
      ServiceSpec spec;
      spec.name = args->name;
      spec.affinity_s = args->affinity;
      if (!args->address.empty()) parse_service_address(args->address, spec);
      if (!args->node_port.empty()) parse_node_port(args->node_port, spec);
      for (const auto& b : args->backends) spec.backends.push_back(parse_backend(b));
      ctx.open_node().service_add(spec);
      if (!ctx.json())
        std::cout << "service " << spec.name << ": "
                  << (spec.vip ? spec.vip->str() + ":" + std::to_string(spec.port) : std::string())
                  << (spec.vip && spec.node_port ? " and " : "")
                  << (spec.node_port ? "node port " + std::to_string(spec.node_port) : std::string()) << "/"
                  << spec.proto << ", " << spec.backends.size() << " backend(s)\n";
      return 0;
    };
  });

  auto* del = svc->add_subcommand("del", "service del NAME...: remove services and end their connections");
  del->add_option("NAME", args->names, "a service")->required();
  del->callback([&ctx, &action, args] {
    action = [&ctx, args] {
      ctx.open_node().service_del(args->names);
      if (!ctx.json())
        for (const auto& n : args->names) std::cout << "service " << n << ": removed\n";
      return 0;
    };
  });

  auto* backend = svc->add_subcommand(
      "backend", "service backend NAME EP[:PORT][,weight=N]: add a backend, change its weight, or make a "
                 "draining one active again");
  backend->add_option("NAME", args->name, "the service")->required();
  backend->add_option("BACKEND", args->backend, "web3:8080 or web3:8080,weight=2")->required();
  backend->callback([&ctx, &action, args] {
    action = [&ctx, args] {
      ctx.open_node().service_backend(args->name, parse_backend(args->backend));
      if (!ctx.json()) std::cout << "service " << args->name << ": backend " << args->backend << " active\n";
      return 0;
    };
  });

  auto* drain = svc->add_subcommand(
      "drain", "service drain NAME EP[:PORT]: the backend keeps its connections and takes no new one");
  drain->add_option("NAME", args->name, "the service")->required();
  drain->add_option("BACKEND", args->backend, "web1:8080, or web1 when it serves on one port")->required();
  drain->callback([&ctx, &action, args] {
    action = [&ctx, args] {
      ctx.open_node().service_drain(args->name, parse_backend_ref(args->backend));
      if (!ctx.json()) std::cout << "service " << args->name << ": backend " << args->backend << " draining\n";
      return 0;
    };
  });

  auto* bdel = svc->add_subcommand(
      "backend-del", "service backend-del NAME EP[:PORT]: remove a backend; its connections end");
  bdel->add_option("NAME", args->name, "the service")->required();
  bdel->add_option("BACKEND", args->backend, "web1:8080, or web1 when it serves on one port")->required();
  bdel->callback([&ctx, &action, args] {
    action = [&ctx, args] {
      ctx.open_node().service_backend_del(args->name, parse_backend_ref(args->backend));
      if (!ctx.json()) std::cout << "service " << args->name << ": backend " << args->backend << " removed\n";
      return 0;
    };
  });

  svc->add_subcommand("list", "services, their backends, states and connections balanced to each")
      ->callback([&ctx, &action] {
        action = [&ctx] {
          nlohmann::json j = nlohmann::json::array();
          std::vector<std::vector<std::string>> rows;
          for (const auto& s : ctx.open_node().services()) {
            j.push_back(to_json(s));
            const ServiceRecord& v = s.record;
            const std::string affinity = v.affinity_s ? std::to_string(v.affinity_s) + "s" : "-";
            if (s.backends.empty())
              rows.push_back({v.name, address_str(v), node_port_str(v), affinity, "-", "-", "-", "-"});
            for (size_t i = 0; i < s.backends.size(); ++i) {
              const BackendView& b = s.backends[i];
              rows.push_back({i ? "" : v.name, i ? "" : address_str(v), i ? "" : node_port_str(v),
                              i ? "" : affinity,
                              b.record.endpoint + " " + b.ip.str() + ":" + std::to_string(b.record.port),
                              std::to_string(b.record.weight), b.record.draining ? "draining" : "active",
                              std::to_string(b.connections)});
            }
          }
          if (ctx.json())
            std::cout << j.dump(2) << "\n";
          else
            print_table({"SERVICE", "ADDRESS", "NODE PORT", "AFFINITY", "BACKEND", "WEIGHT", "STATE", "CONNECTIONS"},
                        rows);
          return 0;
        };
      });
}

}  // namespace ebpfnet::cli
