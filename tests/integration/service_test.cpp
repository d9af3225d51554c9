// Services with real traffic on a sandbox node, balanced at connect time
// (the socket hooks) and per packet (attach --socket-lb off): a virtual IP
// answered by every backend and seen by the client as its peer, a node port
// from outside, UDP replies from the virtual IP, draining that keeps an
// open connection, refusal without a backend, backends leaving with their
// endpoints, bad input refused with nothing changed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "connection.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/service_table.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;
using test::Child;
using test::CmdResult;
using test::SandboxNode;

const Ipv4 kVip = *Ipv4::parse("10.96.0.10");
const Ipv4 kUplink = *Ipv4::parse(kSandboxUplinkIp);
constexpr uint16_t kVipPort = 80, kBackendPort = 8080, kNodePort = 30080;

using test::cli_json;

void ok(SandboxNode& sb, const std::vector<std::string>& args) {
  CmdResult r = sb.cli(args, 30);
  ASSERT_EQ(r.code, 0) << test::joined(args) << ": " << r.err;
}

// A TCP server in ns that answers every connection with its name and the
// client's address, then closes.
std::unique_ptr<Child> name_server(const std::string& ns, const std::string& name) {
  auto c = std::make_unique<Child>(std::vector<std::string>{
      "ip", "netns", "exec", ns, "socat", "-T5", "TCP-LISTEN:" + std::to_string(kBackendPort) + ",reuseaddr,fork",
      "SYSTEM:echo " + name + " $SOCAT_PEERADDR"});
  if (!test::listening(ns, "-t", kBackendPort)) throw std::runtime_error("server in " + ns + " did not come up");
  return c;
}

sockaddr_in sockaddr_of(Ipv4 ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ip.be();
  a.sin_port = htons(port);
  return a;
}

// A TCP socket in ns connecting to dst:port within 3 s; errno when it fails.
int connect_in(const Netns& ns, Ipv4 dst, uint16_t port, UniqueFd& fd) {
  fd = test::socket_in(ns, SOCK_STREAM);
  sockaddr_in a = sockaddr_of(dst, port);
  timeval tv{3, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
}

// One connection from ns to dst:port: what the server said, "" when none
// answered within 3 s.
std::string ask(const Netns& ns, Ipv4 dst, uint16_t port) {
  UniqueFd fd;
  if (connect_in(ns, dst, port, fd) != 0) return "";
  std::string got;
  char buf[128];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) got.append(buf, n);
  while (!got.empty() && got.back() == '\n') got.pop_back();
  return got;
}

uint64_t connections(const json& list, const std::string& service) {
  uint64_t n = 0;
  for (const auto& s : list)
    if (s.at("name") == service)
      for (const auto& b : s.at("backends")) n += b.at("connections").get<uint64_t>();
  return n;
}

class ServiceNode : public ::testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.240.0.0/24", true, true, "", "sv");
    ok(*sb_, {"endpoint", "add", c(), w1(), w2()});
  }
  std::string c() const { return sb_->name() + "-c"; }
  std::string w1() const { return sb_->name() + "-w1"; }
  std::string w2() const { return sb_->name() + "-w2"; }
  std::string ip_of(const std::string& ep) {
    for (const auto& e : cli_json(*sb_, {"endpoint", "list"}))
      if (e.at("name") == ep) return e.at("ip");
    return "";
  }
  std::optional<SandboxNode> sb_;
};

// Parameter: connect-time balancing on (the default) or off.
class ServiceTraffic : public ServiceNode, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    ServiceNode::SetUp();
    if (!connect_time()) ok(*sb_, {"attach", "--socket-lb", "off"});
  }
  bool connect_time() const { return GetParam(); }
  // Whether conntrack holds a flow addressed to the virtual IP (per-packet
  // balancing translates each packet; connect-time balancing none), each
  // naming its service and backend endpoint.
  bool vip_flows() {
    bool any = false;
    for (const auto& f : cli_json(*sb_, {"conntrack", "list"}))
      if (f.at("dst").get<std::string>().starts_with(kVip.str() + ":")) {
        any = true;
        EXPECT_EQ(f.value("service", ""), "api") << f.dump();
        const std::string b = f.value("backend", "");
        EXPECT_TRUE(b == w1() + ":8080" || b == w2() + ":8080") << f.dump();
      }
    return any;
  }
};

