// ebpfnet: container networking on an eBPF datapath, one command.
#include "app.hpp"

int main(int argc, char** argv) {
  using namespace ebpfnet::cli;
  exec_sibling(argc, argv);
  return run(argc, argv, [](CLI::App& app, Context& ctx, Action& action) {
    add_node_commands(app, ctx, action);
    add_endpoint_commands(app, ctx, action);
    add_ns_commands(app, ctx, action);
    add_status_commands(app, ctx, action);
    add_nat_commands(app, ctx, action);
    add_policy_commands(app, ctx, action);
    add_trace_command(app, ctx, action);
    add_prefilter_commands(app, ctx, action);
    add_service_commands(app, ctx, action);
    add_sibling_commands(app);
    add_apply_command(app, ctx, action);
    add_demo_command(app, ctx, action);
    add_bench_command(app, ctx, action);
  });
}
