// Network policy with real traffic: the seed firewall recipe against the
// same recipe in iptables (also for connections open before it), the
// gateway and published ports, rule precedence, policy replaced under load,
// 10,000 rules, monitor events, drop counters, bad input that changes
// nothing, and the policy's lifecycle with its endpoint and with attach.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "ebpfnet/fd.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::CmdResult;
using test::run_in;
using test::SandboxNode;
using test::TempStateDir;
using test::unique;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

// Long enough for any allowed exchange here, short enough for the 1 s SYN
// retransmission not to hide a dropped SYN.
constexpr Ms kAllowed = 900ms;
// A refused attempt costs this; it is over before any retransmission.
constexpr Ms kDenied = 250ms;

struct Ep {
  std::string name;  // also its namespace's name
  Ipv4 ip;
  Netns ns() const { return Netns::open_named(name); }
};

Ep add(SandboxNode& sb, std::string_view prefix) {
  EndpointRecord r = sb.node().add_endpoint({unique(prefix), std::nullopt, std::nullopt, "eth0"});
  return {r.name, r.ip};
}

std::string ms_since(Clock::time_point t0) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms",
                std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  return buf;
}

UniqueFd socket_in(const Netns& ns, int type) {
  NetnsGuard in(ns);
  return UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
}

// Polls fds until one is ready or the deadline passes; false on timeout.
bool ready(std::vector<pollfd>& fds, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// A server socket bound to ip:port in ns: listening (TCP) or waiting for
// datagrams (UDP). Made once per test where other threads fork: a forked
// child holds a closed socket's copy until it execs, so binding the port
// again at once can fail.
class Server {
 public:
  Server(const Netns& ns, int type, Ipv4 ip, uint16_t port) : fd_(socket_in(ns, type)) {
    int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in b = socket_address(ip, port);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&b), sizeof b) != 0 ||
        (type == SOCK_STREAM && ::listen(fd_.get(), 64) != 0))
      throw std::runtime_error("server on " + ip.str() + ":" + std::to_string(port) + ": " + std::strerror(errno));
  }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

struct Attempt {
  std::string outcome;  // "ok", "refused" (RST or ICMP), "timeout", or what broke
  uint16_t local_port = 0;
};

// One TCP connection from `from` to dst:port. With a server, it accepts the
// connection, `bytes` go across and one byte comes back; without, whatever
// answers decides (nothing listening: "refused"). reset: the client ends
// with a RST, leaving no TIME_WAIT to use up its ports in long loops.
Attempt tcp_try(const Netns& from, const Server* server, Ipv4 dst, uint16_t port, Ms timeout,
                size_t bytes = 64, bool reset = false) {
  const auto deadline = Clock::now() + timeout;
  Attempt a;
  UniqueFd conn;
  UniqueFd client = socket_in(from, SOCK_STREAM);
  sockaddr_in d = socket_address(dst, port);
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&d), sizeof d) != 0 && errno != EINPROGRESS)
    return {std::string("connect: ") + std::strerror(errno)};
  sockaddr_in local{};
  socklen_t llen = sizeof local;
  ::getsockname(client.get(), reinterpret_cast<sockaddr*>(&local), &llen);
  a.local_port = ntohs(local.sin_port);

  std::vector<pollfd> w = {{client.get(), POLLOUT, 0}};
  if (!ready(w, deadline)) return a.outcome = "timeout", a;
  int soerr = 0;
  socklen_t slen = sizeof soerr;
  ::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &soerr, &slen);
  if (soerr == ECONNREFUSED) return a.outcome = "refused", a;
  if (soerr) return a.outcome = std::string("connect: ") + std::strerror(soerr), a;
  if (!server) return a.outcome = "ok", a;

  std::vector<pollfd> acc = {{server->fd(), POLLIN, 0}};
  if (!ready(acc, deadline)) return a.outcome = "no accept", a;
  conn = UniqueFd(::accept4(server->fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!conn.valid()) return a.outcome = std::string("accept: ") + std::strerror(errno), a;

  // Data both ways; the client closes first so TIME_WAIT stays on its side.
  std::string out(bytes, 'p');
  size_t sent = 0, got = 0;
  char buf[16384];
  bool replied = false;
  while (!replied) {
    std::vector<pollfd> p = {{client.get(), short(POLLIN | (sent < bytes ? POLLOUT : 0)), 0},
                             {conn.get(), POLLIN, 0}};
    if (!ready(p, deadline)) return a.outcome = "stalled", a;
    if (sent < bytes && (p[0].revents & POLLOUT)) {
      ssize_t n = ::send(client.get(), out.data() + sent, bytes - sent, MSG_NOSIGNAL);
      if (n > 0) sent += n;
    }
    if (p[1].revents & POLLIN) {
      ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
      if (n <= 0) return a.outcome = "server lost the connection", a;
      got += n;
      if (got == bytes && ::send(conn.get(), "k", 1, MSG_NOSIGNAL) != 1)
        return a.outcome = "reply send failed", a;
    }
    if (p[0].revents & POLLIN) {
      ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
      if (n != 1 || got != bytes) return a.outcome = "reply garbled", a;
      replied = true;
    }
  }
  if (reset) {
    linger l{1, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  client.reset();
  return a.outcome = "ok", a;
}

// One datagram from `from` to dst:port (sent `tries` times while nothing
// comes back); a server echoes it. "reply", "refused" (ICMP port
// unreachable) or "timeout".
std::string udp_try(const Netns& from, const Server* server, Ipv4 dst, uint16_t port, Ms timeout,
                    int tries = 1) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_in d = socket_address(dst, port);
  UniqueFd client = socket_in(from, SOCK_DGRAM);
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&d), sizeof d) != 0)
    return std::string("connect: ") + std::strerror(errno);
  char buf[64];
  for (int t = 0; t < tries; ++t) {
    if (::send(client.get(), "q", 1, 0) != 1) return std::string("send: ") + std::strerror(errno);
    const auto slice = std::min(deadline, Clock::now() + timeout / tries);
    for (;;) {
      std::vector<pollfd> p = {{client.get(), POLLIN, 0}, {server ? server->fd() : -1, POLLIN, 0}};
      if (!ready(p, slice)) break;
      if (p[1].revents & POLLIN) {
        sockaddr_in peer{};
        socklen_t plen = sizeof peer;
        ssize_t n = ::recvfrom(server->fd(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &plen);
        if (n > 0) ::sendto(server->fd(), buf, n, 0, reinterpret_cast<sockaddr*>(&peer), plen);
      }
      if (p[0].revents & (POLLIN | POLLERR)) {
        ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == ECONNREFUSED) return "refused";
        if (n > 0) return "reply";
      }
    }
  }
  return "timeout";
}

