// NAT with real traffic: masquerade through a sandbox node's uplink into its
// outside namespace, published ports from outside and hairpinned, the node's
// own traffic left alone, conntrack expiry and flush, and a thousand
// connections at once.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/probe.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::Child;
using test::CmdResult;
using test::listening;
using test::run;
using test::run_in;
using test::SandboxNode;
using test::unique;
using test::wait_until;

using Clock = std::chrono::steady_clock;

const Ipv4 kUplink = *Ipv4::parse(kSandboxUplinkIp);
const Ipv4 kOutside = *Ipv4::parse(kSandboxOutsideIp);
const Ipv4 kServer = *Ipv4::parse(kSandboxServerIp);

constexpr uint16_t kTcpPort = 7101, kUdpPort = 7102, kUdpPort2 = 7103, kProbePort = 7104;
constexpr uint16_t kBulkPort = 7105, kNodePort = 7106, kSourcePort = 40000;

struct Ep {
  std::string name;  // also its namespace's name
  Ipv4 ip;
};

// What a server saw and answered: "<request> <peer address> <peer port>".
struct Reply {
  std::string request, peer;
  unsigned port = 0;
};

std::optional<Reply> parse_reply(const std::string& out) {
  std::istringstream s(out);
  Reply r;
  if (!(s >> r.request >> r.peer >> r.port)) return std::nullopt;
  return r;
}

bool nat_port(unsigned port) { return port >= kNatPortMin && port <= kNatPortMax; }

// A socat server in ns that answers each request line with the line, then
// the peer's address and port (spaces: socat splits addresses at ':').
// bind matters for UDP: an unbound socket answers from the address its
// route picks, and the reply then matches no flow.
std::unique_ptr<Child> echo_server(const std::string& ns, const std::string& proto, uint16_t port,
                                   const std::string& bind = "", const std::string& delay = "") {
  std::string addr = (proto == "tcp" ? "TCP-LISTEN:" : "UDP-RECVFROM:") + std::to_string(port) +
                     (bind.empty() ? "" : ",bind=" + bind) + (proto == "tcp" ? ",reuseaddr" : "") +
                     ",fork";
  std::string reply = "SYSTEM:read l; " + (delay.empty() ? "" : "sleep " + delay + "; ") +
                      "echo $l $SOCAT_PEERADDR $SOCAT_PEERPORT";
  // -t3: the answer may come seconds after the client's half-close.
  auto child = std::make_unique<Child>(
      std::vector<std::string>{"ip", "netns", "exec", ns, "socat", "-T5", "-t3", addr, reply});
  if (!listening(ns, proto == "tcp" ? "-t" : "-u", port))
    throw std::runtime_error(proto + " server on port " + std::to_string(port) + " in " + ns +
                             " did not come up");
  return child;
}

// One request line from ns to dst:port with socat; extra goes on the address.
// A UDP client waits out its whole linger time: an answer has no EOF.
CmdResult request(const std::string& ns, const std::string& proto, Ipv4 dst, uint16_t port,
                  const std::string& line, const std::string& extra = "",
                  const std::string& linger = "1") {
  std::string addr = (proto == "tcp" ? "TCP:" : "UDP:") + dst.str() + ":" + std::to_string(port) +
                     (extra.empty() ? "" : "," + extra);
  return run({"ip", "netns", "exec", ns, "socat", "-T4", "-t" + linger, "-", addr}, line + "\n",
             10);
}

CmdResult ping(const std::string& ns, Ipv4 dst) {
  return run_in(ns, {"ping", "-n", "-c1", "-W1", dst.str()}, 10);
}

using test::cli_json;

// `conntrack list` rows of one protocol.
std::vector<json> flows(SandboxNode& sb, const std::string& proto) {
  std::vector<json> out;
  for (const auto& f : cli_json(sb, {"conntrack", "list"}))
    if (f.at("proto") == proto) out.push_back(f);
  return out;
}

unsigned port_of(const json& addr_port) {
  std::string s = addr_port.get<std::string>();
  return static_cast<unsigned>(std::stoul(s.substr(s.rfind(':') + 1)));
}

