// ebpfnet apply -f node.yaml [--diff]: converge a node to its description.
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
#include "ebpfnet/apply.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {
namespace {

constexpr const char* kApplyHelp = R"(node.yaml describes the node's whole desired state; apply makes the node so:
  node: lab                      # "root": the machine's root namespace (sandbox: false)
  pool: 10.240.0.0/24
  uplink: {sandbox: true}        # or {outside: NAMESPACE}, or {interface: eth0} in production
  conntrack: {size: 262144, timeouts: {udp: 30}}      # omitted: the defaults
  published:
    - {endpoint: web, proto: tcp, port: 8080, target_port: 80}
  routes:
    - {dst: 10.240.2.0/24, via: 198.18.0.1}
  policies:
    web:                         # the same schema as `policy set -f`
      ingress:
        default: deny
        rules: [{action: allow, proto: tcp, port: 80}]
A node that does not exist is created (sandbox) and attached. Published ports,
routes and policies the node has and the file omits are removed. Endpoints come
from runtimes or `endpoint add`; naming one that does not exist is an error.
The whole file is checked before anything changes (errors: FILE:LINE: reason);
each change is then one transactional operation. Run twice, apply changes
nothing. --diff prints the plan (+ add, - remove, ~ change) and changes nothing.
More: docs/apply.md in the repository.)";

std::string read_file(const std::string& file) {
  if (file == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream f(file);
  if (!f) throw Error(Errc::not_found, "cannot read node file " + file);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

nlohmann::json plan_json(const apply::Plan& plan, bool applied) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& c : plan.changes)
    changes.push_back({{"op", std::string(1, apply::symbol(c.op))},
                       {"kind", c.kind},
                       {"what", c.what},
                       {"details", c.details}});
  return {{"node", plan.node}, {"changes", changes}, {"applied", applied}};
}

void print_plan(const apply::Plan& plan) {
  for (const auto& c : plan.changes) {
    std::cout << apply::symbol(c.op) << " " << c.kind << " " << c.what << "\n";
    for (const auto& d : c.details) std::cout << "    " << d << "\n";
  }
}

}  // namespace

void add_apply_command(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string file;
    bool diff = false;
  };
  auto a = std::make_shared<Args>();
  auto* apply = app.add_subcommand("apply", "converge a node to a node.yaml (idempotent; --diff shows the plan)");
  apply->footer(kApplyHelp);
  apply->add_option("-f,--file", a->file, "the node's description ('-': stdin)")->type_name("FILE")->required();
  apply->add_flag("--diff", a->diff, "print what apply would change, change nothing");
  apply->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      const std::string source = a->file == "-" ? "<stdin>" : a->file;
      const apply::Plan plan = apply::plan_file(ctx.env, read_file(a->file), source,
                                                ctx.node_given ? std::optional(ctx.node) : std::nullopt);
      const bool applying = !a->diff && !plan.empty();
      if (applying) apply::carry_out(ctx.env, plan);
      if (ctx.json()) {
        std::cout << plan_json(plan, applying).dump(2) << "\n";
        return 0;
      }
      print_plan(plan);
      if (plan.empty())
        std::cout << "node " << plan.node << ": no changes\n";
      else
        std::cout << "node " << plan.node << ": " << plan.changes.size() << " change(s) "
                  << (applying ? "applied" : "to apply (--diff: nothing changed)") << "\n";
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