std::string ping_try(const Netns& from, Ipv4 dst, Ms timeout) {
  return probe_icmp(from, dst, timeout).ok ? "reply" : "timeout";
}

using test::cli_json;

void cli_ok(SandboxNode& sb, const std::vector<std::string>& args, int timeout_s = 60) {
  CmdResult r = sb.cli(args, timeout_s);
  ASSERT_EQ(r.code, 0) << test::joined(args) << ": " << r.err;
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
  if (!f) throw std::runtime_error("writing " + p.string());
}

// Entries of one of the node's pinned maps, counted by walking its keys.
size_t map_entries(SandboxNode& sb, const std::string& map) {
  const std::string path = (sb.node().pin_dir() / "maps" / map).string();
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) throw std::runtime_error("bpf_obj_get " + path + ": " + std::strerror(errno));
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len)) throw std::runtime_error("map info of " + path);
  std::vector<char> key(info.key_size), next(info.key_size);
  size_t n = 0;
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd.get(), prev, next.data()) == 0 && n < 10'000'000) {
    ++n;
    key = next;
    prev = key.data();
  }
  return n;
}

struct PolicyMapCounts {
  size_t ep = 0, cidr = 0, port = 0;
  bool operator==(const PolicyMapCounts&) const = default;
};

PolicyMapCounts policy_maps(SandboxNode& sb) {
  return {map_entries(sb, "ep_policy"), map_entries(sb, "policy_cidr"), map_entries(sb, "policy_port")};
}

std::ostream& operator<<(std::ostream& o, const PolicyMapCounts& c) {
  return o << "ep_policy=" << c.ep << " policy_cidr=" << c.cidr << " policy_port=" << c.port;
}

// One endpoint's drop counters by reason name, from `endpoint list`.
json drops_of(SandboxNode& sb, const std::string& endpoint) {
  for (const auto& e : cli_json(sb, {"endpoint", "list"}))
    if (e.at("name") == endpoint) return e.at("stats").at("drops");
  throw std::runtime_error("endpoint " + endpoint + " not listed");
}

uint64_t delta(const json& before, const json& after, const std::string& reason) {
  return after.at(reason).get<uint64_t>() - before.at(reason).get<uint64_t>();
}

// --- 1. the seed firewall recipe against iptables --------------------------

struct Check {
  std::string what;
  std::function<std::string(const Ep& client, const Ep& server, int column)> run;
};

// Every check a client and a server make; servers reach the client on
// ports of their own (column), so the servers can run at once.
std::vector<Check> firewall_checks() {
  const Ipv4 lo = *Ipv4::parse("127.0.0.1");
  return {
      {"client -> server tcp 80 (listening)",
       [](const Ep& c, const Ep& s, int) {
         Server srv(s.ns(), SOCK_STREAM, s.ip, 80);
         return tcp_try(c.ns(), &srv, s.ip, 80, 3s, 100000).outcome;
       }},
      {"client -> server tcp 22 (nothing listens)",
       [](const Ep& c, const Ep& s, int) { return tcp_try(c.ns(), nullptr, s.ip, 22, 1200ms).outcome; }},
      {"client -> server udp 53 (listening)",
       [](const Ep& c, const Ep& s, int) {
         Server srv(s.ns(), SOCK_DGRAM, s.ip, 53);
         return udp_try(c.ns(), &srv, s.ip, 53, 1200ms, 3);
       }},
      {"client -> server ping", [](const Ep& c, const Ep& s, int) { return ping_try(c.ns(), s.ip, 1200ms); }},
      {"server -> client tcp (listening)",
       [](const Ep& c, const Ep& s, int col) {
         Server srv(c.ns(), SOCK_STREAM, c.ip, uint16_t(8080 + col));
         return tcp_try(s.ns(), &srv, c.ip, uint16_t(8080 + col), 3s, 100000).outcome;
       }},
      {"server -> client udp (listening)",
       [](const Ep& c, const Ep& s, int col) {
         Server srv(c.ns(), SOCK_DGRAM, c.ip, uint16_t(5350 + col));
         return udp_try(s.ns(), &srv, c.ip, uint16_t(5350 + col), 3s, 3);
       }},
      {"server -> client ping", [](const Ep& c, const Ep& s, int) { return ping_try(s.ns(), c.ip, 3s); }},
      {"server -> 127.0.0.1 tcp 22 (own lo)",
       [lo](const Ep&, const Ep& s, int) {
         Server srv(s.ns(), SOCK_STREAM, lo, 22);
         return tcp_try(s.ns(), &srv, lo, 22, 3s).outcome;
       }},
      {"server -> 127.0.0.1 udp 53 (own lo)",
       [lo](const Ep&, const Ep& s, int) {
         Server srv(s.ns(), SOCK_DGRAM, lo, 53);
         return udp_try(s.ns(), &srv, lo, 53, 3s, 3);
       }},
      {"server -> 127.0.0.1 ping (own lo)", [lo](const Ep&, const Ep& s, int) { return ping_try(s.ns(), lo, 3s); }},
      {"server -> own address tcp 22 (via lo)",
       [](const Ep&, const Ep& s, int) {
         Server srv(s.ns(), SOCK_STREAM, s.ip, 22);
         return tcp_try(s.ns(), &srv, s.ip, 22, 3s).outcome;
       }},
  };
}