std::string host_of(const json& addr_port) {
  std::string s = addr_port.get<std::string>();
  return s.substr(0, s.find(':'));
}

// Sources of the ICMP echo requests that reach a namespace, read from a raw
// socket opened there before the traffic.
class EchoRequestSources {
 public:
  explicit EchoRequestSources(const std::string& ns) {
    NetnsGuard in(Netns::open_named(ns));
    fd_ = UniqueFd(::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP));
    if (!fd_.valid()) throw std::runtime_error("raw ICMP socket: " + std::string(strerror(errno)));
  }

  std::vector<Ipv4> read() {
    std::vector<Ipv4> out;
    char buf[512];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n < 0) return out;
      auto* ip = reinterpret_cast<const iphdr*>(buf);
      if (n < static_cast<ssize_t>(ip->ihl * 4 + sizeof(icmphdr))) continue;
      auto* icmp = reinterpret_cast<const icmphdr*>(buf + ip->ihl * 4);
      if (icmp->type == ICMP_ECHO) out.push_back(Ipv4::from_be(ip->saddr));
    }
  }

 private:
  UniqueFd fd_;
};

// A sandbox node with an uplink and two endpoints.
class Nat : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.240.0.0/24", /*attach=*/true, /*uplink_sandbox=*/true);
    a_ = add();
    b_ = add();
  }

  Ep add() {
    EndpointRecord rec =
        sb_->node().add_endpoint({unique("ta"), std::nullopt, std::nullopt, "eth0"});
    return {rec.name, rec.ip};
  }

  const std::string& outside() const { return sb_->outside(); }

  std::optional<SandboxNode> sb_;
  Ep a_, b_;
};

TEST_F(Nat, EndpointReachesOutsideAsTheUplinkAddress) {
  std::vector<std::unique_ptr<Child>> servers;
  servers.push_back(echo_server(outside(), "tcp", kTcpPort));
  servers.push_back(echo_server(outside(), "udp", kUdpPort, kServer.str()));
  servers.push_back(echo_server(outside(), "udp", kUdpPort2, kOutside.str()));
  EchoRequestSources sniffer(outside());

  for (Ipv4 dst : {kServer, kOutside}) {
    SCOPED_TRACE(a_.name + " -> " + dst.str());
    for (const std::string proto : {"tcp", "udp"}) {
      uint16_t port = proto == "tcp" ? kTcpPort : dst == kServer ? kUdpPort : kUdpPort2;
      CmdResult r = request(a_.name, proto, dst, port, "hello-" + proto);
      EXPECT_EQ(r.code, 0) << proto << ": " << r.err;
      auto reply = parse_reply(r.out);
      ASSERT_TRUE(reply) << proto << " reply: '" << r.out << "'";
      EXPECT_EQ(reply->request, "hello-" + proto);
      EXPECT_EQ(reply->peer, kUplink.str()) << proto << ": the outside saw the endpoint";
      EXPECT_TRUE(nat_port(reply->port)) << proto << " source port " << reply->port;
    }
    CmdResult p = ping(a_.name, dst);
    EXPECT_EQ(p.code, 0) << p.out << p.err;

    // The in-process probes: the server end's view of the source.
    Netns from = Netns::open_named(a_.name), to = Netns::open_named(outside());
    ProbeResult tcp = probe_tcp(from, to, dst, kProbePort);
    EXPECT_TRUE(tcp.ok) << tcp.error;
    EXPECT_EQ(tcp.peer_saw, kUplink) << tcp.peer_saw.str();
    ProbeResult udp = probe_udp(from, to, dst, kProbePort);
    EXPECT_TRUE(udp.ok) << udp.error;
    EXPECT_EQ(udp.peer_saw, kUplink) << udp.peer_saw.str();
    ProbeResult icmp = probe_icmp(from, dst);
    EXPECT_TRUE(icmp.ok) << icmp.error;
  }

  std::vector<Ipv4> sources = sniffer.read();
  EXPECT_GE(sources.size(), 4u);  // a ping and a probe to each address
  for (Ipv4 s : sources) EXPECT_EQ(s, kUplink) << "an echo request came from " << s.str();

  // Conntrack shows each ICMP flow masqueraded.
  std::set<std::string> icmp_dsts;
  for (const auto& f : flows(*sb_, "icmp")) {
    EXPECT_EQ(f.at("src"), a_.ip.str());
    EXPECT_EQ(f.at("nat"), "snat");
    EXPECT_EQ(f.at("nat_src"), kUplink.str());
    EXPECT_EQ(f.at("nat_dst"), f.at("dst"));
    EXPECT_EQ(f.at("state"), "replied");
    icmp_dsts.insert(f.at("dst").get<std::string>());
  }
  EXPECT_EQ(icmp_dsts, (std::set<std::string>{kServer.str(), kOutside.str()}));
  for (const auto& f : flows(*sb_, "tcp")) {
    EXPECT_EQ(f.at("nat"), "snat");
    EXPECT_EQ(host_of(f.at("nat_src")), kUplink.str());
  }
}

