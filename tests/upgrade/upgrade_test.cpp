// Upgrading a running node in place: from the previous release's datapath
// (ABI 1, built from git history) to this one, a conntrack resize, a failure
// at every step of a reload, a downgrade and a dry run. Established TCP
// connections (endpoint to endpoint, masqueraded to the outside, from the
// outside through a published port) must keep working across each, a UDP
// stream is measured for loss and its longest gap, and new connections are
// made all along.
#include <gtest/gtest.h>
#include <bpf/bpf.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "ebpfnet/error.hpp"
#include "ebpfnet/fd.hpp"
#include "ebpfnet/netns.hpp"
#include "ebpfnet/probe.hpp"
#include "connection.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::CmdResult;
using test::Connection;
using test::connect_tcp;
using test::ready;
using test::socket_in;
using test::run;
using test::TempStateDir;
using test::unique;
using Clock = std::chrono::steady_clock;

const Ipv4 kUplink = *Ipv4::parse(kSandboxUplinkIp);
const Ipv4 kServer = *Ipv4::parse(kSandboxServerIp);
constexpr uint16_t kEpPort = 7301, kOutPort = 7302, kUdpPort = 7303, kNewPort = 7304;
constexpr uint16_t kWebPort = 80, kPublished = 18080;

// Traffic that runs while a node is upgraded: a datagram every millisecond
// from an endpoint, masqueraded to the outside (loss and the longest gap
// between arrivals are measured), and new TCP connections to the outside.
class Traffic {
 public:
  Traffic(const Netns& ep, const Netns& outside)
      : ep_(&ep), outside_(&outside), tx_(socket_in(ep, SOCK_DGRAM)), rx_(socket_in(outside, SOCK_DGRAM)) {
    sockaddr_in a = socket_address(kServer, kUdpPort);
    if (::bind(rx_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    sender_ = std::thread([this] {
      sockaddr_in d = socket_address(kServer, kUdpPort);
      // Bounded: 60 s at 1 ms, far more than an upgrade takes.
      for (unsigned i = 0; !stop_ && i < 60000; ++i) {
        ::sendto(tx_.get(), &i, sizeof i, 0, reinterpret_cast<sockaddr*>(&d), sizeof d);
        ++sent_;
        std::this_thread::sleep_for(1ms);
      }
    });
    receiver_ = std::thread([this] {
      auto last = Clock::now();
      unsigned seq;
      while (!stop_ || ready(rx_.get(), POLLIN, 0)) {
        if (!ready(rx_.get(), POLLIN, 50)) continue;
        if (::recv(rx_.get(), &seq, sizeof seq, 0) != sizeof seq) continue;
        auto now = Clock::now();
        if (received_++) max_gap_ = std::max(max_gap_, now - last);
        last = now;
      }
    });
    connector_ = std::thread([this] {
      for (unsigned i = 0; !stop_ && i < 10000; ++i) {
        ProbeResult r = probe_tcp_via(*ep_, kServer, kNewPort, *outside_, kServer, kNewPort, ProbeTimeout(3000));
        (r.ok ? new_ok_ : new_failed_)++;
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  ~Traffic() { stop(); }

  void stop() {
    if (stop_.exchange(true)) return;
    sender_.join();
    connector_.join();
    std::this_thread::sleep_for(100ms);  // the last datagrams in flight
    receiver_.join();
  }
  std::string summary() const {
    return std::to_string(sent_) + " datagrams sent, " + std::to_string(received_) + " received, longest gap " +
           std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(max_gap_).count() / 1000.0) +
           " ms; " + std::to_string(new_ok_) + " new connections, " + std::to_string(new_failed_) + " failed";
  }
  unsigned sent() const { return sent_; }
  unsigned received() const { return received_; }
  unsigned new_ok() const { return new_ok_; }
  unsigned new_failed() const { return new_failed_; }

 private:
  const Netns *ep_, *outside_;  // the caller's, outliving this
  UniqueFd tx_, rx_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> sent_{0}, received_{0}, new_ok_{0}, new_failed_{0};
  Clock::duration max_gap_{};
  std::thread sender_, receiver_, connector_;
};

// A sandbox node made and driven by a given ebpfnet binary (the previous
// release's or this one's): two endpoints, an uplink into an outside
// namespace, a published port, and connections through all of it.
class UpgradeNode {
 public:
  explicit UpgradeNode(const std::string& bin) : name_(unique("up")), bin_(bin) {
    cidr_ = "10.207." + std::to_string(::getpid() % 200 + 20) + ".0/24";
    ok({"node", "create", name_, "--cidr", cidr_, "--uplink-sandbox"}, false);
    ok({"attach"});
    ok({"endpoint", "add", a(), b()});
    ok({"expose", b(), std::to_string(kWebPort) + "/tcp", "--port", std::to_string(kPublished)});
  }
  ~UpgradeNode() {
    conns.clear();
    run({test::ebpfnet_bin(), "--state-dir", state_.path(), "node", "delete", name_});
  }

  std::string a() const { return name_ + "-a"; }
  std::string b() const { return name_ + "-b"; }
  std::string outside() const { return name_ + "-out"; }
  // Asked of this build, which reads the state of either release.
  Ipv4 ip_of(const std::string& ep) {
    json list = json::parse(cli({"-o", "json", "endpoint", "list"}, true, test::ebpfnet_bin()).out);
    for (const auto& e : list)
      if (e.at("name") == ep) return *Ipv4::parse(e.at("ip").get<std::string>());
    throw std::runtime_error("no endpoint " + ep);
  }

  // The three long-lived connections.
  void open_connections() {
    const Netns na = Netns::open_named(a()), nb = Netns::open_named(b()), out = Netns::open_named(outside());
    const Ipv4 ib = ip_of(b());
    conns.push_back(connect_tcp("endpoint to endpoint", na, ib, kEpPort, nb, ib, kEpPort));
    conns.push_back(connect_tcp("masqueraded to the outside", na, kServer, kOutPort, out, kServer, kOutPort));
    conns.push_back(connect_tcp("outside to a published port", out, kUplink, kPublished, nb, ib, kWebPort));
    for (auto& c : conns) ASSERT_TRUE(c.echo()) << c.what << " does not work before the upgrade";
  }
  void expect_connections_work(const std::string& when) {
    for (auto& c : conns) EXPECT_TRUE(c.echo()) << c.what << " broke " << when;
  }

  CmdResult cli(const std::vector<std::string>& args, bool with_node = true, const std::string& bin = "") {
    std::vector<std::string> argv = {bin.empty() ? bin_ : bin, "--state-dir", state_.path()};
    if (with_node) argv.insert(argv.end(), {"--node", name_});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, "", 120);
  }
  CmdResult ok(const std::vector<std::string>& args, bool with_node = true) {
    CmdResult r = cli(args, with_node);
    if (r.code != 0) throw std::runtime_error(test::joined(args) + ": exit " + std::to_string(r.code) + ": " + r.err);
    return r;
  }
  json status() { return json::parse(cli({"-o", "json", "status"}, true, test::ebpfnet_bin()).out); }
  Node node() {
    Env env;
    env.state_root = state_.path();
    return Node(env, name_);
  }
  const std::string& name() const { return name_; }

  std::vector<Connection> conns;

 private:
  TempStateDir state_;
  std::string name_, cidr_, bin_;
};

uint32_t ct_max_entries(json& status) {
  for (const auto& m : status.at("maps"))
    if (m.at("name") == "ct") return m.at("max_entries");
  return 0;
}

const json* map_change(const json& attach, const std::string& name) {
  for (const auto& m : attach.at("maps"))
    if (m.at("name") == name) return &m;
  return nullptr;
}

TEST(Upgrade, FromThePreviousReleaseUnderTraffic) {
  EBPFNET_REQUIRE_ROOT();
  UpgradeNode n(EBPFNET_PREV_BIN);
  n.open_connections();
  json before = n.status();
  EXPECT_EQ(before.at("datapath").at("abi"), 1);
  EXPECT_FALSE(before.at("datapath").at("current"));
  for (const auto& a : before.at("attachments")) EXPECT_TRUE(a.at("stale")) << a.dump();
  const Netns na = Netns::open_named(n.a()), out = Netns::open_named(n.outside());

  Traffic traffic(na, out);
  std::this_thread::sleep_for(300ms);
  const auto t0 = Clock::now();
  CmdResult up = n.cli({"-o", "json", "attach"}, true, test::ebpfnet_bin());
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::this_thread::sleep_for(300ms);
  traffic.stop();
  ASSERT_EQ(up.code, 0) << up.err;
  std::cout << "upgrade ABI 1 -> " << EBPFNET_ABI_VERSION << " under traffic: attach " << ms << " ms; " << traffic.summary() << "\n"
            << up.out << "\n";

  json r = json::parse(up.out);
  EXPECT_TRUE(r.at("loaded"));
  EXPECT_EQ(r.at("from_abi"), 1);
  EXPECT_EQ(r.at("to_abi"), EBPFNET_ABI_VERSION);
  const json* config = map_change(r, "config");
  ASSERT_NE(config, nullptr) << "the config map's layout changed and must be migrated";
  EXPECT_EQ(config->at("how"), "rebuilt from state");
  EXPECT_EQ(map_change(r, "ct"), nullptr) << "conntrack kept its layout and must be reused as it is";
  for (const auto& p : r.at("programs")) EXPECT_NE(p.at("from_tag"), p.at("to_tag")) << p.dump();

  n.expect_connections_work("by the upgrade from the previous release");
  EXPECT_EQ(traffic.new_failed(), 0u) << traffic.summary();
  EXPECT_GT(traffic.new_ok(), 0u);
  EXPECT_GE(traffic.received() + 5, traffic.sent()) << traffic.summary();

  json after = n.status();
  EXPECT_EQ(after.at("datapath").at("abi"), EBPFNET_ABI_VERSION);
  // Maps newer than ABI 1 are made and filled from the (migrated) state.
  for (const char* m : {"prefilter_addr", "prefilter_cidr", "prefilter_stats", "tunnel", "ep_by_ip6", "ep_ip6"}) {
    const json* c = map_change(r, m);
    ASSERT_NE(c, nullptr) << m;
    EXPECT_EQ(c->at("how"), "created") << m;
  }
  EXPECT_TRUE(after.at("datapath").at("current"));
  EXPECT_EQ(after.at("attachments").size(), 3u);
  for (const auto& a : after.at("attachments")) EXPECT_FALSE(a.at("stale")) << a.dump();
  // State written by the old release still serves: the published port and a new endpoint.
  CmdResult add = n.cli({"endpoint", "add", n.name() + "-c"}, true, test::ebpfnet_bin());
  EXPECT_EQ(add.code, 0) << add.err;
  ProbeResult p = probe_tcp(Netns::open_named(n.name() + "-c"), Netns::open_named(n.b()), n.ip_of(n.b()), 7399);
  EXPECT_TRUE(p.ok) << p.error;
  // The previous release refuses the state this build wrote, rather than guessing.
  CmdResult old = n.cli({"endpoint", "list"});
  EXPECT_NE(old.code, 0);
  EXPECT_NE(old.err.find("version"), std::string::npos) << old.err;
  // A second attach has nothing left to do.
  CmdResult again = n.cli({"-o", "json", "attach"}, true, test::ebpfnet_bin());
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_FALSE(json::parse(again.out).at("loaded"));
}

TEST(Upgrade, ConntrackResizeMigratesTheFlows) {
  EBPFNET_REQUIRE_ROOT();
  UpgradeNode n(test::ebpfnet_bin());
  n.open_connections();
  const Netns na = Netns::open_named(n.a()), out = Netns::open_named(n.outside());
  json before = n.status();
  EXPECT_TRUE(before.at("datapath").at("current"));

  Traffic traffic(na, out);
  std::this_thread::sleep_for(300ms);
  CmdResult up = n.cli({"-o", "json", "attach", "--ct-size", "524288"});
  std::this_thread::sleep_for(300ms);
  traffic.stop();
  ASSERT_EQ(up.code, 0) << up.err;
  std::cout << "conntrack 262144 -> 524288 under traffic: " << traffic.summary() << "\n" << up.out << "\n";
  json r = json::parse(up.out);
  const json* ct = map_change(r, "ct");
  ASSERT_NE(ct, nullptr);
  EXPECT_EQ(ct->at("how"), "copied");
  EXPECT_GE(ct->at("entries").get<size_t>(), 6u) << "two entries per established connection";
  EXPECT_EQ(map_change(r, "ep_by_ip"), nullptr) << "maps whose layout is the same are reused";

  n.expect_connections_work("by the conntrack resize");
  EXPECT_EQ(traffic.new_failed(), 0u) << traffic.summary();
  EXPECT_GE(traffic.received() + 5, traffic.sent()) << traffic.summary();
  json after = n.status();
  EXPECT_EQ(ct_max_entries(after), 524288u);
  for (const auto& a : after.at("attachments")) EXPECT_FALSE(a.at("stale")) << a.dump();
  // The size is the node's from now on.
  CmdResult again = n.cli({"-o", "json", "attach"});
  EXPECT_FALSE(json::parse(again.out).at("loaded")) << again.out;
}

// A reload that fails at any step leaves the old datapath pinned, attached
// and forwarding.
class FailedReload : public ::testing::TestWithParam<const char*> {};

TEST_P(FailedReload, LeavesTheOldDatapathForwarding) {
  EBPFNET_REQUIRE_ROOT();
  UpgradeNode n(test::ebpfnet_bin());
  n.open_connections();
  json before = n.status();
  const std::string step = GetParam();
  AttachOptions opts;
  opts.ct_size = 131072;
  const Checkpoint fail_at = [&](std::string_view s) {
    if (s == step) throw Error(Errc::failed, "injected failure at " + step);
  };
  Node node = n.node();
  EXPECT_THROW(node.attach(opts, fail_at), Error);
  n.expect_connections_work("by a reload that failed at " + step);
  json after = n.status();
  EXPECT_EQ(after.at("programs"), before.at("programs")) << "the old programs stay pinned";
  EXPECT_EQ(after.at("attachments"), before.at("attachments")) << "every attachment runs the old program";
  EXPECT_EQ(ct_max_entries(after), ct_max_entries(before));
  ProbeResult p = probe_tcp(Netns::open_named(n.a()), Netns::open_named(n.b()), n.ip_of(n.b()), 7398);
  EXPECT_TRUE(p.ok) << p.error;
}

// `metrics` of this build on a node the previous release pinned (ABI 1:
// other layouts, fewer maps): no crash, the info metric and the layout-free
// series, no counters read with layouts they do not have.
TEST(Upgrade, MetricsOfAPreviousReleaseNodeExportWhatIsSafe) {
  EBPFNET_REQUIRE_ROOT();
  UpgradeNode n(EBPFNET_PREV_BIN);
  TempStateDir out;
  const std::string file = (out.path() / "ebpfnet.prom").string();
  CmdResult r = n.cli({"metrics", "--textfile", file, "--per-endpoint"}, true, test::ebpfnet_bin());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = test::read_file(file);
  CmdResult check = run({"promtool", "check", "metrics"}, text, 30);
  EXPECT_EQ(check.code, 0) << "promtool (Debian package prometheus): " << check.out << check.err << "\n" << text;
  const std::string node = "node=\"" + n.name() + "\"";
  EXPECT_NE(text.find("ebpfnet_datapath_info{" + node + ",abi=\"1\",build=\"\",binary_abi=\"" +
                      std::to_string(EBPFNET_ABI_VERSION) + "\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ebpfnet_datapath_counters_readable{" + node + "} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_program_info{" + node + ",program=\"from_endpoint\",tag=\""), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_endpoints{" + node + "} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_published_ports{" + node + "} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("ebpfnet_map_entries{" + node + ",map=\"ep_by_ip\"} 2"), std::string::npos) << text;
  for (const char* absent : {"ebpfnet_forwarded_", "ebpfnet_dropped_", "ebpfnet_conntrack_live", "ebpfnet_endpoint_"})
    EXPECT_EQ(text.find(absent), std::string::npos) << absent << "\n" << text;
}

INSTANTIATE_TEST_SUITE_P(Upgrade, FailedReload, ::testing::Values("load", "migrate", "switch", "pin", "state"));

TEST(Upgrade, DowngradeIsRefusedAndDryRunChangesNothing) {
  EBPFNET_REQUIRE_ROOT();
  UpgradeNode n(test::ebpfnet_bin());
  json before = n.status();

  CmdResult dry = n.cli({"attach", "--dry-run", "--ct-size", "524288"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("would"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("map ct"), std::string::npos) << dry.out;
  json after_dry = n.status();
  EXPECT_EQ(after_dry.at("programs"), before.at("programs"));
  EXPECT_EQ(ct_max_entries(after_dry), ct_max_entries(before));

  // A datapath pinned by a newer ebpfnet (a higher ABI version in its config).
  {
    UniqueFd config(bpf_obj_get((n.node().pin_dir() / "maps" / "config").c_str()));
    ASSERT_TRUE(config.valid());
    __u32 key = EBPFNET_CFG_ABI_VERSION;
    uint64_t newer = EBPFNET_ABI_VERSION + 1;
    ASSERT_EQ(bpf_map_update_elem(config.get(), &key, &newer, BPF_ANY), 0);
  }
  for (auto args : {std::vector<std::string>{"attach"}, {"endpoint", "add", n.name() + "-z"}}) {
    CmdResult r = n.cli(args);
    EXPECT_EQ(r.code, static_cast<int>(Errc::rejected)) << test::joined(args) << ": " << r.err;
    EXPECT_NE(r.err.find("newer"), std::string::npos) << r.err;
    test::expect_one_line_error(r);
  }
  json after = n.status();
  EXPECT_EQ(after.at("programs"), before.at("programs"));
  EXPECT_EQ(after.at("endpoints").size(), 2u);
}

}  // namespace
}  // namespace ebpfnet