TEST(PolicyTraffic, SeedFirewallRecipeMatchesIptables) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), fw_ebpf = add(sb, "pe"), fw_ipt = add(sb, "pi"), open = add(sb, "po");

  cli_ok(sb, {"policy", "set", fw_ebpf.name, "--ingress-default", "deny", "--ingress", "allow tcp 80"});
  for (const auto& rule : std::vector<std::vector<std::string>>{
           {"-P", "INPUT", "DROP"},
           {"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
           {"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
           {"-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"}}) {
    std::vector<std::string> argv = {"iptables"};
    argv.insert(argv.end(), rule.begin(), rule.end());
    CmdResult r = run_in(fw_ipt.name, argv);
    ASSERT_EQ(r.code, 0) << test::joined(argv) << " in " << fw_ipt.name << ": " << r.err;
  }

  const auto checks = firewall_checks();
  const std::vector<const Ep*> servers = {&fw_ebpf, &fw_ipt, &open};
  std::vector<std::future<std::vector<std::string>>> columns;
  for (int col = 0; col < int(servers.size()); ++col)
    columns.push_back(std::async(std::launch::async, [&, col] {
      std::vector<std::string> out;
      for (const auto& c : checks) out.push_back(c.run(client, *servers[col], col));
      return out;
    }));
  std::vector<std::vector<std::string>> m;
  for (auto& f : columns) m.push_back(f.get());

  std::ostringstream table;
  table << "CHECK                                      fw-ebpf    fw-ipt     no policy\n";
  for (size_t i = 0; i < checks.size(); ++i) {
    char line[160];
    std::snprintf(line, sizeof line, "%-42s %-10s %-10s %s\n", checks[i].what.c_str(), m[0][i].c_str(),
                  m[1][i].c_str(), m[2][i].c_str());
    table << line;
  }
  std::cout << table.str();
  EXPECT_EQ(m[0], m[1]) << "ebpfnet's policy and iptables disagree:\n" << table.str();
  const std::vector<std::string> recipe = {"ok",    "timeout", "timeout", "timeout", "ok", "reply",
                                           "reply", "ok",      "reply",   "reply",   "ok"};
  EXPECT_EQ(m[0], recipe) << table.str();
  EXPECT_EQ(m[1], recipe) << table.str();
  // Without a firewall the refused checks get answers: the matrix tells them apart.
  EXPECT_EQ(m[2][1], "refused") << table.str();
  EXPECT_EQ(m[2][2], "reply") << table.str();
  EXPECT_EQ(m[2][3], "reply") << table.str();
}

// A TCP connection from one namespace to another, open across the test.
struct OpenConnection {
  UniqueFd client, server;
};

OpenConnection open_connection(const Netns& from, const Netns& to, Ipv4 dst, uint16_t port) {
  Server srv(to, SOCK_STREAM, dst, port);
  OpenConnection c;
  c.client = socket_in(from, SOCK_STREAM);
  sockaddr_in d = socket_address(dst, port);
  ::connect(c.client.get(), reinterpret_cast<sockaddr*>(&d), sizeof d);
  std::vector<pollfd> p = {{srv.fd(), POLLIN, 0}};
  if (!ready(p, Clock::now() + 3s)) throw std::runtime_error("connection to " + dst.str() + " not accepted");
  c.server = UniqueFd(::accept4(srv.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  return c;
}

// Sends a few bytes on `out` and waits for them on `in`: "ok" or "stalled".
std::string pass(int out, int in, Ms timeout) {
  if (::send(out, "data", 4, MSG_NOSIGNAL) != 4) return std::string("send: ") + std::strerror(errno);
  char buf[16];
  std::vector<pollfd> p = {{in, POLLIN, 0}};
  if (!ready(p, Clock::now() + timeout)) return "stalled";
  return ::recv(in, buf, sizeof buf, 0) == 4 ? "ok" : "garbled";
}

// Connections open before the first firewall: the client's to an allowed
// port and to another port, and the server's to the client. After, the
// client speaks first on each, then the server. iptables sees such a
// connection first mid-stream (NEW, so dropped) until the server speaks; the
// datapath, which tracked nothing before the policy, must do the same.
TEST(PolicyTraffic, ConnectionsOpenBeforeTheFirstPolicyMatchIptables) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), fw_ebpf = add(sb, "pe"), fw_ipt = add(sb, "pi");
  const Netns cns = client.ns();
  const std::vector<std::string> what = {"client's connection to tcp 80", "client's connection to tcp 22",
                                         "server's connection to the client"};
  std::map<std::string, std::vector<OpenConnection>> open;
  for (const Ep* s : {&fw_ebpf, &fw_ipt}) {
    const Netns sns = s->ns();
    auto& v = open[s->name];
    v.push_back(open_connection(cns, sns, s->ip, 80));
    v.push_back(open_connection(cns, sns, s->ip, 22));
    v.push_back(open_connection(sns, cns, client.ip, s == &fw_ebpf ? 8080 : 8081));
    for (auto& c : v) {
      // ACK at once: an ACK delayed past the firewall's arrival would have
      // the server speak first.
      int one = 1;
      for (int fd : {c.client.get(), c.server.get()}) ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      ASSERT_EQ(pass(c.client.get(), c.server.get(), 3s), "ok");
      ASSERT_EQ(pass(c.server.get(), c.client.get(), 3s), "ok");
    }
  }

  cli_ok(sb, {"policy", "set", fw_ebpf.name, "--ingress-default", "deny", "--ingress", "allow tcp 80"});
  for (const auto& rule : std::vector<std::vector<std::string>>{
           {"-P", "INPUT", "DROP"},
           {"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
           {"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
           {"-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"}}) {
    std::vector<std::string> argv = {"iptables"};
    argv.insert(argv.end(), rule.begin(), rule.end());
    CmdResult r = run_in(fw_ipt.name, argv);
    ASSERT_EQ(r.code, 0) << test::joined(argv) << " in " << fw_ipt.name << ": " << r.err;
  }

  std::map<std::string, std::future<std::vector<std::string>>> columns;
  for (const Ep* s : {&fw_ebpf, &fw_ipt})
    columns[s->name] = std::async(std::launch::async, [&v = open[s->name]] {
      std::vector<std::string> out;
      for (size_t i = 0; i < v.size(); ++i) {
        // The side that is not the firewalled server speaks first.
        auto& c = v[i];
        const bool server_opened = i == 2;
        int peer = server_opened ? c.server.get() : c.client.get();
        int fw = server_opened ? c.client.get() : c.server.get();
        const std::string first = pass(peer, fw, 800ms);  // before the answer
        out.push_back(first + "/" + pass(fw, peer, 1500ms));
      }
      return out;
    });
  std::map<std::string, std::vector<std::string>> m;
  for (auto& [name, f] : columns) m[name] = f.get();
  std::ostringstream table;
  table << "OPEN BEFORE THE FIREWALL (peer speaks / server answers)  fw-ebpf        fw-ipt\n";
  for (size_t i = 0; i < what.size(); ++i) {
    char line[160];
    std::snprintf(line, sizeof line, "%-56s %-14s %s\n", what[i].c_str(), m[fw_ebpf.name][i].c_str(),
                  m[fw_ipt.name][i].c_str());
    table << line;
  }
  std::cout << table.str();
  EXPECT_EQ(m[fw_ebpf.name], m[fw_ipt.name]) << table.str();
}

// The node (the gateway) is never policed, in either direction; a published
// port is checked against its endpoint's ingress with the real client as
// the peer, from outside and hairpinned from another endpoint.
TEST(PolicyTraffic, GatewayIsNotPolicedAndPublishedPortsSeeTheRealClient) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.240.0.0/24", /*attach=*/true, /*uplink_sandbox=*/true);
  Ep allowed = add(sb, "pa"), other = add(sb, "pc"), server = add(sb, "ps");
  const Ipv4 gateway = *Ipv4::parse("10.240.0.1"), uplink = *Ipv4::parse(kSandboxUplinkIp);
  cli_ok(sb, {"policy", "set", server.name, "--ingress-default", "deny", "--egress-default", "deny", "--ingress",
              "allow tcp 80 from " + std::string(kSandboxOutsideIp), "--ingress", "allow tcp 80 from " + allowed.name});
  cli_ok(sb, {"expose", server.name, "80/tcp", "--port", "18080"});
  const Netns sns = server.ns(), node = Netns::open_named(sb.name()), outside = Netns::open_named(sb.outside());
  const Server web(sns, SOCK_STREAM, server.ip, 80), ssh(sns, SOCK_STREAM, server.ip, 22);

  EXPECT_EQ(ping_try(sns, gateway, 3s), "reply") << "egress default deny reached the gateway";
  EXPECT_EQ(tcp_try(node, &ssh, server.ip, 22, 3s).outcome, "ok") << "ingress default deny refused the node";
  EXPECT_EQ(ping_try(node, server.ip, 3s), "reply") << "ingress default deny refused the node";

  EXPECT_EQ(tcp_try(outside, &web, uplink, 18080, 3s).outcome, "ok") << "outside, allowed by its address";
  EXPECT_EQ(tcp_try(allowed.ns(), &web, uplink, 18080, 3s).outcome, "ok") << "hairpin from an allowed endpoint";
  EXPECT_EQ(tcp_try(other.ns(), &web, uplink, 18080, kDenied).outcome, "timeout")
      << "hairpin from an endpoint the policy does not name";
  EXPECT_EQ(tcp_try(other.ns(), &web, server.ip, 80, kDenied).outcome, "timeout");
  EXPECT_EQ(tcp_try(allowed.ns(), &web, server.ip, 80, 3s).outcome, "ok");
  // Egress default deny: the server reaches nothing but the node.
  EXPECT_EQ(ping_try(sns, allowed.ip, Ms(600)), "timeout");
  EXPECT_EQ(ping_try(sns, *Ipv4::parse(kSandboxServerIp), Ms(600)), "timeout");
}

// The most specific peer decides, deny wins at equal length, port ranges
// and protocols match as written: with real packets, from a file.
TEST(PolicyTraffic, MostSpecificPeerDecides) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), other = add(sb, "po"), server = add(sb, "ps");
  TempStateDir dir;
  const auto file = dir.path() / "p.yaml";
  write(file, "ingress:\n  default: deny\n  rules:\n"
              "    - {action: allow, proto: tcp, port: \"8000-8080\", peer: 10.240.0.0/24}\n"
              "    - {action: deny, proto: tcp, port: 8040, peer: " + other.name + "}\n"
              "    - {action: allow, proto: udp, peer: " + client.ip.str() + "}\n"
              "    - {action: deny, proto: udp, port: 53, peer: " + client.ip.str() + "/32}\n"
              "    - {action: allow, proto: icmp, peer: " + client.name + "}\n");
  cli_ok(sb, {"policy", "set", server.name, "-f", file});
  const Netns cns = client.ns(), ons = other.ns(), sns = server.ns();
  const Server t8000(sns, SOCK_STREAM, server.ip, 8000), t8040(sns, SOCK_STREAM, server.ip, 8040),
      t8081(sns, SOCK_STREAM, server.ip, 8081), u53(sns, SOCK_DGRAM, server.ip, 53), u54(sns, SOCK_DGRAM, server.ip, 54);
  struct Case {
    std::string what, want, got;
  };
  std::vector<Case> cases = {
      {"client tcp 8040 (range)", "ok", tcp_try(cns, &t8040, server.ip, 8040, 3s).outcome},
      {"other tcp 8000 (range)", "ok", tcp_try(ons, &t8000, server.ip, 8000, 3s).outcome},
      {"other tcp 8040 (its /32 deny)", "timeout", tcp_try(ons, &t8040, server.ip, 8040, kDenied).outcome},
      {"client tcp 8081 (past the range)", "timeout", tcp_try(cns, &t8081, server.ip, 8081, kDenied).outcome},
      {"client udp 54 (/32 allow)", "reply", udp_try(cns, &u54, server.ip, 54, 3s, 3)},
      {"client udp 53 (/32 deny beats /32 allow)", "timeout", udp_try(cns, &u53, server.ip, 53, kDenied)},
      {"other udp 54 (no rule)", "timeout", udp_try(ons, &u54, server.ip, 54, kDenied)},
      {"client ping (icmp by endpoint name)", "reply", ping_try(cns, server.ip, 3s)},
      {"other ping (no rule)", "timeout", ping_try(ons, server.ip, Ms(600))},
  };
  for (const auto& c : cases) EXPECT_EQ(c.got, c.want) << c.what;
}