TEST_F(Nat, TwoEndpointsWithOneSourcePortToOneServer) {
  // The TCP answer waits a second, so both connections are open at once;
  // UDP flows stay in the table anyway.
  std::vector<std::unique_ptr<Child>> servers;
  servers.push_back(echo_server(outside(), "tcp", kTcpPort, "", "1"));
  servers.push_back(echo_server(outside(), "udp", kUdpPort, kOutside.str()));

  for (const std::string proto : {"tcp", "udp"}) {
    SCOPED_TRACE(proto);
    uint16_t port = proto == "tcp" ? kTcpPort : kUdpPort;
    auto send = [&](const Ep& ep) {
      return std::async(std::launch::async, [&, ep] {
        return request(ep.name, proto, kOutside, port, ep.name,
                       "sourceport=" + std::to_string(kSourcePort) + ",reuseaddr",
                       proto == "tcp" ? "3" : "1");
      });
    };
    auto fa = send(a_), fb = send(b_);
    CmdResult ra = fa.get(), rb = fb.get();
    ASSERT_EQ(ra.code, 0) << ra.err;
    ASSERT_EQ(rb.code, 0) << rb.err;
    auto reply_a = parse_reply(ra.out), reply_b = parse_reply(rb.out);
    ASSERT_TRUE(reply_a && reply_b) << "'" << ra.out << "' '" << rb.out << "'";
    // Each got its own answer.
    EXPECT_EQ(reply_a->request, a_.name);
    EXPECT_EQ(reply_b->request, b_.name);
    EXPECT_EQ(reply_a->peer, kUplink.str());
    EXPECT_EQ(reply_b->peer, kUplink.str());
    EXPECT_NE(reply_a->port, reply_b->port) << "one translated tuple for two flows";

    std::set<std::string> srcs;
    for (const auto& f : flows(*sb_, proto)) {
      if (port_of(f.at("src")) != kSourcePort) continue;
      srcs.insert(host_of(f.at("src")));
      EXPECT_TRUE(port_of(f.at("nat_src")) == reply_a->port ||
                  port_of(f.at("nat_src")) == reply_b->port)
          << f.dump();
    }
    EXPECT_EQ(srcs, (std::set<std::string>{a_.ip.str(), b_.ip.str()}));
  }
}

class PublishedPort : public Nat {
 protected:
  void SetUp() override {
    Nat::SetUp();
    if (IsSkipped()) return;
    servers_.push_back(echo_server(a_.name, "tcp", 80));
    servers_.push_back(echo_server(a_.name, "udp", 53));
    json pub = cli_json(*sb_, {"expose", a_.name, "80/tcp", "--port", "8080"});
    EXPECT_EQ(pub,
              (json{{"endpoint", a_.name}, {"proto", "tcp"}, {"target_port", 80}, {"port", 8080}}));
    cli_json(*sb_, {"expose", a_.name, "53/udp", "--port", "5353"});
  }

  std::vector<std::unique_ptr<Child>> servers_;
};

