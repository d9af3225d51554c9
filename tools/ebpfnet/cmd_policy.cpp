// ebpfnet policy set|show|del, and monitor: network policy and its verdicts.
#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

constexpr const char* kPolicyHelp = R"(A policy per endpoint: ingress and egress rules, each `allow` or `deny`, and a
default per direction. Rules as options (repeatable) or in a YAML file:
  policy set web --ingress-default deny --ingress 'allow tcp 80' --ingress 'allow icmp from 10.0.0.0/8'
  policy set web -f web-policy.yaml
Rule: ACTION [PROTO [PORT|LO-HI]] [from PEER] (ingress) or [to PEER] (egress);
PROTO tcp|udp|icmp|any, PEER a CIDR, an address, an endpoint name or any.
The most specific peer prefix among matching rules decides, deny over allow at
equal prefix; no match: the default. Replies of allowed connections pass.)";

std::string read_source(const std::string& file) {
  if (file == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream f(file);
  if (!f) throw Error(Errc::not_found, "cannot read policy file " + file);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

PolicyAction action_of(const std::string& s, const char* what) {
  auto a = parse_policy_action(s);
  if (!a) throw Error(Errc::usage, std::string(what) + " '" + s + "' is not allow or deny");
  return *a;
}

std::string summary(const DirectionPolicy& d) {
  return std::to_string(d.rules.size()) + (d.rules.size() == 1 ? " rule" : " rules") + ", default " +
         std::string(to_string(d.default_action));
}

void print_policy(const EndpointPolicyView& v) {
  std::cout << v.endpoint << " (" << v.ip.str() << "): " << v.size.cidr_entries << " + "
            << v.size.port_entries << " map entries\n";
  for (PolicyDir d : {PolicyDir::ingress, PolicyDir::egress}) {
    const DirectionPolicy& dp = v.policy.dir(d);
    std::cout << "  " << to_string(d) << ": default " << to_string(dp.default_action) << "\n";
    for (size_t i = 0; i < dp.rules.size(); ++i)
      std::cout << "    " << i + 1 << "  " << format_rule(dp.rules[i], d) << "\n";
  }
}

nlohmann::json policy_json(const EndpointPolicyView& v) {
  return {{"endpoint", v.endpoint}, {"ip", v.ip.str()}, {"policy", to_json(v.policy)},
          {"cidr_entries", v.size.cidr_entries}, {"port_entries", v.size.port_entries}};
}

std::atomic<bool> g_interrupted{false};

void on_signal(int) { g_interrupted = true; }

// Wall-clock time of a bpf_ktime_get_ns() stamp.
std::string clock_of(uint64_t ts_ns) {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  const int64_t age = (int64_t(mono.tv_sec) * 1000000000 + mono.tv_nsec) - int64_t(ts_ns);
  const int64_t wall = int64_t(real.tv_sec) * 1000000000 + real.tv_nsec - age;
  const time_t secs = wall / 1000000000;
  tm t{};
  localtime_r(&secs, &t);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", t.tm_hour, t.tm_min, t.tm_sec,
                int((wall / 1000000) % 1000));
  return buf;
}

nlohmann::json event_json(const MonitorEvent& m) {
  const ebpfnet_event& e = m.raw;
  nlohmann::json j = {{"time", clock_of(e.ts_ns)},
                      {"type", e.type == EBPFNET_EVENT_DROP ? "drop" : "flow"},
                      {"proto", proto_name(e.tuple.proto)},
                      {"src", addr_port(e.tuple.saddr, e.tuple.sport, e.tuple.proto)},
                      {"dst", addr_port(e.tuple.daddr, e.tuple.dport, e.tuple.proto)},
                      {"ifindex", e.ifindex},
                      {"len", e.len},
                      {"endpoint", m.endpoint}};
  if (e.type == EBPFNET_EVENT_DROP) j["reason"] = drop_reason_name(e.reason);
  if (!m.service.empty()) j["service"] = m.service;
  if (!m.rule.empty()) {
    j["direction"] = e.dir == EBPFNET_INGRESS ? "ingress" : "egress";
    j["rule"] = m.rule;
  }
  return j;
}

std::string event_line(const MonitorEvent& m) {
  const ebpfnet_event& e = m.raw;
  std::string s = clock_of(e.ts_ns) + " ";
  s += e.type == EBPFNET_EVENT_DROP ? "drop " + std::string(drop_reason_name(e.reason)) : std::string("flow");
  s += "  " + proto_name(e.tuple.proto) + " " + addr_port(e.tuple.saddr, e.tuple.sport, e.tuple.proto) +
       " -> " + addr_port(e.tuple.daddr, e.tuple.dport, e.tuple.proto);
  if (!m.endpoint.empty()) s += "  endpoint " + m.endpoint;
  if (!m.service.empty()) s += "  service " + m.service;
  if (!m.rule.empty()) s += "  (" + m.rule + ")";
  return s;
}

}  // namespace

