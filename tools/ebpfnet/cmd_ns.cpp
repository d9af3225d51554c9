// ebpfnet ns add|del|list|exec|identify: named namespaces, iproute2-compatible.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cli {

void add_ns_commands(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string name;
    pid_t pid = 0;
  };
  auto a = std::make_shared<Args>();

  auto* ns = app.add_subcommand("ns", "named network namespaces, as `ip netns` has them");
  ns->require_subcommand(1);

  auto* add = ns->add_subcommand("add", "create a named namespace (visible to `ip netns`)");
  add->add_option("NAME", a->name, "namespace name")->required();
  add->callback([&action, a] {
    action = [a] {
      netns::add(a->name);
      return 0;
    };
  });

  auto* del = ns->add_subcommand("del", "delete a named namespace");
  del->add_option("NAME", a->name, "namespace name")->required();
  del->callback([&action, a] {
    action = [a] {
      netns::del(a->name);
      return 0;
    };
  });

  auto* list = ns->add_subcommand("list", "list named namespaces");
  list->callback([&ctx, &action] {
    action = [&ctx] {
      auto names = netns::list();
      if (ctx.json()) {
        std::cout << nlohmann::json(names).dump() << "\n";
      } else {
        for (const auto& n : names) std::cout << n << "\n";
      }
      return 0;
    };
  });

  auto* exec = ns->add_subcommand(
      "exec", "run a command in a namespace, as `ip netns exec` does: ns exec NAME CMD [ARGS...]");
  // Everything after NAME belongs to the command, flags included.
  exec->prefix_command()->fallthrough(false);  // main()'s fallthrough would take CMD
  exec->callback([&action, exec] {
    action = [exec]() -> int {
      auto rest = exec->remaining();
      if (rest.size() < 2) throw Error(Errc::usage, "usage: ebpfnet ns exec NAME CMD [ARGS...]");
      std::string name = rest.front();
      rest.erase(rest.begin());
      if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
      netns::exec(name, rest);
    };
  });

  auto* identify = ns->add_subcommand("identify", "name the namespace a process is in");
  identify->add_option("PID", a->pid, "process id")->required();
  identify->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      auto names = netns::identify(a->pid);
      if (ctx.json()) {
        std::cout << nlohmann::json(names).dump() << "\n";
      } else {
        for (const auto& n : names) std::cout << n << "\n";
      }
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