TEST_F(PublishedPort, OutsideReachesTheEndpointUntilUnexposed) {
  json list = cli_json(*sb_, {"expose", "list"});
  ASSERT_EQ(list.size(), 2u) << list.dump();

  CmdResult tcp = request(outside(), "tcp", kUplink, 8080, "from-outside");
  EXPECT_EQ(tcp.code, 0) << tcp.err;
  auto reply = parse_reply(tcp.out);
  ASSERT_TRUE(reply) << "'" << tcp.out << "'";
  EXPECT_EQ(reply->request, "from-outside");
  EXPECT_EQ(reply->peer, kOutside.str()) << "the endpoint sees the real client";
  CmdResult udp = request(outside(), "udp", kUplink, 5353, "from-outside");
  EXPECT_EQ(udp.code, 0) << udp.err;
  reply = parse_reply(udp.out);
  ASSERT_TRUE(reply) << "'" << udp.out << "'";
  EXPECT_EQ(reply->peer, kOutside.str());

  bool dnat_seen = false;
  for (const auto& f : flows(*sb_, "tcp")) {
    if (f.at("dst") != kUplink.str() + ":8080") continue;
    dnat_seen = true;
    EXPECT_EQ(f.at("nat"), "dnat");
    EXPECT_EQ(f.at("nat_dst"), a_.ip.str() + ":80");
  }
  EXPECT_TRUE(dnat_seen);

  // The port is taken: a second publish is refused and changes nothing.
  CmdResult again = sb_->cli({"expose", b_.name, "81/tcp", "--port", "8080"});
  EXPECT_EQ(again.code, 4) << again.err;
  EXPECT_EQ(cli_json(*sb_, {"expose", "list"}), list);
  CmdResult still = request(outside(), "tcp", kUplink, 8080, "still-a");
  reply = parse_reply(still.out);
  ASSERT_TRUE(reply) << "'" << still.out << "'";
  EXPECT_EQ(reply->request, "still-a");

  CmdResult un = sb_->cli({"unexpose", a_.name, "80/tcp"});
  ASSERT_EQ(un.code, 0) << un.err;
  ASSERT_EQ(cli_json(*sb_, {"expose", "list"}).size(), 1u);
  // The node itself has nothing on 8080: refused, or nothing at all.
  CmdResult after = request(outside(), "tcp", kUplink, 8080, "after-unexpose");
  EXPECT_NE(after.code, 0);
  EXPECT_EQ(after.out, "");
  // The other published port is unaffected.
  EXPECT_EQ(request(outside(), "udp", kUplink, 5353, "udp-still").code, 0);
}

TEST_F(PublishedPort, AnotherEndpointReachesItThroughTheUplinkAddress) {
  CmdResult tcp = request(b_.name, "tcp", kUplink, 8080, "hairpin");
  EXPECT_EQ(tcp.code, 0) << tcp.err;
  auto reply = parse_reply(tcp.out);
  ASSERT_TRUE(reply) << "'" << tcp.out << "'";
  EXPECT_EQ(reply->request, "hairpin");
  CmdResult udp = request(b_.name, "udp", kUplink, 5353, "hairpin-udp");
  EXPECT_EQ(udp.code, 0) << udp.err;
  reply = parse_reply(udp.out);
  ASSERT_TRUE(reply) << "'" << udp.out << "'";
  EXPECT_EQ(reply->request, "hairpin-udp");
  // In-process, to a listener of its own behind a published port.
  cli_json(*sb_, {"expose", a_.name, std::to_string(kProbePort) + "/tcp", "--port", "9090"});
  ProbeResult p = probe_tcp_via(Netns::open_named(b_.name), kUplink, 9090,
                                Netns::open_named(a_.name), a_.ip, kProbePort);
  EXPECT_TRUE(p.ok) << p.error;
}