// --- 2. a policy replaced under continuous traffic ------------------------

std::string two_policies_yaml(size_t extra_denies) {
  std::string y =
      "ingress:\n  default: deny\n  rules:\n"
      "    - {action: allow, proto: tcp, port: 80}\n"
      "    - {action: allow, proto: udp, port: 5300}\n";
  for (size_t i = 0; i < extra_denies; ++i)
    y += "    - {action: deny, proto: tcp, port: " + std::to_string(9000 + i % 500) + ", peer: 10.201." +
         std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + "}\n";
  return y;
}

TEST(PolicyTraffic, ReplacedUnderTrafficNoFailureNoLeak) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), server = add(sb, "ps");
  TempStateDir dir;
  const auto small = dir.path() / "small.yaml", big = dir.path() / "big.yaml";
  write(small, two_policies_yaml(0));
  write(big, two_policies_yaml(1000));
  cli_ok(sb, {"policy", "set", server.name, "-f", small});
  const Netns cns = client.ns(), sns = server.ns();
  const Server web(sns, SOCK_STREAM, server.ip, 80), other(sns, SOCK_STREAM, server.ip, 81),
      dns(sns, SOCK_DGRAM, server.ip, 5300);
  ASSERT_EQ(tcp_try(cns, &web, server.ip, 80, 3s).outcome, "ok");
  const json before = drops_of(sb, server.name);

  std::atomic<bool> stop{false};
  std::atomic<unsigned> tcp_ok{0}, udp_ok{0}, denied{0};
  std::vector<std::string> failures, leaks;
  std::mutex mu;
  constexpr unsigned kMaxRounds = 200000;  // a bound, far above what 20 updates take
  std::thread allowed([&] {
    for (unsigned i = 0; !stop && i < kMaxRounds; ++i) {
      Attempt t = tcp_try(cns, &web, server.ip, 80, kAllowed, 64, /*reset=*/true);
      if (t.outcome == "ok") ++tcp_ok;
      else {
        std::lock_guard l(mu);
        failures.push_back("tcp 80 from port " + std::to_string(t.local_port) + ": " + t.outcome);
      }
      std::string u = udp_try(cns, &dns, server.ip, 5300, kAllowed);
      if (u == "reply") ++udp_ok;
      else {
        std::lock_guard l(mu);
        failures.push_back("udp 5300: " + u);
      }
    }
  });
  std::thread refused([&] {
    for (unsigned i = 0; !stop && i < kMaxRounds; ++i) {
      Attempt t = tcp_try(cns, &other, server.ip, 81, 100ms);
      ++denied;
      if (t.outcome != "timeout") {
        std::lock_guard l(mu);
        leaks.push_back("tcp 81 from port " + std::to_string(t.local_port) + ": " + t.outcome);
      }
    }
  });

  std::vector<double> set_ms;
  std::string set_errors;
  for (int i = 0; i < 20; ++i) {
    auto t0 = Clock::now();
    CmdResult r = sb.cli({"policy", "set", server.name, "-f", i % 2 == 0 ? big : small});
    set_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (r.code != 0) set_errors += "update " + std::to_string(i) + ": " + r.err;
  }
  stop = true;
  allowed.join();
  refused.join();

  std::sort(set_ms.begin(), set_ms.end());
  std::cout << "20 policy updates (2 or 1,002 rules, alternating), median " << set_ms[10] << " ms, max "
            << set_ms.back() << " ms; during them: " << tcp_ok << " tcp + " << udp_ok
            << " udp allowed exchanges, " << failures.size() << " failed; " << denied
            << " denied attempts, " << leaks.size() << " leaked\n";
  EXPECT_EQ(set_errors, "");
  EXPECT_TRUE(failures.empty()) << failures.size() << " allowed exchanges failed, first: " << failures.front();
  EXPECT_TRUE(leaks.empty()) << leaks.size() << " denied attempts got through, first: " << leaks.front();
  EXPECT_GE(tcp_ok + udp_ok, 20u) << "the traffic hardly overlapped the updates";
  EXPECT_GE(denied, 5u);
  // Each denied attempt is one SYN (it ends before any retransmission);
  // any more policy drops would be packets of allowed traffic.
  const json after = drops_of(sb, server.name);
  EXPECT_EQ(delta(before, after, "policy-default-deny") + delta(before, after, "policy-deny"), denied.load())
      << "policy drops on " << server.name << " besides the denied SYNs";
  // The last update left the small policy in place.
  json shown = cli_json(sb, {"policy", "show", server.name});
  EXPECT_EQ(shown.at("policy").at("ingress").at("rules").size(), 2u);
}