TEST_P(ServiceTraffic, VipReachesEveryBackendAndNodePortWorksFromOutside) {
  auto s1 = name_server(w1(), "w1");
  auto s2 = name_server(w2(), "w2");
  ok(*sb_, {"service", "add", "api", kVip.str() + ":80/tcp", "--node-port", "30080", "--backend",
            w1() + ":8080", "--backend", w2() + ":8080,weight=3"});
  const Netns client = Netns::open_named(c());
  std::map<std::string, int> seen;
  constexpr int kConnections = 40;
  for (int i = 0; i < kConnections; ++i) seen[ask(client, kVip, kVipPort)]++;
  const std::string cip = ip_of(c());
  EXPECT_GT(seen["w1 " + cip], 0) << "the backend sees the client's own address";
  EXPECT_GT(seen["w2 " + cip], seen["w1 " + cip]) << "w2 weighs three times w1";
  EXPECT_EQ(seen["w1 " + cip] + seen["w2 " + cip], kConnections);
  EXPECT_EQ(vip_flows(), !connect_time());

  const Netns outside = Netns::open_named(sb_->outside());
  for (int i = 0; i < 10; ++i) {
    const std::string answer = ask(outside, kUplink, kNodePort);
    EXPECT_NE(answer.find(" 198.18."), std::string::npos)
        << "node-port connection " << i << " answered by a backend that sees the client's address: '" << answer
        << "'";
  }
  EXPECT_EQ(connections(cli_json(*sb_, {"service", "list"}), "api"), uint64_t(kConnections + 10));

  UniqueFd fd;
  ASSERT_EQ(connect_in(client, kVip, kVipPort, fd), 0);
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  ASSERT_EQ(::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &len), 0);
  EXPECT_EQ(Ipv4::from_be(peer.sin_addr.s_addr).str() + ":" + std::to_string(ntohs(peer.sin_port)),
            kVip.str() + ":80")
      << "the client sees the service as its peer";
}