TEST_F(Nat, NodeOwnTrafficIsUndisturbed) {
  // The NAT path is live: an endpoint flow is masqueraded and a port published.
  ProbeResult masq =
      probe_tcp(Netns::open_named(a_.name), Netns::open_named(outside()), kOutside, kProbePort);
  ASSERT_TRUE(masq.ok) << masq.error;
  ASSERT_EQ(masq.peer_saw, kUplink);
  cli_json(*sb_, {"expose", a_.name, "80/tcp", "--port", "8080"});
  json flushed = cli_json(*sb_, {"conntrack", "flush"});
  EXPECT_GE(flushed.at("removed").get<int>(), 2);

  std::vector<std::unique_ptr<Child>> servers;
  servers.push_back(echo_server(outside(), "tcp", kTcpPort));
  servers.push_back(echo_server(outside(), "udp", kUdpPort, kOutside.str()));
  servers.push_back(echo_server(sb_->name(), "tcp", kNodePort));

  // Node -> outside keeps its own source port: no translation.
  for (const std::string proto : {"tcp", "udp"}) {
    uint16_t port = proto == "tcp" ? kTcpPort : kUdpPort;
    CmdResult r = request(sb_->name(), proto, kOutside, port, "node-" + proto,
                          "sourceport=" + std::to_string(kSourcePort));
    EXPECT_EQ(r.code, 0) << proto << ": " << r.err;
    auto reply = parse_reply(r.out);
    ASSERT_TRUE(reply) << proto << ": '" << r.out << "'";
    EXPECT_EQ(reply->request, "node-" + proto);
    EXPECT_EQ(reply->peer, kUplink.str());
    EXPECT_EQ(reply->port, kSourcePort);
  }
  for (Ipv4 dst : {kOutside, kServer}) EXPECT_EQ(ping(sb_->name(), dst).code, 0) << dst.str();
  // Outside -> a server of the node's own.
  CmdResult in = request(outside(), "tcp", kUplink, kNodePort, "to-node");
  EXPECT_EQ(in.code, 0) << in.err;
  auto reply = parse_reply(in.out);
  ASSERT_TRUE(reply) << "'" << in.out << "'";
  EXPECT_EQ(reply->request, "to-node");
  EXPECT_EQ(reply->peer, kOutside.str());
  EXPECT_EQ(ping(outside(), kUplink).code, 0);

  // None of it went through conntrack, and nothing is netfilter's doing.
  EXPECT_EQ(cli_json(*sb_, {"conntrack", "list"}), json::array());
  for (const auto& argv :
       std::vector<std::vector<std::string>>{{"iptables-save"}, {"nft", "list", "ruleset"}}) {
    CmdResult r = run_in(sb_->name(), argv);
    EXPECT_EQ(r.code, 0) << argv[0] << ": " << r.err;
    EXPECT_EQ(r.out, "") << argv[0];
  }
}

TEST(NatConntrack, EntriesExpireAndFlush) {
  EBPFNET_REQUIRE_ROOT();
  // Timeouts are set by the first attach, before any traffic.
  SandboxNode sb("10.240.0.0/24", /*attach=*/false, /*uplink_sandbox=*/true);
  CmdResult att = sb.cli({"attach", "--ct-timeout", "udp=2"});
  ASSERT_EQ(att.code, 0) << att.err;
  EndpointRecord ep = sb.node().add_endpoint({unique("ta"), std::nullopt, std::nullopt, "eth0"});
  Netns from = Netns::open_named(ep.name), out = Netns::open_named(sb.outside());

  ASSERT_TRUE(probe_icmp(from, kOutside).ok);  // ICMP keeps its default 30 s
  ProbeResult udp = probe_udp(from, out, kOutside, kUdpPort);
  ASSERT_TRUE(udp.ok) << udp.error;
  auto replied = Clock::now();
  auto udp_flows = flows(sb, "udp");
  ASSERT_EQ(udp_flows.size(), 1u);
  EXPECT_EQ(host_of(udp_flows[0].at("src")), ep.ip.str());
  EXPECT_EQ(udp_flows[0].at("nat"), "snat");
  EXPECT_EQ(udp_flows[0].at("state"), "replied");
  EXPECT_LE(udp_flows[0].at("expires_in_s").get<double>(), 2.0);

  ASSERT_TRUE(wait_until([&] { return flows(sb, "udp").empty(); }, 4s)) << "never expired";
  EXPECT_GE(Clock::now() - replied, 1500ms) << "expired before its timeout";
  EXPECT_EQ(flows(sb, "icmp").size(), 1u) << "the udp timeout cut another protocol's flow";

  // Flush empties a populated table; new flows are made afterwards.
  ASSERT_TRUE(probe_tcp(from, out, kOutside, kProbePort).ok);
  ASSERT_TRUE(probe_udp(from, out, kOutside, kUdpPort).ok);
  size_t listed = cli_json(sb, {"conntrack", "list"}).size();
  ASSERT_EQ(listed, 3u);
  json flushed = cli_json(sb, {"conntrack", "flush"});
  EXPECT_GE(flushed.at("removed").get<size_t>(), 2 * listed);  // both directions of each
  EXPECT_EQ(cli_json(sb, {"conntrack", "list"}), json::array());
  EXPECT_TRUE(probe_tcp(from, out, kOutside, kProbePort).ok);
  EXPECT_EQ(flows(sb, "tcp").size(), 1u);
}