// --- 3. ten thousand rules ------------------------------------------------

TEST(PolicyTraffic, TenThousandRules) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), server = add(sb, "ps");
  const PolicyMapCounts empty = policy_maps(sb);
  EXPECT_EQ(empty, PolicyMapCounts{}) << "a new node has policy map entries";
  TempStateDir dir;
  const auto file = dir.path() / "big.yaml";
  std::string y = "ingress:\n  default: deny\n  rules:\n";
  for (int i = 0; i < 10000; ++i)
    y += "    - {action: deny, proto: tcp, port: " + std::to_string(1000 + i) + ", peer: 10." +
         std::to_string(100 + i / 62500) + "." + std::to_string(i / 250 % 250) + "." + std::to_string(i % 250 + 1) +
         "/32}\n";
  y += "    - {action: allow, proto: tcp, port: 80, peer: " + client.ip.str() + "}\n";
  write(file, y);

  auto t0 = Clock::now();
  CmdResult r = sb.cli({"policy", "set", server.name, "-f", file}, 120);
  const std::string took = ms_since(t0);
  ASSERT_EQ(r.code, 0) << r.err;
  std::cout << "policy set with 10,001 rules took " << took << "\n";

  t0 = Clock::now();
  json shown = cli_json(sb, {"policy", "show", server.name});
  std::cout << "policy show -o json of it took " << ms_since(t0) << "\n";
  EXPECT_EQ(shown.at("endpoint"), server.name);
  EXPECT_EQ(shown.at("policy").at("ingress").at("rules").size() + shown.at("policy").at("egress").at("rules").size(),
            10001u);
  const PolicyMapCounts full = policy_maps(sb);
  std::cout << "map entries: " << full << "\n";
  EXPECT_EQ(full.ep, 1u);
  EXPECT_GE(full.cidr, 10001u);

  const Netns cns = client.ns(), sns = server.ns();
  const Server web(sns, SOCK_STREAM, server.ip, 80), other(sns, SOCK_STREAM, server.ip, 81),
      ruled(sns, SOCK_STREAM, server.ip, 1000);
  EXPECT_EQ(tcp_try(cns, &web, server.ip, 80, 3s).outcome, "ok");
  EXPECT_EQ(tcp_try(cns, &other, server.ip, 81, kDenied).outcome, "timeout");
  EXPECT_EQ(tcp_try(cns, &ruled, server.ip, 1000, kDenied).outcome, "timeout");

  t0 = Clock::now();
  cli_ok(sb, {"policy", "del", server.name});
  std::cout << "policy del of it took " << ms_since(t0) << "\n";
  EXPECT_TRUE(cli_json(sb, {"policy", "show", server.name}).at("policy").is_null());
  EXPECT_EQ(cli_json(sb, {"policy", "show"}), json::array());
  EXPECT_EQ(policy_maps(sb), PolicyMapCounts{}) << "policy del left entries behind";
  EXPECT_EQ(tcp_try(cns, &other, server.ip, 81, 3s).outcome, "ok");
  EXPECT_EQ(tcp_try(cns, &ruled, server.ip, 1000, 3s).outcome, "ok");
}

