// node.yaml: a node's whole desired state.
//
//   node: lab                  # required; "root" is the machine's root namespace
//   sandbox: true              # optional: true for every node but root, which is false
//   pool: 10.240.0.0/24        # required: the endpoints' addresses, /8 to /30
//   uplink:                    # optional, one key:
//     sandbox: true            #   a namespace <node>-out playing the internet (sandbox nodes)
//     outside: lan1-out        #   join that outside namespace instead (sandbox nodes)
//     interface: eth0          #   the node's own interface (production)
//   conntrack:                 # optional; what is omitted takes the default
//     size: 262144             #   entries, two per flow, 1024-67108864
//     timeouts: {syn: 60, tcp: 21600, closing: 10, udp: 60, icmp: 30}   # seconds
//   published:                 # optional: uplink address:port -> endpoint:target_port
//     - endpoint: web
//       proto: tcp             #   tcp | udp; omitted: tcp
//       port: 8080             #   on the uplink
//       target_port: 80        #   on the endpoint; omitted: port
//   routes:                    # optional: destinations routed through the uplink, never masqueraded
//     - dst: 10.240.2.0/24
//       via: 198.18.0.1
//   prefilter:                 # optional: sources dropped by XDP on the uplink, as `prefilter add`
//     - 203.0.113.0/24         #   a prefix (no host bits) or an address; none may overlap another
//     - 198.51.100.7
//   services:                  # optional: service name -> what `service add` takes
//     api:
//       vip: 10.96.0.10:80/tcp   #   a virtual IP (optional when node_port is given)
//       node_port: 30080         #   on the uplink's address (optional)
//       affinity: 60             #   seconds a client keeps its backend (optional)
//       backends: [web1:8080, "web2:8080,weight=2"]   # as --backend
//   policies:                  # optional: endpoint name -> a policy, as in `policy set -f`
//     web:
//       ingress:
//         default: deny
//         rules:
//           - {action: allow, proto: tcp, port: 80}
//
// Endpoints are not described: runtimes (CNI) and `endpoint add` make them.
// What the node has and the file omits (published ports, routes, policies, prefilter entries, services)
// is removed by apply; so is a conntrack setting changed by hand.
#include <charconv>
#include <map>
#include <optional>

#include "../policy_yaml.hpp"
#include "../yaml_file.hpp"
#include "ebpfnet/apply.hpp"
#include "ebpfnet/names.hpp"

namespace ebpfnet::apply {
namespace {

int line_of(const YAML::Node& n) { return n.Mark().line + 1; }

uint32_t number(std::string_view what, const std::string& s, uint32_t lo, uint32_t hi) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
    throw Invalid{std::string(what) + " " + in_quotes(s) + " is not a number from " + std::to_string(lo) +
                  " to " + std::to_string(hi)};
  return v;
}

uint16_t port(std::string_view what, const std::string& s) {
  return static_cast<uint16_t>(number(what, s, 1, 65535));
}

bool boolean(std::string_view what, const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  throw Invalid{std::string(what) + " " + in_quotes(s) + " is not true or false"};
}

Ipv4Cidr prefix(std::string_view what, const std::string& s) {
  if (auto c = Ipv4Cidr::parse(s)) return *c;
  auto slash = s.find('/');
  auto addr = Ipv4::parse(std::string_view(s).substr(0, slash));
  int len = -1;
  if (slash != std::string::npos) std::from_chars(s.data() + slash + 1, s.data() + s.size(), len);
  if (addr && len >= 0 && len <= 32) {
    Ipv4Cidr net{Ipv4(addr->host() & Ipv4Cidr{*addr, len}.mask()), len};
    throw Invalid{std::string(what) + " " + in_quotes(s) + " has host bits set; did you mean " + net.str() + "?"};
  }
  throw Invalid{std::string(what) + " " + in_quotes(s) + " is not an IPv4 prefix such as 10.240.0.0/24"};
}

Ipv4 address(std::string_view what, const std::string& s) {
  if (auto a = Ipv4::parse(s)) return *a;
  throw Invalid{std::string(what) + " " + in_quotes(s) + " is not an IPv4 address"};
}

// A name check of names.hpp, as an Invalid for the line.
template <class F>
void check_name(F check) {
  try {
    check();
  } catch (const Error& e) {
    throw Invalid{e.what()};
  }
}

class NodeYaml {
 public:
  NodeYaml(const YamlFile& file, NodeSpec& spec) : f_(file), spec_(spec) {}

