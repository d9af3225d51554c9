// ebpfnet expose|unexpose|conntrack: published ports and the flow table.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <iostream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "ebpfnet/error.hpp"
#include "output.hpp"

namespace ebpfnet::cli {
namespace {

uint16_t parse_port(std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
    throw Error(Errc::usage, "port '" + std::string(s) + "' is not a number from 1 to 65535");
  return static_cast<uint16_t>(v);
}

// "80/tcp" (protocol defaults to tcp, as with docker -p).
std::pair<uint16_t, std::string> parse_port_spec(const std::string& spec) {
  auto slash = spec.find('/');
  std::string proto = slash == std::string::npos ? "tcp" : spec.substr(slash + 1);
  if (proto != "tcp" && proto != "udp")
    throw Error(Errc::usage, "protocol '" + proto + "' in '" + spec + "' is not tcp or udp");
  return {parse_port(std::string_view(spec).substr(0, slash)), proto};
}

std::string state_name(uint8_t proto, uint8_t st) {
  if (st == EBPFNET_CT_CLOSING) return "closing";
  if (st == EBPFNET_CT_ESTABLISHED) return proto == IPPROTO_TCP ? "established" : "replied";
  return proto == IPPROTO_TCP ? "syn-sent" : "unreplied";
}

std::string nat_kind(uint8_t flags) {
  return (flags & EBPFNET_CT_F_DNAT) ? "dnat" : (flags & EBPFNET_CT_F_SNAT) ? "snat" : "none";
}

double seconds_left(uint64_t expires_ns) {
  const uint64_t now = monotonic_ns();
  return expires_ns > now ? double(expires_ns - now) / 1e9 : 0;
}

// The service a flow balanced by tc addressed, and the backend it took
// ("endpoint:port"); nullopt for other flows.
std::optional<std::pair<std::string, std::string>> service_of(const CtFlow& f,
                                                              const std::vector<ServiceView>& services) {
  if (!(f.entry.flags & EBPFNET_CT_F_SERVICE)) return std::nullopt;
  const auto& k = f.key;
  const auto& x = f.entry.xlate;
  for (const auto& v : services) {
    const ServiceRecord& r = v.record;
    if (proto_name(k.proto) != r.proto) continue;
    const uint16_t port = ntohs(k.dport);
    if (!((r.vip && r.vip->be() == k.daddr && r.port == port) || (r.node_port && r.node_port == port))) continue;
    std::string backend = addr_port(x.daddr, x.dport, x.proto);
    for (const auto& b : v.backends)
      if (b.ip.be() == x.daddr && htons(b.record.port) == x.dport)
        backend = b.record.endpoint + ":" + std::to_string(b.record.port);
    return std::pair{r.name, backend};
  }
  return std::nullopt;
}

void print_flows(const Context& ctx, const std::vector<CtFlow>& flows, const std::vector<ServiceView>& services) {
  nlohmann::json j = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : flows) {
    // A flow shows once, from its original direction.
    if (f.entry.flags & EBPFNET_CT_F_REPLY) continue;
    const auto& k = f.key;
    const auto& x = f.entry.xlate;
    std::string proto = proto_name(k.proto);
    std::string from = addr_port(k.saddr, k.sport, k.proto), to = addr_port(k.daddr, k.dport, k.proto);
    std::string xfrom = addr_port(x.saddr, x.sport, x.proto), xto = addr_port(x.daddr, x.dport, x.proto);
    std::string state = state_name(k.proto, f.entry.state);
    double ttl = seconds_left(f.entry.expires_ns);
    const auto svc = service_of(f, services);
    nlohmann::json row = {{"proto", proto}, {"src", from}, {"dst", to}, {"nat_src", xfrom}, {"nat_dst", xto},
                          {"nat", nat_kind(f.entry.flags)}, {"state", state}, {"expires_in_s", ttl},
                          {"packets", f.entry.packets}, {"bytes", f.entry.bytes}};
    if (svc) {
      row["service"] = svc->first;
      row["backend"] = svc->second;
    }
    j.push_back(row);
    char ttl_s[16];
    std::snprintf(ttl_s, sizeof ttl_s, "%.0fs", ttl);
    rows.push_back({proto, from + " -> " + to, xfrom + " -> " + xto,
                    svc ? "service " + svc->first + " -> " + svc->second : nat_kind(f.entry.flags), state, ttl_s,
                    std::to_string(f.entry.packets)});
  }
  if (ctx.json())
    std::cout << j.dump(2) << "\n";
  else
    print_table({"PROTO", "FLOW", "TRANSLATED", "NAT", "STATE", "EXPIRES", "PKTS"}, rows);
}

}  // namespace