void add_policy_commands(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string endpoint, file, ingress_default, egress_default;
    std::vector<std::string> ingress, egress;
    bool flows = false, drops = false;
    size_t count = 0;
    double duration = 0;
  };
  auto a = std::make_shared<Args>();

  auto* policy = app.add_subcommand("policy", "per-endpoint network policy, enforced in the datapath");
  policy->require_subcommand(1);
  policy->footer(kPolicyHelp);

  auto* set = policy->add_subcommand("set", "replace an endpoint's policy, atomically");
  set->footer(kPolicyHelp);
  set->add_option("ENDPOINT", a->endpoint, "the endpoint")->required();
  set->add_option("-f,--file", a->file, "a YAML policy file ('-': stdin)")->type_name("FILE");
  set->add_option("--ingress", a->ingress, "an ingress rule, e.g. 'allow tcp 80 from 10.0.0.0/8'")
      ->type_name("RULE");
  set->add_option("--egress", a->egress, "an egress rule, e.g. 'deny udp 53 to any'")->type_name("RULE");
  set->add_option("--ingress-default", a->ingress_default, "allow|deny when no ingress rule matches")
      ->type_name("ACTION");
  set->add_option("--egress-default", a->egress_default, "allow|deny when no egress rule matches")
      ->type_name("ACTION");
  set->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      const bool inline_rules = !a->ingress.empty() || !a->egress.empty() || !a->ingress_default.empty() ||
                                !a->egress_default.empty();
      if (!a->file.empty() && inline_rules)
        throw Error(Errc::usage, "give the policy either as a file (-f) or as rule options, not both");
      if (a->file.empty() && !inline_rules)
        throw Error(Errc::usage, "no policy given: -f FILE, or --ingress/--egress RULE and --*-default");
      PolicySource source;
      if (!a->file.empty()) {
        auto text = std::make_shared<std::string>(read_source(a->file));
        std::string name = a->file == "-" ? "<stdin>" : a->file;
        source = [text, name](const PeerResolver& r) { return parse_policy_yaml(*text, name, r); };
      } else {
        // Checked before the node is touched; parsed again under its lock.
        if (!a->ingress_default.empty()) action_of(a->ingress_default, "--ingress-default");
        if (!a->egress_default.empty()) action_of(a->egress_default, "--egress-default");
        source = [a](const PeerResolver& r) {
          Policy p;
          if (!a->ingress_default.empty()) p.ingress.default_action = action_of(a->ingress_default, "");
          if (!a->egress_default.empty()) p.egress.default_action = action_of(a->egress_default, "");
          for (const auto& t : a->ingress) p.ingress.rules.push_back(parse_policy_rule(t, PolicyDir::ingress, r));
          for (const auto& t : a->egress) p.egress.rules.push_back(parse_policy_rule(t, PolicyDir::egress, r));
          return p;
        };
      }
      Policy applied;
      PolicySize size = ctx.open_node().set_policy(a->endpoint, [&](const PeerResolver& r) {
        applied = source(r);
        return applied;
      });
      if (ctx.json())
        std::cout << nlohmann::json{{"endpoint", a->endpoint}, {"policy", to_json(applied)},
                                    {"cidr_entries", size.cidr_entries}, {"port_entries", size.port_entries}}
                         .dump()
                  << "\n";
      else
        std::cout << "policy of " << a->endpoint << " set: ingress " << summary(applied.ingress) << "; egress "
                  << summary(applied.egress) << "\n";
      return 0;
    };
  });

  auto* show = policy->add_subcommand("show", "the policies of the node's endpoints (or of one)");
  show->add_option("ENDPOINT", a->endpoint, "only this endpoint");
  show->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      Node node = ctx.open_node();
      auto all = node.policies();
      if (!a->endpoint.empty()) {
        std::erase_if(all, [&](const EndpointPolicyView& v) { return v.endpoint != a->endpoint; });
        if (all.empty()) {
          auto eps = node.endpoints();
          if (std::none_of(eps.begin(), eps.end(), [&](const EndpointView& e) { return e.rec.name == a->endpoint; }))
            throw Error(Errc::not_found, "endpoint '" + a->endpoint + "' does not exist on node " + ctx.node);
          if (ctx.json())
            std::cout << nlohmann::json{{"endpoint", a->endpoint}, {"policy", nullptr}}.dump() << "\n";
          else
            std::cout << a->endpoint << " has no policy: all its traffic is allowed\n";
          return 0;
        }
      }
      if (ctx.json()) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& v : all) j.push_back(policy_json(v));
        std::cout << (a->endpoint.empty() ? j : j.at(0)).dump(2) << "\n";
      } else {
        if (all.empty()) std::cout << "no endpoint of node " << ctx.node << " has a policy\n";
        for (const auto& v : all) print_policy(v);
      }
      return 0;
    };
  });

  auto* del = policy->add_subcommand("del", "remove an endpoint's policy: all its traffic is allowed again");
  del->add_option("ENDPOINT", a->endpoint, "the endpoint")->required();
  del->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      bool had = ctx.open_node().delete_policy(a->endpoint);
      if (ctx.json())
        std::cout << nlohmann::json{{"endpoint", a->endpoint}, {"removed", had}}.dump() << "\n";
      else
        std::cout << (had ? "policy of " + a->endpoint + " removed" : a->endpoint + " had no policy") << "\n";
      return 0;
    };
  });

  auto* monitor = app.add_subcommand(
      "monitor", "live drops of the datapath, with their reason and, for policy, the rule that decided; "
                 "Ctrl-C stops");
  monitor->add_flag("--drops", a->drops, "drops, with their reason (always shown)");
  monitor->add_flag("--flows", a->flows, "also every new connection the datapath allows and tracks");
  monitor->add_option("--count", a->count, "stop after this many events")->type_name("N");
  monitor->add_option("--duration", a->duration, "stop after this many seconds")->type_name("SECONDS");
  monitor->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      struct sigaction sa{};
      sa.sa_handler = on_signal;
      sigaction(SIGINT, &sa, nullptr);
      sigaction(SIGTERM, &sa, nullptr);
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(a->duration);
      size_t seen = 0;
      const MonitorOptions opts{.drops = true, .flows = a->flows};
      if (!ctx.json()) std::cerr << "ebpfnet: monitoring node " << ctx.node << " (Ctrl-C stops)\n";
      ctx.open_node().monitor(
          opts,
          [&](const MonitorEvent& m) {
            if (ctx.json())
              std::cout << event_json(m).dump() << std::endl;
            else
              std::cout << event_line(m) << std::endl;
            return a->count == 0 || ++seen < a->count;
          },
          [&] { return !g_interrupted && (a->duration <= 0 || std::chrono::steady_clock::now() < until); });
      return 0;
    };
  });
}

}  // namespace ebpfnet::cli