// --- 4. monitor -----------------------------------------------------------

using test::monitor_once;
using test::one_event;

std::string at_port(Ipv4 ip, unsigned port) { return ip.str() + ":" + std::to_string(port); }

TEST(PolicyTraffic, MonitorShowsDropsAndFlows) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), server = add(sb, "ps");
  cli_ok(sb, {"policy", "set", server.name, "--ingress-default", "deny", "--ingress", "allow tcp 80", "--ingress",
              "deny tcp 82 from " + client.ip.str()});
  cli_ok(sb, {"policy", "set", client.name, "--egress", "deny udp 53 to 10.0.0.0/8"});
  const Netns cns = client.ns(), sns = server.ns();
  const Server web(sns, SOCK_STREAM, server.ip, 80);
  std::set<std::string> sources;

  {
    SCOPED_TRACE("no rule matches: the default denies");
    json e = one_event(monitor_once(sb, {}, [&] {
      sources.insert(at_port(client.ip, tcp_try(cns, nullptr, server.ip, 81, 100ms).local_port));
    }));
    std::cout << "monitor: " << e.dump() << "\n";
    EXPECT_EQ(e.value("type", ""), "drop");
    EXPECT_EQ(e.value("reason", ""), "policy-default-deny");
    EXPECT_EQ(e.value("endpoint", ""), server.name);
    EXPECT_EQ(e.value("proto", ""), "tcp");
    EXPECT_TRUE(sources.contains(e.value("src", ""))) << "src is none of the client's attempts";
    EXPECT_EQ(e.value("dst", ""), at_port(server.ip, 81));
    EXPECT_EQ(e.value("direction", ""), "ingress");
    EXPECT_EQ(e.value("rule", ""), "ingress default deny");
  }
  {
    SCOPED_TRACE("a deny rule decides");
    sources.clear();
    json e = one_event(monitor_once(sb, {}, [&] {
      sources.insert(at_port(client.ip, tcp_try(cns, nullptr, server.ip, 82, 100ms).local_port));
    }));
    std::cout << "monitor: " << e.dump() << "\n";
    EXPECT_EQ(e.value("type", ""), "drop");
    EXPECT_EQ(e.value("reason", ""), "policy-deny");
    EXPECT_EQ(e.value("endpoint", ""), server.name);
    EXPECT_EQ(e.value("proto", ""), "tcp");
    EXPECT_TRUE(sources.contains(e.value("src", ""))) << "src is none of the client's attempts";
    EXPECT_EQ(e.value("dst", ""), at_port(server.ip, 82));
    EXPECT_EQ(e.value("rule", ""), "ingress rule 2: deny tcp 82 from " + client.ip.str());
  }
  {
    SCOPED_TRACE("the sender's egress rule decides");
    json e = one_event(monitor_once(sb, {}, [&] { udp_try(cns, nullptr, server.ip, 53, 100ms); }));
    std::cout << "monitor: " << e.dump() << "\n";
    EXPECT_EQ(e.value("reason", ""), "policy-deny");
    EXPECT_EQ(e.value("endpoint", ""), client.name);
    EXPECT_EQ(e.value("proto", ""), "udp");
    EXPECT_EQ(e.value("dst", ""), at_port(server.ip, 53));
    EXPECT_EQ(e.value("direction", ""), "egress");
    EXPECT_EQ(e.value("rule", ""), "egress rule 1: deny udp 53 to 10.0.0.0/8");
  }
  {
    SCOPED_TRACE("--flows: an allowed new connection");
    sources.clear();
    std::string outcome;
    json e = one_event(monitor_once(sb, {"--flows"}, [&] {
      Attempt t = tcp_try(cns, &web, server.ip, 80, 3s);
      outcome = t.outcome;
      sources.insert(at_port(client.ip, t.local_port));
    }));
    std::cout << "monitor --flows: " << e.dump() << "\n";
    EXPECT_EQ(outcome, "ok");
    EXPECT_EQ(e.value("type", ""), "flow");
    EXPECT_FALSE(e.contains("reason"));
    EXPECT_EQ(e.value("endpoint", ""), server.name);
    EXPECT_EQ(e.value("proto", ""), "tcp");
    EXPECT_TRUE(sources.contains(e.value("src", ""))) << "src is none of the client's connections";
    EXPECT_EQ(e.value("dst", ""), at_port(server.ip, 80));
  }
}

