// ebpfnet prefilter add|del|list: sources dropped by XDP on the uplink.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

std::vector<Ipv4Cidr> parse_entries(const std::vector<std::string>& args) {
  std::vector<Ipv4Cidr> out;
  for (const auto& a : args) out.push_back(parse_prefilter_entry(a));
  return out;
}

std::string joined(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

void add_prefilter_commands(CLI::App& app, Context& ctx, Action& action) {
  auto entries = std::make_shared<std::vector<std::string>>();
  auto* pf = app.add_subcommand(
      "prefilter", "sources dropped by XDP on the node's uplink before anything else sees them "
                   "(deny lists of prefixes and addresses, with drop counters)");
  pf->require_subcommand(1);

  auto* add = pf->add_subcommand("add", "prefilter add CIDR|ADDRESS...: deny these sources (all or none)");
  add->add_option("ENTRY", *entries, "a prefix (203.0.113.0/24) or an address (198.51.100.7)")->required();
  add->callback([&ctx, &action, entries] {
    action = [&ctx, entries] {
      ctx.open_node().prefilter_add(parse_entries(*entries));
      if (!ctx.json()) std::cout << "prefilter: " << joined(*entries) << " denied on the uplink\n";
      return 0;
    };
  });

  auto* del = pf->add_subcommand("del", "prefilter del CIDR|ADDRESS...: allow these sources again (all or none)");
  del->add_option("ENTRY", *entries, "an entry as it was added")->required();
  del->callback([&ctx, &action, entries] {
    action = [&ctx, entries] {
      ctx.open_node().prefilter_del(parse_entries(*entries));
      if (!ctx.json()) std::cout << "prefilter: " << joined(*entries) << " removed\n";
      return 0;
    };
  });

  pf->add_subcommand("list", "the denied sources and what each dropped")->callback([&ctx, &action] {
    action = [&ctx] {
      nlohmann::json j = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows;
      for (const auto& e : ctx.open_node().prefilter()) {
        const std::string entry = prefilter_entry_str(e.cidr);
        const char* kind = e.cidr.prefix == 32 ? "address" : "prefix";
        j.push_back({{"entry", entry}, {"kind", kind}, {"dropped_packets", e.packets}, {"dropped_bytes", e.bytes}});
        rows.push_back({entry, kind, std::to_string(e.packets), std::to_string(e.bytes)});
      }
      if (ctx.json())
        std::cout << j.dump(2) << "\n";
      else
        print_table({"ENTRY", "KIND", "DROPPED PKTS", "DROPPED BYTES"}, rows);
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