  void read(const YAML::Node& doc, const ResolverFor& resolver_for) {
    if (doc.IsNull()) f_.fail(doc, "the file is empty; a node.yaml has at least node and pool");
    if (!doc.IsMap()) f_.fail(doc, "a node.yaml is a mapping with the keys node, pool, ...");
    bool has_node = false, has_pool = false, has_sandbox = false;
    // Policies are read last: their peers resolve against the node the file names.
    std::optional<YAML::Node> policies, published_key, prefilter_key;
    f_.for_each_entry(
        doc, "at the top level",
        {"node", "sandbox", "pool", "uplink", "conntrack", "published", "routes", "prefilter", "services", "policies"},
        [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
          if (key == "node") {
            spec_.node = f_.scalar(key, v, k);
            spec_.node_line = line_of(v);
            f_.at(v, [&] { check_name([&] { validate_name("node", spec_.node); }); });
            has_node = true;
          } else if (key == "sandbox") {
            spec_.sandbox = f_.at(v, [&] { return boolean(key, f_.scalar(key, v, k)); });
            has_sandbox = true;
          } else if (key == "pool") {
            spec_.pool = f_.at(v, [&] { return pool(f_.scalar(key, v, k)); });
            spec_.pool_line = line_of(v);
            has_pool = true;
          } else if (key == "uplink") {
            uplink(v, k);
          } else if (key == "conntrack") {
            conntrack(v, k);
          } else if (key == "published") {
            for (const auto& item : list(key, v)) published(item);
            published_key.emplace(k);
          } else if (key == "routes") {
            for (const auto& item : list(key, v)) route(item);
          } else if (key == "prefilter") {
            for (const auto& item : list(key, v)) prefilter(item);
            prefilter_key.emplace(k);
          } else if (key == "services") {
            if (!v.IsMap()) f_.fail(v.IsNull() ? k : v, "services is a mapping of service names to services");
            for (const auto& kv : v) service(kv.first, kv.second);
          } else {
            policies.emplace(v);
          }
        });
    if (!has_node) f_.fail(doc, "no node: the file names its node (node: NAME)");
    if (!has_pool) f_.fail(doc, "no pool: the file gives the node's address pool (pool: CIDR)");
    const bool root = spec_.node == kRootNode;
    if (!has_sandbox) spec_.sandbox = !root;
    if (spec_.sandbox == root)
      f_.fail(doc["sandbox"], root ? "node 'root' is the machine's root namespace, not a sandbox"
                                   : "only the node named 'root' is the machine's root namespace");
    check_uplink_kind();
    if (spec_.uplink.kind == UplinkSpec::Kind::none) {
      if (!spec_.published.empty())
        f_.fail(*published_key, "published ports need an uplink (uplink: ...)");
      if (!spec_.routes.empty())
        f_.fail(doc["routes"].Mark(), "routes go through the uplink, and the file has none (uplink: ...)");
      if (!spec_.prefilter.empty())
        f_.fail(*prefilter_key, "the prefilter filters the uplink, and the file has none (uplink: ...)");
    }
    for (const auto& r : spec_.routes)
      if (r.rec.dst.contains(spec_.pool.network) || spec_.pool.contains(r.rec.dst.network))
        fail_line(r.line, "route " + r.rec.dst.str() + " overlaps the node's pool " + spec_.pool.str());
    if (policies) read_policies(*policies, resolver_for(spec_.node));
  }

 private:
  [[noreturn]] void fail_line(int line, const std::string& reason) const {
    YAML::Mark m;
    m.line = line - 1;
    f_.fail(m, reason);
  }

  static Ipv4Cidr pool(const std::string& s) {
    Ipv4Cidr c = prefix("pool", s);
    // As node create and attach --cidr require: a gateway, endpoints and a broadcast address.
    if (c.prefix < 8 || c.prefix > 30) throw Invalid{"pool " + c.str() + " must be between /8 and /30"};
    return c;
  }

  YAML::Node list(const std::string& key, const YAML::Node& v) const {
    if (v.IsNull()) return YAML::Node(YAML::NodeType::Sequence);
    if (!v.IsSequence()) f_.fail(v, key + " must be a list");
    return v;
  }