// --- 5. drop counters -----------------------------------------------------

// Sends n datagrams from one socket: each meets the policy alone.
void send_udp(const Netns& from, Ipv4 dst, uint16_t port, int n) {
  UniqueFd s = socket_in(from, SOCK_DGRAM);
  sockaddr_in d = socket_address(dst, port);
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(::sendto(s.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&d), sizeof d), 1) << std::strerror(errno);
}

TEST(PolicyTraffic, DropCountersNameTheRefusingEndpoint) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), server = add(sb, "ps");
  cli_ok(sb, {"policy", "set", server.name, "--ingress-default", "deny", "--ingress", "allow tcp 80", "--ingress",
              "deny udp 7000 from " + client.ip.str()});
  cli_ok(sb, {"policy", "set", client.name, "--egress", "deny udp 7001 to " + server.ip.str()});
  const Netns cns = client.ns(), sns = server.ns();
  const Server web(sns, SOCK_STREAM, server.ip, 80);
  ASSERT_EQ(tcp_try(cns, &web, server.ip, 80, 3s).outcome, "ok");  // neighbours resolved

  const json s0 = drops_of(sb, server.name), c0 = drops_of(sb, client.name);
  send_udp(cns, server.ip, 7002, 7);  // no rule: the server's default
  send_udp(cns, server.ip, 7000, 5);  // the server's deny rule
  send_udp(cns, server.ip, 7001, 3);  // the client's egress rule
  json s1, c1;
  // The datagrams may still be in flight: poll for the counts.
  test::wait_until(
      [&] {
        s1 = drops_of(sb, server.name);
        c1 = drops_of(sb, client.name);
        return delta(s0, s1, "policy-default-deny") >= 7 && delta(s0, s1, "policy-deny") >= 5 &&
               delta(c0, c1, "policy-deny") >= 3;
      },
      5s);
  std::cout << server.name << " drops: " << s1.dump() << "\n" << client.name << " drops: " << c1.dump() << "\n";
  EXPECT_EQ(delta(s0, s1, "policy-default-deny"), 7u);
  EXPECT_EQ(delta(s0, s1, "policy-deny"), 5u);
  EXPECT_EQ(delta(c0, c1, "policy-deny"), 3u);
  EXPECT_EQ(delta(c0, c1, "policy-default-deny"), 0u);

  // status says the same per endpoint.
  json st = cli_json(sb, {"status"});
  bool found = false;
  for (const auto& e : st.at("endpoints")) {
    if (e.at("name") != server.name) continue;
    found = true;
    EXPECT_EQ(e.at("stats").at("drops").at("policy-default-deny").get<uint64_t>(),
              s1.at("policy-default-deny").get<uint64_t>());
    EXPECT_EQ(e.at("stats").at("drops").at("policy-deny").get<uint64_t>(), s1.at("policy-deny").get<uint64_t>());
  }
  EXPECT_TRUE(found) << "status -o json lists no " << server.name << ": " << st.dump();
}

// --- 6. bad input applies nothing -----------------------------------------

