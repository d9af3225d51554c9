// ebpfnet metrics: the node's datapath and state as Prometheus series, over
// HTTP (--listen) or once into a file for node_exporter (--textfile).
#include <iostream>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/metrics/render.hpp"
#include "ebpfnet/metrics/server.hpp"
#include "ebpfnet/metrics/snapshot.hpp"
#include "ebpfnet/metrics/textfile.hpp"

namespace ebpfnet::cli {
namespace {

constexpr const char* kMetricsHelp = R"(Prometheus metrics of a node, read from its pinned maps and state at every
scrape (never on the forwarding path; restart it at any time):
  ebpfnet --node lab metrics --listen 198.18.0.2            # http://198.18.0.2:9657/metrics until Ctrl-C or SIGTERM
  ebpfnet --node lab metrics --listen 10.0.0.5:9700         # another port
  ebpfnet --node lab metrics --textfile /var/lib/node_exporter/ebpfnet.prom   # written once, atomically
The address is one of the node's (a sandbox node listens in its namespace).
Default port 9657. Series (docs/metrics.md): forwarded packets and bytes by
direction, drops by reason, conntrack, NAT ports, map entries and pressure,
endpoints, published ports, policy, the datapath's ABI, build and program tags.
Exit codes: 2 a malformed address or one the node does not have, 4 the address
is in use, 3 no such node or no such directory for the textfile, 1 another
failure; the message names the address or file and the system's reason.)";

}  // namespace

void add_metrics_command(CLI::App& app, Context& ctx, Action& action) {
  auto* cmd = app.add_subcommand("metrics", kMetricsSummary);
  cmd->footer(kMetricsHelp);
  auto listen = std::make_shared<std::string>();
  auto textfile = std::make_shared<std::string>();
  auto per_endpoint = std::make_shared<bool>(false);
  auto* l = cmd->add_option("--listen", *listen, "serve GET /metrics on ADDR[:PORT] (port 9657 by default)")
                ->type_name("ADDR[:PORT]");
  auto* t = cmd->add_option("--textfile", *textfile, "write the metrics to FILE once (tmp + rename), then exit")
                ->type_name("FILE");
  l->excludes(t);
  cmd->add_flag("--per-endpoint", *per_endpoint,
                "also series per endpoint (its name as a label: one set per endpoint)");
  cmd->callback([&ctx, &action, listen, textfile, per_endpoint, l, t] {
    if (!*l && !*t) throw CLI::RequiredError("--listen ADDR[:PORT] or --textfile FILE");
    action = [&ctx, listen, textfile, per_endpoint, l] {
      const metrics::RenderOptions opts{*per_endpoint};
      auto scrape = [&] { return metrics::render(metrics::collect(ctx.env, ctx.node), opts).text(); };
      if (!*l) {
        metrics::write_textfile(*textfile, scrape());
        return 0;
      }
      const metrics::ListenAddress at = metrics::parse_listen(*listen);
      scrape();  // a node that does not exist is an error now, not at the first scrape
      metrics::serve(at, ctx.open_node().netns(), scrape, [&] {
        std::cout << "serving metrics of node " << ctx.node << " on http://" << at.str() << "/metrics\n"
                  << std::flush;
      });
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