  void uplink(const YAML::Node& v, const YAML::Node& k) {
    if (!v.IsMap() || v.size() != 1)
      f_.fail(v.IsNull() ? k : v, "uplink has one key: sandbox: true, outside: NAMESPACE or interface: IFNAME");
    UplinkSpec& u = spec_.uplink;
    f_.for_each_entry(v, "in uplink", {"sandbox", "outside", "interface"},
                      [&](const std::string& key, const YAML::Node& val, const YAML::Node& kk) {
                        const std::string s = f_.scalar(key, val, kk);
                        u.line = line_of(val);
                        if (key == "sandbox") {
                          if (!f_.at(val, [&] { return boolean(key, s); }))
                            f_.fail(val, "uplink sandbox: false is no uplink; leave uplink out instead");
                          u.kind = UplinkSpec::Kind::sandbox;
                        } else if (key == "outside") {
                          f_.at(val, [&] { check_name([&] { validate_name("outside namespace", s); }); });
                          u.kind = UplinkSpec::Kind::outside;
                          u.name = s;
                        } else {
                          f_.at(val, [&] { check_name([&] { validate_ifname(s); }); });
                          u.kind = UplinkSpec::Kind::interface;
                          u.name = s;
                        }
                      });
  }

  void check_uplink_kind() const {
    const UplinkSpec& u = spec_.uplink;
    if (!spec_.sandbox && (u.kind == UplinkSpec::Kind::sandbox || u.kind == UplinkSpec::Kind::outside))
      fail_line(u.line, "the root node's uplink is one of its interfaces (interface: IFNAME)");
  }

  void conntrack(const YAML::Node& v, const YAML::Node& k) {
    if (!v.IsMap()) f_.fail(v.IsNull() ? k : v, "conntrack must be a mapping with the keys size and timeouts");
    f_.for_each_entry(v, "in conntrack", {"size", "timeouts"},
                      [&](const std::string& key, const YAML::Node& val, const YAML::Node& kk) {
                        if (key == "size") {
                          spec_.ct_size = f_.at(val, [&] {
                            return number("conntrack size", f_.scalar(key, val, kk), 1024, 1u << 26);
                          });
                          return;
                        }
                        if (!val.IsMap()) f_.fail(val.IsNull() ? kk : val, "timeouts must be a mapping");
                        f_.for_each_entry(val, "in timeouts", {"syn", "tcp", "closing", "udp", "icmp"},
                                          [&](const std::string& name, const YAML::Node& t, const YAML::Node& tk) {
                                            const std::string s = f_.scalar(name, t, tk);
                                            f_.at(t, [&] { number(name + " timeout", s, 1, UINT32_MAX); });
                                            set_ct_timeout(spec_.ct_timeouts, name + "=" + s);
                                          });
                      });
  }

  void published(const YAML::Node& n) {
    if (!n.IsMap()) f_.fail(n, "a published port is a mapping with the keys endpoint, proto, port, target_port");
    PublishSpec p{{.endpoint = "", .proto = "tcp"}, line_of(n)};
    bool has_target = false;
    f_.for_each_entry(n, "in a published port", {"endpoint", "proto", "port", "target_port"},
                      [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
                        const std::string s = f_.scalar(key, v, k);
                        if (key == "endpoint") {
                          f_.at(v, [&] { check_name([&] { validate_name("endpoint", s); }); });
                          p.rec.endpoint = s;
                        } else if (key == "proto") {
                          if (s != "tcp" && s != "udp") f_.fail(v, "proto " + in_quotes(s) + " is not tcp or udp");
                          p.rec.proto = s;
                        } else if (key == "port") {
                          p.rec.port = f_.at(v, [&] { return port("port", s); });
                        } else {
                          p.rec.target_port = f_.at(v, [&] { return port("target_port", s); });
                          has_target = true;
                        }
                      });
    if (p.rec.endpoint.empty()) f_.fail(n, "a published port needs its endpoint");
    if (p.rec.port == 0) f_.fail(n, "a published port needs its port (on the uplink)");
    if (!has_target) p.rec.target_port = p.rec.port;
    for (const auto& q : spec_.published)
      if (q.rec.proto == p.rec.proto && q.rec.port == p.rec.port)
        f_.fail(n, p.rec.proto + " port " + std::to_string(p.rec.port) + " is published twice (also on line " +
                       std::to_string(q.line) + ")");
    spec_.published.push_back(std::move(p));
  }

  void route(const YAML::Node& n) {
    if (!n.IsMap()) f_.fail(n, "a route is a mapping with the keys dst and via");
    RouteSpec r{{}, line_of(n)};
    bool has_dst = false, has_via = false;
    f_.for_each_entry(n, "in a route", {"dst", "via"},
                      [&](const std::string& key, const YAML::Node& v, const YAML::Node& k) {
                        const std::string s = f_.scalar(key, v, k);
                        if (key == "dst") {
                          r.rec.dst = f_.at(v, [&] { return prefix("dst", s); });
                          has_dst = true;
                        } else {
                          r.rec.via = f_.at(v, [&] { return address("via", s); });
                          has_via = true;
                        }
                      });
    if (!has_dst || !has_via) f_.fail(n, "a route needs dst and via");
    for (const auto& q : spec_.routes)
      if (q.rec.dst == r.rec.dst)
        f_.fail(n, "route " + r.rec.dst.str() + " is given twice (also on line " + std::to_string(q.line) + ")");
    spec_.routes.push_back(std::move(r));
  }