TEST_P(ServiceTraffic, UdpRepliesComeFromTheVip) {
  const std::string wip = ip_of(w1());
  // Bound to the endpoint's address, as a server that answers from it.
  Child echo({"ip", "netns", "exec", w1(), "socat", "-T5", "UDP-RECVFROM:5353,bind=" + wip + ",fork",
              "SYSTEM:read l; echo $l"});
  ASSERT_TRUE(test::listening(w1(), "-u", 5353));
  ok(*sb_, {"service", "add", "dns", kVip.str() + ":53/udp", "--backend", w1() + ":5353"});
  UniqueFd fd = test::socket_in(Netns::open_named(c()), SOCK_DGRAM);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = kVip.be();
  to.sin_port = htons(53);
  const std::string msg = "hello\n";
  ASSERT_EQ(::sendto(fd.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
            ssize_t(msg.size()));
  ASSERT_TRUE(test::ready(fd.get(), POLLIN, 3000)) << "no UDP reply";
  char buf[64];
  sockaddr_in from{};
  socklen_t len = sizeof from;
  const ssize_t n = ::recvfrom(fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
  EXPECT_EQ(std::string(buf, std::max<ssize_t>(n, 0)), msg);
  EXPECT_EQ(Ipv4::from_be(from.sin_addr.s_addr).str(), kVip.str());
  EXPECT_EQ(ntohs(from.sin_port), 53);
}

TEST_P(ServiceTraffic, DrainKeepsAnOpenConnectionWhileNewOnesAvoidTheBackend) {
  ok(*sb_, {"service", "add", "api", kVip.str() + ":80/tcp", "--backend", w1() + ":8080"});
  const Netns client = Netns::open_named(c());
  test::Connection held = test::connect_tcp("to w1 through the vip", client, kVip, kVipPort,
                                            Netns::open_named(w1()), Ipv4(0), kBackendPort);
  ASSERT_TRUE(held.echo());
  auto s2 = name_server(w2(), "w2");
  ok(*sb_, {"service", "backend", "api", w2() + ":8080"});
  ok(*sb_, {"service", "drain", "api", w1()});
  const json list = cli_json(*sb_, {"service", "list"});
  EXPECT_EQ(list.at(0).at("backends").at(0).at("state"), "draining");
  for (int i = 0; i < 15; ++i) ASSERT_EQ(ask(client, kVip, kVipPort).substr(0, 3), "w2 ") << "connection " << i;
  EXPECT_TRUE(held.echo()) << "the drained backend's connection continues";

  ok(*sb_, {"service", "backend-del", "api", w1() + ":8080"});
  if (connect_time())
    EXPECT_TRUE(held.echo()) << "a socket keeps the backend it connected to (README: Services)";
  else
    EXPECT_FALSE(held.echo()) << "per packet, removing the backend ends its connections";
}

TEST_P(ServiceTraffic, NoActiveBackendRefusesNewConnections) {
  ok(*sb_, {"service", "add", "api", kVip.str() + ":80/tcp"});
  UniqueFd fd;
  // Refused (not a connect that timed out, EAGAIN, or unreachable).
  EXPECT_EQ(connect_in(Netns::open_named(c()), kVip, kVipPort, fd), ECONNREFUSED);
  const json ev = test::one_event(test::monitor_once(*sb_, {}, [&] {
    UniqueFd again;
    connect_in(Netns::open_named(c()), kVip, kVipPort, again);
  }));
  EXPECT_EQ(ev.value("reason", ""), "no-backend") << ev.dump();
  EXPECT_EQ(ev.value("service", ""), "api") << ev.dump();
  EXPECT_EQ(ev.value("endpoint", ""), c()) << ev.dump();
  const json eps = cli_json(*sb_, {"endpoint", "list"});
  const json node = cli_json(*sb_, {"status"});
  uint64_t counted = node.at("node_drops").value("no-backend", 0);
  for (const auto& e : eps)
    if (e.at("name") == c()) counted += e.at("stats").at("drops").value("no-backend", 0);
  EXPECT_GE(counted, 1u) << "the refusal is counted as no-backend";
}

TEST_P(ServiceTraffic, DeletedEndpointLeavesItsServices) {
  ok(*sb_, {"service", "add", "api", kVip.str() + ":80/tcp", "--backend", w1() + ":8080", "--backend",
            w2() + ":8080"});
  auto s2 = name_server(w2(), "w2");
  ok(*sb_, {"endpoint", "del", w1()});
  const json list = cli_json(*sb_, {"service", "list"});
  ASSERT_EQ(list.at(0).at("backends").size(), 1u);
  EXPECT_EQ(list.at(0).at("backends").at(0).at("endpoint"), w2());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(ask(Netns::open_named(c()), kVip, kVipPort).substr(0, 3), "w2 ");
  ok(*sb_, {"service", "del", "api"});
  EXPECT_EQ(cli_json(*sb_, {"service", "list"}), json::array());
  EXPECT_NE(ask(Netns::open_named(c()), kVip, kVipPort).substr(0, 3), "w2 ") << "a deleted service answers no more";
}

struct BadCase {
  std::vector<std::string> args;
  int code;
  std::string says;
};

TEST_F(ServiceNode, BadInputIsRefusedWithNothingChanged) {
  ok(*sb_, {"service", "add", "api", kVip.str() + ":80/tcp", "--node-port", "30080", "--backend", w1() + ":8080"});
  ok(*sb_, {"expose", w2(), "80/tcp", "--port", "8081"});
  const std::string ep_ip = ip_of(c());
  const BadCase cases[] = {
      {{"service", "add", "x", "10.240.0.77:80/tcp"}, 2, "inside the node's pool"},
      {{"service", "add", "x", ep_ip + ":80/tcp"}, 2, "inside the node's pool"},
      {{"service", "add", "x", "10.240.0.1:80/tcp"}, 2, "inside the node's pool"},
      {{"service", "add", "x", kUplink.str() + ":80/tcp"}, 2, "uplink's address"},
      {{"service", "add", "x", "127.0.0.1:80/tcp"}, 2, "not a unicast address"},
      {{"service", "add", "api", "10.96.0.11:80/tcp"}, 4, "already exists"},
      {{"service", "add", "x", kVip.str() + ":80/tcp"}, 4, "is service 'api'"},
      {{"service", "add", "x", "10.96.0.12:0/tcp"}, 2, "not a port"},
      {{"service", "add", "x", "10.96.0.12:70000"}, 2, "not a port"},
      {{"service", "add", "x", "10.96.0.12:80/sctp"}, 2, "not tcp or udp"},
      {{"service", "add", "x", "10.96.0.300:80"}, 2, "not an IPv4 address"},
      {{"service", "add", "x"}, 2, "needs a virtual IP"},
      {{"service", "add", "x", "--node-port", "30080"}, 4, "is service 'api'"},
      {{"service", "add", "x", "--node-port", "8081"}, 4, "is published"},
      {{"service", "add", "x", "--node-port", "62000"}, 2, "masquerade range"},
      {{"service", "add", "x", "10.96.0.12:80", "--backend", "nobody:80"}, 3, "does not exist"},
      {{"service", "add", "x", "10.96.0.12:80", "--backend", w1(), "--backend", w1() + ":80"}, 2, "given twice"},
      {{"service", "add", "x", "--node-port", "30081", "--backend", w1()}, 2, "needs a port"},
      {{"service", "add", "x", "10.96.0.12:80", "--backend", w1() + ":80,weight=0"}, 2, "weight=N"},
      {{"service", "add", "x", "10.96.0.12:80", "--backend", w1() + ":80,weight=101"}, 2, "weight=N"},
      {{"service", "add", "x", "10.96.0.12:80", "--affinity", "100000"}, 2, "above the limit"},
      {{"service", "add", "bad/name", "10.96.0.12:80"}, 2, "service"},
      {{"service", "del", "nothing"}, 3, "does not exist"},
      {{"service", "del", "api", "api"}, 2, "given twice"},
      {{"service", "drain", "api", w2()}, 3, "is not a backend"},
      {{"service", "drain", "nothing", w1()}, 3, "does not exist"},
      {{"service", "backend-del", "api", w1() + ":9"}, 3, "is not a backend"},
      {{"service", "backend", "api", "nobody:80"}, 3, "does not exist"},
      {{"expose", w2(), "80/tcp", "--port", "30080"}, 4, "node port of service 'api'"},
  };
  const json before = cli_json(*sb_, {"service", "list"});
  for (const auto& bad : cases) {
    CmdResult r = sb_->cli(bad.args, 30);
    EXPECT_EQ(r.code, bad.code) << test::joined(bad.args) << ": " << r.err;
    EXPECT_NE(r.err.find(bad.says), std::string::npos) << test::joined(bad.args) << ": " << r.err;
    test::expect_one_line_error(r);
  }
  EXPECT_EQ(cli_json(*sb_, {"service", "list"}), before) << "nothing changed";
}

// The bulk path (Node::service_add_many): all in one transaction, each
// checked like service add, against the node and the ones before it; one
// refusal and none is added. The last one answers on its virtual IP.
TEST_F(ServiceNode, AddManyAddsAllOrNone) {
  auto s1 = name_server(w1(), "w1");
  auto spec = [&](int i) {
    ServiceSpec v;
    v.name = "bulk" + std::to_string(i);
    v.vip = Ipv4::parse("10.96.1." + std::to_string(i + 1));
    v.port = kVipPort;
    v.backends.push_back({w1(), kBackendPort, 1});
    return v;
  };
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < 20; ++i) specs.push_back(spec(i));
  std::vector<ServiceSpec> bad = specs;
  bad.back().vip = bad.front().vip;  // the same address twice
  EXPECT_THROW(sb_->node().service_add_many(bad), Error);
  EXPECT_TRUE(cli_json(*sb_, {"service", "list"}).empty()) << "nothing added";

  sb_->node().service_add_many(specs);
  EXPECT_EQ(cli_json(*sb_, {"service", "list"}).size(), specs.size());
  const std::string cip = ip_of(c());
  EXPECT_EQ(ask(Netns::open_named(c()), *specs.back().vip, kVipPort), "w1 " + cip);
  EXPECT_THROW(sb_->node().service_add_many({spec(3)}), Error) << "bulk3 exists";
  EXPECT_EQ(cli_json(*sb_, {"service", "list"}).size(), specs.size());
}

// A node whose state file is of schema 6 kept its services and endpoints
// there: the next command moves them into the node's database, and they
// keep answering.
TEST_F(ServiceNode, ServicesOfASchema6StateMoveIntoTheTable) {
  auto s1 = name_server(w1(), "w1");
  ok(*sb_, {"service", "add", "api", kVip.str() + ":80/tcp", "--backend", w1() + ":8080"});
  const json listed = cli_json(*sb_, {"service", "list"});
  const std::filesystem::path dir = sb_->env().state_root / sb_->name();
  json st = json::parse(test::read_file(dir / "state.json"));
  ASSERT_EQ(st.at("version"), 9);
  st["version"] = 6;
  st["endpoints"] = test::stored_endpoints_json(dir);
  ASSERT_EQ(st["endpoints"].size(), sb_->node().endpoint_records().size());
  st["services"] = json::array({{{"name", "api"}, {"id", 1}, {"proto", "tcp"}, {"vip", kVip.str()}, {"port", 80},
                                 {"node_port", 0}, {"affinity_s", 0},
                                 {"backends", json::array({{{"id", 1}, {"endpoint", w1()}, {"port", 8080},
                                                            {"weight", 1}, {"draining", false}}})}}});
  st["service_counters"] = {{"next_service", 2}, {"next_backend", 2}};
  for (const char* f : {"services.db", "services.db-wal", "services.db-shm"}) std::filesystem::remove(dir / f);
  std::ofstream(dir / "state.json") << st.dump();

  EXPECT_EQ(cli_json(*sb_, {"service", "list"}), listed);
  EXPECT_TRUE(std::filesystem::exists(dir / "services.db"));
  const json now = json::parse(test::read_file(dir / "state.json"));
  EXPECT_EQ(now.at("version"), 9);
  EXPECT_FALSE(now.contains("services"));
  EXPECT_FALSE(now.contains("endpoints"));
  EXPECT_EQ(test::stored_endpoints_json(dir), st["endpoints"]) << "every endpoint moved, in its order";
  EXPECT_EQ(ask(Netns::open_named(c()), kVip, kVipPort), "w1 " + ip_of(c()));
  // The counters came along: the next service takes id 2, not 1 again.
  ok(*sb_, {"service", "add", "api2", "10.96.0.11:80/tcp", "--backend", w1() + ":8080"});
  ServiceTable table(dir / "services.db", ServiceTable::Mode::read);
  ASSERT_TRUE(table.get("api2"));
  EXPECT_EQ(table.get("api2")->id, 2u);
}

// With 10,000 services on the node, one more is added through the CLI
// while a connection held through the first (to w2) and a stream of new
// ones to the second (to w1) run: none is lost, and the new one answers.
TEST_P(ServiceTraffic, OneMoreAmongTenThousandDisturbsNoConnection) {
  auto s1 = name_server(w1(), "w1");
  std::vector<ServiceSpec> specs;
  for (int i = 0; i < 10000; ++i) {
    ServiceSpec v;
    v.name = "s" + std::to_string(i);
    v.vip = Ipv4(kVip.host() + 256 + i);
    v.port = kVipPort;
    v.backends.push_back({i == 0 ? w2() : w1(), kBackendPort, 1});
    specs.push_back(v);
  }
  sb_->node().service_add_many(specs);
  const Ipv4 first = *specs[0].vip, second = *specs[1].vip;
  const Netns client = Netns::open_named(c());
  test::Connection held = test::connect_tcp("to w2 through s0", client, first, kVipPort, Netns::open_named(w2()),
                                            Ipv4(0), kBackendPort);
  ASSERT_TRUE(held.echo());

  std::atomic<bool> stop{false};
  std::atomic<int> asked{0}, lost{0};
  std::thread traffic([&] {
    const Netns ns = Netns::open_named(c());
    while (!stop) {
      if (ask(ns, second, kVipPort).substr(0, 3) != "w1 ") ++lost;
      ++asked;
    }
  });
  test::CmdResult r = sb_->cli({"service", "add", "one-more", kVip.str() + ":80/tcp", "--backend", w1() + ":8080"});
  // A few connections after the change too.
  const int after = asked + 5;
  test::wait_until([&] { return asked >= after; }, std::chrono::seconds(20));
  stop = true;
  traffic.join();
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lost, 0) << "of " << asked << " connections to s1 during the change";
  EXPECT_GE(asked, after);
  EXPECT_TRUE(held.echo()) << "the held connection lives on";
  EXPECT_EQ(ask(client, kVip, kVipPort).substr(0, 3), "w1 ") << "the new service answers";
}

INSTANTIATE_TEST_SUITE_P(Balancing, ServiceTraffic, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "ConnectTime" : "PerPacket"; });

}  // namespace
}  // namespace ebpfnet