void add_nat_commands(CLI::App& app, Context& ctx, Action& action) {
  struct Args {
    std::string endpoint, spec;
    std::vector<std::string> via;
    std::string port;
  };
  auto a = std::make_shared<Args>();

  auto* expose = app.add_subcommand(
      "expose", "publish an endpoint's port on the node's uplink address (like docker -p): "
                "expose ENDPOINT PORT[/tcp|udp] [--port N]; `expose list` lists them");
  expose->add_option("ENDPOINT", a->endpoint, "the endpoint");
  expose->add_option("PORT", a->spec, "its port and protocol, e.g. 80/tcp");
  expose->add_option("--port", a->port, "the port on the uplink address (default: the same)");
  expose->callback([&ctx, &action, a, expose] {
    if (expose->get_subcommands().size() > 0) return;
    action = [&ctx, a] {
      if (a->endpoint.empty() || a->spec.empty())
        throw Error(Errc::usage, "usage: ebpfnet expose ENDPOINT PORT[/tcp|udp] [--port N]");
      auto [target, proto] = parse_port_spec(a->spec);
      uint16_t port = a->port.empty() ? target : parse_port(a->port);
      ctx.open_node().expose({a->endpoint, proto, target, port});
      if (ctx.json())
        std::cout << nlohmann::json{{"endpoint", a->endpoint}, {"proto", proto},
                                    {"target_port", target}, {"port", port}}.dump() << "\n";
      else
        std::cout << "published " << proto << " port " << port << " -> " << a->endpoint << ":"
                  << target << "\n";
      return 0;
    };
  });
  auto* list = expose->add_subcommand("list", "list published ports");
  list->callback([&ctx, &action] {
    action = [&ctx] {
      auto pubs = ctx.open_node().published();
      nlohmann::json j = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : pubs) {
        j.push_back({{"endpoint", p.endpoint}, {"proto", p.proto}, {"target_port", p.target_port},
                     {"port", p.port}});
        rows.push_back({std::to_string(p.port) + "/" + p.proto,
                        p.endpoint + ":" + std::to_string(p.target_port)});
      }
      if (ctx.json())
        std::cout << j.dump(2) << "\n";
      else
        print_table({"PUBLISHED", "ENDPOINT"}, rows);
      return 0;
    };
  });

  auto* unexpose = app.add_subcommand("unexpose", "stop publishing: unexpose ENDPOINT PORT[/tcp|udp]");
  unexpose->add_option("ENDPOINT", a->endpoint, "the endpoint")->required();
  unexpose->add_option("PORT", a->spec, "its port and protocol, e.g. 80/tcp")->required();
  unexpose->add_option("--port", a->port, "which published port, when it is published on several");
  unexpose->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      auto [target, proto] = parse_port_spec(a->spec);
      std::optional<uint16_t> port;
      if (!a->port.empty()) port = parse_port(a->port);
      ctx.open_node().unexpose(a->endpoint, proto, target, port);
      if (!ctx.json()) std::cout << "unpublished " << a->endpoint << " " << target << "/" << proto << "\n";
      return 0;
    };
  });

  auto* route = app.add_subcommand(
      "route", "destinations reached through the uplink by routing, without masquerade "
               "(other nodes' pools)");
  route->require_subcommand(1);
  auto* radd = route->add_subcommand("add", "route add CIDR via GATEWAY");
  radd->add_option("CIDR", a->endpoint, "the destination prefix")->required();
  radd->add_option("via", a->via, "the word via, then the gateway")->expected(2)->required();
  radd->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      const auto& words = a->via;
      auto via = words.size() == 2 && words[0] == "via" ? Ipv4::parse(words[1]) : std::nullopt;
      if (!via) throw Error(Errc::usage, "usage: ebpfnet route add CIDR via GATEWAY");
      ctx.open_node().route_add({parse_cidr(a->endpoint), *via});
      if (!ctx.json()) std::cout << "route to " << a->endpoint << " via " << via->str() << " added\n";
      return 0;
    };
  });
  auto* rdel = route->add_subcommand("del", "route del CIDR");
  rdel->add_option("CIDR", a->endpoint, "the destination prefix")->required();
  rdel->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      ctx.open_node().route_del(parse_cidr(a->endpoint));
      if (!ctx.json()) std::cout << "route to " << a->endpoint << " deleted\n";
      return 0;
    };
  });
  route->add_subcommand("list", "list routes")->callback([&ctx, &action] {
    action = [&ctx] {
      nlohmann::json j = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows;
      for (const auto& r : ctx.open_node().routes()) {
        j.push_back({{"dst", r.dst.str()}, {"via", r.via.str()}});
        rows.push_back({r.dst.str(), r.via.str()});
      }
      if (ctx.json())
        std::cout << j.dump(2) << "\n";
      else
        print_table({"DESTINATION", "VIA"}, rows);
      return 0;
    };
  });

  auto* tunnel = app.add_subcommand(
      "tunnel", "the VXLAN overlay: other nodes' pools through the node's vxlan device, encapsulated in BPF");
  tunnel->require_subcommand(1);
  auto* tadd = tunnel->add_subcommand("add", "tunnel add POOL via NODE_ADDRESS (the underlay address of the "
                                             "node that owns POOL; the device vx0 is made with the first)");
  tadd->add_option("POOL", a->endpoint, "the other node's pool")->required();
  tadd->add_option("via", a->via, "the word via, then the node's underlay address")->expected(2)->required();
  tadd->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      const auto& words = a->via;
      auto via = words.size() == 2 && words[0] == "via" ? Ipv4::parse(words[1]) : std::nullopt;
      if (!via) throw Error(Errc::usage, "usage: ebpfnet tunnel add POOL via NODE_ADDRESS");
      ctx.open_node().tunnel_add({parse_cidr(a->endpoint), *via});
      if (!ctx.json()) std::cout << "pool " << a->endpoint << " through the overlay via " << via->str() << "\n";
      return 0;
    };
  });
  auto* tdel = tunnel->add_subcommand("del", "tunnel del POOL (the device goes with the last pool)");
  tdel->add_option("POOL", a->endpoint, "the other node's pool")->required();
  tdel->callback([&ctx, &action, a] {
    action = [&ctx, a] {
      ctx.open_node().tunnel_del(parse_cidr(a->endpoint));
      if (!ctx.json()) std::cout << "pool " << a->endpoint << " no longer through the overlay\n";
      return 0;
    };
  });
  tunnel->add_subcommand("list", "the overlay's peers")->callback([&ctx, &action] {
    action = [&ctx] {
      const auto o = ctx.open_node().overlay();
      nlohmann::json peers = nlohmann::json::array();
      std::vector<std::vector<std::string>> rows;
      if (o)
        for (const auto& p : o->peers) {
          peers.push_back({{"pool", p.pool.str()}, {"via", p.via.str()}});
          rows.push_back({p.pool.str(), p.via.str(), o->ifname});
        }
      if (ctx.json())
        std::cout << nlohmann::json{{"device", o ? nlohmann::json(o->ifname) : nlohmann::json(nullptr)},
                                    {"vni", o ? nlohmann::json(o->vni) : nlohmann::json(nullptr)},
                                    {"peers", peers}}
                         .dump(2)
                  << "\n";
      else
        print_table({"POOL", "VIA", "DEVICE"}, rows);
      return 0;
    };
  });

  auto* ct = app.add_subcommand("conntrack", "the datapath's flow table (NAT and tracked flows)");
  ct->require_subcommand(1);
  ct->add_subcommand("list", "live flows with their translation, state and expiry")
      ->callback([&ctx, &action] {
        action = [&ctx] {
          Node node = ctx.open_node();
          print_flows(ctx, node.conntrack(), node.services());
          return 0;
        };
      });
  ct->add_subcommand("flush", "remove every flow (established connections lose their NAT)")
      ->callback([&ctx, &action] {
        action = [&ctx] {
          size_t n = ctx.open_node().conntrack_flush();
          if (ctx.json())
            std::cout << nlohmann::json{{"removed", n}}.dump() << "\n";
          else
            std::cout << "removed " << n << " conntrack entries\n";
          return 0;
        };
      });
}

}  // namespace ebpfnet::cli