// Enough descriptors for both ends of n connections.
void raise_nofile(rlim_t n) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur >= n) return;
  lim.rlim_cur = n;
  lim.rlim_max = std::max(lim.rlim_max, n);
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) throw std::runtime_error("raising RLIMIT_NOFILE");
}

UniqueFd tcp_socket_in(const Netns& ns) {
  NetnsGuard in(ns);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::runtime_error("socket: " + std::string(strerror(errno)));
  return fd;
}

TEST_F(Nat, ThousandConcurrentOutboundConnections) {
  constexpr size_t kConns = 1000;
  const auto deadline = Clock::now() + 20s;
  raise_nofile(2 * kConns + 256);
  Netns ep = Netns::open_named(a_.name), out = Netns::open_named(outside());

  UniqueFd listener = tcp_socket_in(out);
  sockaddr_in addr = socket_address(kOutside, kBulkPort);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 2048), 0);  // capped by somaxconn (4096 by default)

  std::vector<UniqueFd> clients;
  for (size_t i = 0; i < kConns; ++i) {
    clients.push_back(tcp_socket_in(ep));
    int rc = ::connect(clients.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << i << ": " << strerror(errno);
  }

  // Every client connected (the handshake went through NAT both ways).
  std::vector<pollfd> pending;
  for (const auto& c : clients) pending.push_back({c.get(), POLLOUT, 0});
  size_t connected = 0, failed = 0;
  int first_error = 0;
  while (!pending.empty() && Clock::now() < deadline) {
    if (::poll(pending.data(), pending.size(), 200) < 0) break;
    std::vector<pollfd> still;
    for (const auto& p : pending) {
      if (!p.revents) {
        still.push_back({p.fd, POLLOUT, 0});
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err && !first_error) first_error = err;
      (err ? failed : connected)++;
    }
    pending.swap(still);
  }
  EXPECT_EQ(connected, kConns) << failed << " failed (first: " << strerror(first_error) << "), "
                               << pending.size() << " still connecting at the deadline";

  // The server accepts them all, each from the uplink address.
  std::set<unsigned> peer_ports;
  size_t accepted = 0, from_elsewhere = 0, outside_nat_range = 0;
  std::vector<UniqueFd> conns;
  while (accepted < kConns && Clock::now() < deadline) {
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    UniqueFd c(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
    if (!c.valid()) {
      pollfd p{listener.get(), POLLIN, 0};
      ::poll(&p, 1, 200);
      continue;
    }
    ++accepted;
    from_elsewhere += Ipv4::from_be(peer.sin_addr.s_addr) != kUplink;
    outside_nat_range += !nat_port(ntohs(peer.sin_port));
    peer_ports.insert(ntohs(peer.sin_port));
    conns.push_back(std::move(c));
  }
  EXPECT_EQ(accepted, kConns);
  EXPECT_EQ(from_elsewhere, 0u) << "connections arrived from other than the uplink address";
  EXPECT_EQ(outside_nat_range, 0u) << "source ports outside the masquerade range";
  EXPECT_EQ(peer_ports.size(), kConns) << "two connections shared a translated port";

  // Conntrack holds one established masquerade flow per connection.
  std::set<unsigned> nat_ports;
  for (const auto& f : flows(*sb_, "tcp"))
    if (f.at("dst") == kOutside.str() + ":" + std::to_string(kBulkPort) && f.at("nat") == "snat" &&
        host_of(f.at("src")) == a_.ip.str() && host_of(f.at("nat_src")) == kUplink.str() &&
        f.at("state") == "established")
      nat_ports.insert(port_of(f.at("nat_src")));
  EXPECT_GE(nat_ports.size(), kConns);
  json st = cli_json(*sb_, {"status"});
  for (const auto& e : st.at("endpoints"))
    if (e.at("name") == a_.name) {
      EXPECT_EQ(e.at("stats").at("drops").at("nat-no-port"), 0);
      EXPECT_EQ(e.at("stats").at("drops").at("ct-full"), 0);
    }
}

// Drops the datapath counted, by reason: the endpoint's and the node's.
std::map<std::string, uint64_t> counted_drops(SandboxNode& sb, const std::string& endpoint) {
  auto maps = Datapath::open_pinned_maps(sb.node().pin_dir());
  if (!maps) throw std::runtime_error("node has no pinned maps");
  DropCounts sum = maps->node_drops();
  for (const auto& v : sb.node().endpoints())
    if (v.rec.name == endpoint && v.stats)
      for (size_t r = 0; r < sum.size(); ++r) sum[r] += v.stats->drops[r];
  std::map<std::string, uint64_t> out;
  for (size_t r = 0; r < sum.size(); ++r)
    if (sum[r]) out[std::string(drop_reason_name(static_cast<int>(r)))] = sum[r];
  return out;
}

// Short connections through masquerade to one server that closes first, so
// it holds each tuple in TIME_WAIT: a NAT port handed out again while the
// server still waits on it would stall the handshake. Every connection
// either completes or is counted as a drop with a reason.
TEST_F(Nat, EightThousandShortConnectionsEveryFailureCounted) {
  constexpr size_t kConns = 8000;
  Netns ep = Netns::open_named(a_.name), out = Netns::open_named(outside());
  UniqueFd listener = tcp_socket_in(out);
  sockaddr_in addr = socket_address(kOutside, kBulkPort);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 1024), 0);

  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) {
      pollfd p{listener.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c.valid()) continue;
      pollfd r{c.get(), POLLIN, 0};
      char byte = 0;
      if (::poll(&r, 1, 3000) == 1 && ::read(c.get(), &byte, 1) == 1) (void)!::write(c.get(), &byte, 1);
    }  // closed here, first: the server side waits in TIME_WAIT
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      t.join();
    }
  } join{stop, server};

  auto drops_before = counted_drops(*sb_, a_.name);
  std::map<std::string, size_t> failures;
  const auto started = Clock::now();
  for (size_t i = 0; i < kConns; ++i) {
    UniqueFd c = tcp_socket_in(ep);
    auto fail = [&](const std::string& why) { ++failures[why]; };
    if (::connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
      fail(std::string("connect: ") + strerror(errno));
      continue;
    }
    pollfd w{c.get(), POLLOUT, 0};
    if (::poll(&w, 1, 3000) != 1) {
      fail("handshake timed out (3 s)");
      continue;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      fail(std::string("connect: ") + strerror(err));
      continue;
    }
    char byte = 'x';
    pollfd r{c.get(), POLLIN, 0};
    if (::write(c.get(), &byte, 1) != 1 || ::poll(&r, 1, 3000) != 1 || ::read(c.get(), &byte, 1) != 1)
      fail("no answer within 3 s");
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  uint64_t counted = 0;
  std::string counted_reasons;
  for (const auto& [why, n] : counted_drops(*sb_, a_.name)) {
    const uint64_t d = n - drops_before[why];
    counted += d;
    if (d) counted_reasons += " " + std::to_string(d) + " x " + why + ";";
  }
  size_t failed = 0;
  std::string reasons;
  for (const auto& [why, n] : failures) {
    failed += n;
    reasons += " " + std::to_string(n) + " x " + why + ";";
  }
  std::cout << kConns - failed << " of " << kConns << " short connections in " << seconds << " s; failed:"
            << (reasons.empty() ? " none" : reasons) << " drops counted:" << (counted_reasons.empty() ? " none" : counted_reasons)
            << "\n";
  EXPECT_TRUE(failed == 0 || counted >= failed)
      << failed << " connections failed (" << reasons << ") but only " << counted << " drops were counted";
}

}  // namespace
}  // namespace ebpfnet