  // A service as `service add` takes it; what only the node can judge (the
  // backends exist, the address is free) is judged when apply adds it.
  void service(const YAML::Node& k, const YAML::Node& n) {
    ServiceEntry e{{}, line_of(k)};
    ServiceSpec& v = e.spec;
    v.name = f_.at(k, [&] {
      check_name([&] { validate_name("service", k.Scalar()); });
      return k.Scalar();
    });
    if (!n.IsMap()) f_.fail(n.IsNull() ? k : n, "service " + v.name + " is a mapping with the keys vip, node_port, affinity, backends");
    f_.for_each_entry(n, "in service " + v.name, {"vip", "node_port", "affinity", "backends"},
                      [&](const std::string& key, const YAML::Node& val, const YAML::Node& kk) {
                        if (key == "backends") {
                          for (const auto& b : list(key, val)) {
                            const std::string s = f_.scalar("a backend", b, kk);
                            v.backends.push_back(f_.at(b, [&] {
                              BackendSpec r;
                              check_name([&] { r = parse_backend(s); });
                              return r;
                            }));
                          }
                          return;
                        }
                        const std::string s = f_.scalar(key, val, kk);
                        if (key == "vip")
                          f_.at(val, [&] { check_name([&] { parse_service_address(s, v); }); });
                        else if (key == "node_port")
                          f_.at(val, [&] { check_name([&] { parse_node_port(s, v); }); });
                        else
                          v.affinity_s = f_.at(val, [&] { return number("affinity", s, 0, UINT32_MAX); });
                      });
    if (!v.vip && !v.node_port) f_.fail(n, "service " + v.name + " needs a vip or a node_port");
    for (const auto& q : spec_.services)
      if (q.spec.name == v.name)
        f_.fail(k, "service " + v.name + " is given twice (also on line " + std::to_string(q.line) + ")");
    spec_.services.push_back(std::move(e));
  }

  // An address or a prefix, overlapping no entry before it.
  void prefilter(const YAML::Node& n) {
    if (!n.IsScalar()) f_.fail(n, "a prefilter entry is an address or a prefix, such as 203.0.113.0/24");
    const std::string& s = n.Scalar();
    PrefilterSpec p{{}, line_of(n)};
    if (s.find('/') == std::string::npos)
      p.cidr = {f_.at(n, [&] { return address("prefilter entry", s); }), 32};
    else
      p.cidr = f_.at(n, [&] { return prefix("prefilter entry", s); });
    for (const auto& q : spec_.prefilter) {
      if (q.cidr == p.cidr)
        f_.fail(n, "prefilter entry " + s + " is given twice (also on line " + std::to_string(q.line) + ")");
      if (q.cidr.contains(p.cidr.network) || p.cidr.contains(q.cidr.network))
        f_.fail(n, "prefilter entry " + s + " overlaps " + prefilter_entry_str(q.cidr) + " (line " +
                       std::to_string(q.line) + ")");
    }
    spec_.prefilter.push_back(std::move(p));
  }

  void read_policies(const YAML::Node& v, const PeerResolver& resolve) {
    if (v.IsNull()) return;
    if (!v.IsMap()) f_.fail(v, "policies must be a mapping of endpoint names to policies");
    std::map<std::string, int> seen;
    for (const auto& kv : v) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) f_.fail(k, "keys in policies must be endpoint names");
      const std::string& endpoint = k.Scalar();
      f_.at(k, [&] { check_name([&] { validate_name("endpoint", endpoint); }); });
      if (auto [it, fresh] = seen.emplace(endpoint, line_of(k)); !fresh)
        f_.fail(k, "the policy of " + endpoint + " is given twice (also on line " + std::to_string(it->second) + ")");
      spec_.policies.push_back({endpoint, parse_policy_node(kv.second, f_, resolve), line_of(k)});
    }
  }

  const YamlFile& f_;
  NodeSpec& spec_;
};

}  // namespace

NodeSpec parse_node_yaml(std::string_view text, const std::string& source, const ResolverFor& resolver_for) {
  YamlFile file(source);
  NodeSpec spec;
  spec.source = source;
  NodeYaml(file, spec).read(file.load(text), resolver_for);
  return spec;
}

}  // namespace ebpfnet::apply