TEST(PolicyTraffic, BadInputIsRefusedAndChangesNothing) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), server = add(sb, "ps");
  cli_ok(sb, {"policy", "set", server.name, "--ingress-default", "deny", "--ingress", "allow tcp 80"});
  const json shown = cli_json(sb, {"policy", "show"});
  const PolicyMapCounts entries = policy_maps(sb);
  const Netns cns = client.ns(), sns = server.ns();
  const Server web(sns, SOCK_STREAM, server.ip, 80), other(sns, SOCK_STREAM, server.ip, 81);
  TempStateDir dir;

  struct Bad {
    std::string name, text;
    int line;
    std::string reason;  // a part of the message
  };
  const std::string head = "ingress:\n  default: allow\n  rules:\n";
  const std::vector<Bad> bad = {
      {"unknown-key", "ingress:\n  default: allow\n  rulez: []\n", 3, "unknown key 'rulez'"},
      {"bad-cidr", head + "    - action: allow\n      peer: 10.0.0.300/8\n", 5, "is not a CIDR"},
      {"host-bits", head + "    - action: allow\n      peer: 10.0.0.1/8\n", 5, "host bits set"},
      {"port-70000", head + "    - action: allow\n      proto: tcp\n      port: 70000\n", 6, "out of range"},
      {"unknown-peer", head + "    - action: allow\n      peer: no-such-endpoint\n", 5, "no-such-endpoint"},
      {"yaml-syntax", "ingress:\n\tdefault: deny\n", 2, ""},  // a tab indents nothing in YAML
      {"icmp-port", head + "    - action: allow\n      proto: icmp\n      port: 80\n", 6, "tcp or udp"},
  };
  auto unchanged = [&](const std::string& after_what) {
    SCOPED_TRACE("after " + after_what);
    EXPECT_EQ(cli_json(sb, {"policy", "show"}), shown);
    EXPECT_EQ(policy_maps(sb), entries);
    EXPECT_EQ(tcp_try(cns, &web, server.ip, 80, 3s).outcome, "ok");
    EXPECT_EQ(tcp_try(cns, &other, server.ip, 81, kDenied).outcome, "timeout");
  };
  for (const auto& b : bad) {
    const std::string file = (dir.path() / (b.name + ".yaml")).string();
    write(file, b.text);
    CmdResult r = sb.cli({"policy", "set", server.name, "-f", file});
    SCOPED_TRACE(b.name + ": " + r.err);
    EXPECT_EQ(r.code, 2);
    test::expect_one_line_error(r);
    EXPECT_NE(r.err.find(file + ":" + std::to_string(b.line) + ": "), std::string::npos) << "no FILE:LINE";
    EXPECT_NE(r.err.find(b.reason), std::string::npos);
    unchanged(b.name);
  }
  {
    const std::string good = (dir.path() / "good.yaml").string();
    write(good, head + "    - {action: allow, proto: udp, port: 53}\n");
    CmdResult r = sb.cli({"policy", "set", "no-such-endpoint", "-f", good});
    SCOPED_TRACE("unknown endpoint: " + r.err);
    EXPECT_EQ(r.code, 3);
    test::expect_one_line_error(r);
    unchanged("an unknown endpoint");

    r = sb.cli({"policy", "set", server.name, "-f", good, "--ingress", "allow udp 53"});
    SCOPED_TRACE("-f and a rule option: " + r.err);
    EXPECT_EQ(r.code, 2);
    test::expect_one_line_error(r);
    unchanged("-f with a rule option");
  }
  for (const std::vector<std::string>& opts : std::vector<std::vector<std::string>>{
           {"--ingress", "allow tcp 70000"},
           {"--ingress", "allow icmp 80"},
           {"--ingress", "allow tcp 80 to 10.0.0.0/8"},
           {"--ingress-default", "maybe"}}) {
    std::vector<std::string> args = {"policy", "set", server.name};
    args.insert(args.end(), opts.begin(), opts.end());
    CmdResult r = sb.cli(args);
    SCOPED_TRACE(test::joined(opts) + ": " + r.err);
    EXPECT_EQ(r.code, 2);
    test::expect_one_line_error(r);
    unchanged(test::joined(opts));
  }
}

// --- 7. lifecycle ----------------------------------------------------------

TEST(PolicyTraffic, PolicyGoesWithItsEndpointAndSurvivesAttach) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb;
  Ep client = add(sb, "pc"), server = add(sb, "ps");
  cli_ok(sb, {"policy", "set", server.name, "--ingress-default", "deny", "--ingress", "allow tcp 80", "--ingress",
              "deny tcp 80 from 10.99.0.0/16"});
  const Netns cns = client.ns();
  const json shown = cli_json(sb, {"policy", "show"});
  const PolicyMapCounts entries = policy_maps(sb);
  {
    const Netns sns = server.ns();
    const Server web(sns, SOCK_STREAM, server.ip, 80), other(sns, SOCK_STREAM, server.ip, 81);
    for (int i = 0; i < 2; ++i) {
      SCOPED_TRACE("attach #" + std::to_string(i + 1));
      cli_ok(sb, {"attach"});
      EXPECT_EQ(cli_json(sb, {"policy", "show"}), shown);
      EXPECT_EQ(policy_maps(sb), entries) << "attach changed the policy maps";
      EXPECT_EQ(tcp_try(cns, &web, server.ip, 80, 3s).outcome, "ok");
      EXPECT_EQ(tcp_try(cns, &other, server.ip, 81, kDenied).outcome, "timeout");
    }
  }

  cli_ok(sb, {"endpoint", "del", server.name});
  EXPECT_EQ(cli_json(sb, {"policy", "show"}), json::array());
  EXPECT_EQ(policy_maps(sb), PolicyMapCounts{}) << "endpoint del left policy entries behind";

  Ep fresh = add(sb, "pf");
  EXPECT_NE(fresh.ip, server.ip);
  EXPECT_TRUE(cli_json(sb, {"policy", "show", fresh.name}).at("policy").is_null());
  {
    const Server other(fresh.ns(), SOCK_STREAM, fresh.ip, 81);
    EXPECT_EQ(tcp_try(cns, &other, fresh.ip, 81, 3s).outcome, "ok");
  }

  // An endpoint given the old address inherits nothing of its policy.
  EndpointRecord r = sb.node().add_endpoint({unique("pr"), server.ip, std::nullopt, "eth0"});
  EXPECT_TRUE(cli_json(sb, {"policy", "show", r.name}).at("policy").is_null());
  {
    const Server other(Netns::open_named(r.name), SOCK_STREAM, server.ip, 81);
    EXPECT_EQ(tcp_try(cns, &other, server.ip, 81, 3s).outcome, "ok");
  }
  EXPECT_EQ(cli_json(sb, {"policy", "show"}), json::array());
}

}  // namespace
}  // namespace ebpfnet
