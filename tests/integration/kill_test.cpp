// SIGKILL at every step of the mutating commands, and at arbitrary moments:
// the CLI kills itself where EBPFNET_FAILPOINT says (nothing of it runs
// after that, as after a runtime's timeout or a power cut of the process),
// or the test kills it after a delay. Then running the command again
// converges, and its inverse leaves the node exactly as it was before.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "ebpfnet/datapath.hpp"
#include "ebpfnet/probe.hpp"
#include "footprint.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using test::CmdResult;
using test::footprint;
using test::Footprint;
using test::SandboxNode;
using test::step_name;
using test::unique;

constexpr int kKilled = 128 + SIGKILL;

// ebpfnet args... on the node, killing itself at failpoint ("STEP" or "STEP#N").
CmdResult killed_at(SandboxNode& sb, const std::string& failpoint, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"env",         "EBPFNET_FAILPOINT=" + failpoint,
                                   test::ebpfnet_bin(), "--state-dir",
                                   sb.env().state_root.string(), "--node", sb.name()};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run(argv);
}

// ebpfnet args... on the node, SIGKILLed after delay (if still running).
// Returns its exit code, or 128 + SIGKILL.
int killed_after(SandboxNode& sb, std::chrono::microseconds delay, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {test::ebpfnet_bin(), "--state-dir", sb.env().state_root.string(), "--node",
                                   sb.name()};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  std::this_thread::sleep_for(delay);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

void cli_ok(SandboxNode& sb, const std::vector<std::string>& args) {
  CmdResult r = sb.cli(args);
  ASSERT_EQ(r.code, 0) << test::joined(args) << ": " << r.err;
}

// The endpoint forwards: it pings another endpoint of the node.
void expect_forwards(const std::string& from, Ipv4 to) {
  ProbeResult p = probe_icmp(Netns::open_named(from), to);
  EXPECT_TRUE(p.ok) << from << " -> " << to.str() << ": " << p.error;
}

// A node with one endpoint that every test keeps, and its footprint.
class Killed : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();
    sb_.emplace("10.248.0.0/24", true, uplink_);
    keep_ = sb_->node().add_endpoint({unique("kk"), std::nullopt, std::nullopt, "eth0"});
    before_ = footprint(*sb_);
  }

  // Three endpoints added, their del killed at step and run again: gone,
  // nothing left behind, and the names can be added again.
  void del_three_killed_at(const std::string& step, const std::string& prefix) {
    const std::vector<std::string> names = {unique(prefix), unique(prefix), unique(prefix)};
    std::vector<std::string> add = {"endpoint", "add"}, del = {"endpoint", "del"};
    add.insert(add.end(), names.begin(), names.end());
    del.insert(del.end(), names.begin(), names.end());
    cli_ok(*sb_, add);
    CmdResult k = killed_at(*sb_, step, del);
    ASSERT_EQ(k.code, kKilled) << k.err;
    cli_ok(*sb_, del);
    for (const auto& n : names) EXPECT_FALSE(netns::exists(n));
    EXPECT_EQ(footprint(*sb_), before_);
    cli_ok(*sb_, add);
    for (const auto& n : names) expect_forwards(n, keep_.ip);
  }

  bool uplink_ = false;
  std::optional<SandboxNode> sb_;
  EndpointRecord keep_;
  Footprint before_;
};

// ---- endpoint add

// "database": the state file is saved, the endpoint table not yet.
const std::vector<std::string> kAddPoints = {"journal", "netns",  "veth",  "endpoint-config", "node-config",
                                             "maps",    "attach", "state", "database",        "journal-end"};

class KilledAdd : public Killed {};

TEST_P(KilledAdd, RunAgainFinishesIt) {
  const std::string name = unique("ka");
  CmdResult k = killed_at(*sb_, GetParam(), {"endpoint", "add", name});
  ASSERT_EQ(k.code, kKilled) << "not killed at " << GetParam() << ": " << k.err;
  CmdResult again = sb_->cli({"endpoint", "add", name});
  // Killed after its state was saved, it is done: adding it again is refused as for any endpoint.
  EXPECT_EQ(again.code, GetParam() == "journal-end" ? 4 : 0) << again.err;
  expect_forwards(name, keep_.ip);
  // Its address: the next after keep_'s, or the one after that when the
  // killed add's state was saved (the pool moved on, as after any delete).
  const bool moved_on = GetParam() == "database";
  expect_forwards(keep_.name, Ipv4(keep_.ip.host() + (moved_on ? 2 : 1)));
  EXPECT_EQ(sb_->node().endpoints().size(), 2u);
  cli_ok(*sb_, {"endpoint", "del", name});
  EXPECT_FALSE(netns::exists(name));
  EXPECT_EQ(footprint(*sb_), before_);
}

TEST_P(KilledAdd, DelRemovesWhatItMade) {
  const std::string name = unique("ka");
  CmdResult k = killed_at(*sb_, GetParam(), {"endpoint", "add", name});
  ASSERT_EQ(k.code, kKilled) << k.err;
  CmdResult del = sb_->cli({"endpoint", "del", name});
  // Killed before its journal, it made nothing: there is nothing to delete.
  EXPECT_EQ(del.code, GetParam() == "journal" ? 3 : 0) << del.err;
  EXPECT_FALSE(netns::exists(name));
  EXPECT_EQ(footprint(*sb_), before_);
  // The address is free again (handed out next unless the add's state was
  // saved: then the pool moves on, as after any delete) and the node adds endpoints.
  EndpointRecord next = sb_->node().add_endpoint({unique("kn"), std::nullopt, std::nullopt, "eth0"});
  const bool moved_on = GetParam() == "journal-end" || GetParam() == "database";
  EXPECT_EQ(next.ip.str(), Ipv4(keep_.ip.host() + (moved_on ? 2 : 1)).str());
  expect_forwards(next.name, keep_.ip);
}

TEST_P(KilledAdd, NodeDeleteRemovesEverything) {
  const std::string name = unique("ka");
  CmdResult k = killed_at(*sb_, GetParam(), {"endpoint", "add", name});
  ASSERT_EQ(k.code, kKilled) << k.err;
  cli_ok(*sb_, {"node", "delete", sb_->name()});
  EXPECT_FALSE(netns::exists(name));
  EXPECT_FALSE(netns::exists(keep_.name));
  EXPECT_FALSE(netns::exists(sb_->name()));
}

INSTANTIATE_TEST_SUITE_P(Points, KilledAdd, testing::ValuesIn(kAddPoints), step_name);

// Several endpoints in one add: killed while wiring the second or third.
class KilledAddSeveral : public Killed {};

TEST_P(KilledAddSeveral, RunAgainAndDel) {
  const std::vector<std::string> names = {unique("ks"), unique("ks"), unique("ks")};
  std::vector<std::string> args = {"endpoint", "add"};
  args.insert(args.end(), names.begin(), names.end());
  CmdResult k = killed_at(*sb_, GetParam(), args);
  ASSERT_EQ(k.code, kKilled) << k.err;
  CmdResult again = sb_->cli(args);
  ASSERT_EQ(again.code, 0) << again.err;
  for (const auto& n : names) expect_forwards(n, keep_.ip);
  for (const auto& n : names) cli_ok(*sb_, {"endpoint", "del", n});
  for (const auto& n : names) EXPECT_FALSE(netns::exists(n));
  EXPECT_EQ(footprint(*sb_), before_);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledAddSeveral,
                         testing::Values("netns#2", "veth#3", "node-config#2", "maps#3", "attach#2", "state",
                                         "database"),
                         step_name);

// ---- endpoint del

class KilledDel : public Killed {};

TEST_P(KilledDel, RunAgainFinishesIt) {
  const std::string name = unique("kd");
  cli_ok(*sb_, {"endpoint", "add", name});
  CmdResult k = killed_at(*sb_, GetParam(), {"endpoint", "del", name});
  ASSERT_EQ(k.code, kKilled) << k.err;
  cli_ok(*sb_, {"endpoint", "del", name});
  EXPECT_FALSE(netns::exists(name));
  EXPECT_EQ(footprint(*sb_), before_);
  // Any command finishes it too; the name can be added again.
  cli_ok(*sb_, {"endpoint", "add", name});
  expect_forwards(name, keep_.ip);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledDel,
                         testing::Values("journal", "detach", "unmap", "unlink", "netns-del", "state", "database",
                                         "journal-end"),
                         step_name);

// Several endpoints in one del: killed between the steps of the second or third.
class KilledDelSeveral : public Killed {};

TEST_P(KilledDelSeveral, RunAgainFinishesIt) { del_three_killed_at(GetParam(), "kx"); }

INSTANTIATE_TEST_SUITE_P(Points, KilledDelSeveral,
                         testing::Values("detach#2", "unmap#3", "unlink#2", "netns-del#2", "netns-del#3", "state",
                                         "database"),
                         step_name);

// Several endpoints of a node attached with TCX in one del: their links go
// with their veths and their pins after ("unpin"), so a del killed before
// that leaves pins the next command removes.
class KilledDelTcx : public Killed {
 protected:
  void SetUp() override {
    Killed::SetUp();
    if (IsSkipped()) return;
    cli_ok(*sb_, {"attach", "--tc-mode", "tcx"});
    before_ = footprint(*sb_);
    ASSERT_EQ(before_.pins.size(), 1u) << "the kept endpoint's TCX link is pinned";
  }
};

TEST_P(KilledDelTcx, RunAgainFinishesIt) { del_three_killed_at(GetParam(), "kt"); }

INSTANTIATE_TEST_SUITE_P(Points, KilledDelTcx, testing::Values("detach#2", "netns-del#3", "unpin", "state"),
                         step_name);

// ---- expose

class KilledExpose : public Killed {
 protected:
  KilledExpose() { uplink_ = true; }
};

TEST_P(KilledExpose, RunAgainThenUnexpose) {
  const std::vector<std::string> expose = {"expose", keep_.name, "8080/tcp", "--port", "18080"};
  CmdResult k = killed_at(*sb_, GetParam(), expose);
  ASSERT_EQ(k.code, kKilled) << k.err;
  CmdResult again = sb_->cli(expose);
  EXPECT_EQ(again.code, GetParam() == "journal-end" ? 4 : 0) << again.err;
  Footprint published = footprint(*sb_);
  EXPECT_EQ(published.entries["published"], 1u);
  EXPECT_EQ(published.published.size(), 1u);
  cli_ok(*sb_, {"unexpose", keep_.name, "8080/tcp"});
  EXPECT_EQ(footprint(*sb_), before_);
}

TEST_P(KilledExpose, UnexposeLeavesNothing) {
  CmdResult k = killed_at(*sb_, GetParam(), {"expose", keep_.name, "8080/tcp"});
  ASSERT_EQ(k.code, kKilled) << k.err;
  // Published only when killed after its state was saved.
  CmdResult un = sb_->cli({"unexpose", keep_.name, "8080/tcp"});
  EXPECT_EQ(un.code, GetParam() == "journal-end" ? 0 : 3) << un.err;
  EXPECT_EQ(footprint(*sb_), before_);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledExpose, testing::Values("journal", "publish", "state", "journal-end"),
                         step_name);

class KilledUnexpose : public Killed {
 protected:
  KilledUnexpose() { uplink_ = true; }
};

TEST_P(KilledUnexpose, RunAgainFinishesIt) {
  cli_ok(*sb_, {"expose", keep_.name, "8080/tcp"});
  CmdResult k = killed_at(*sb_, GetParam(), {"unexpose", keep_.name, "8080/tcp"});
  ASSERT_EQ(k.code, kKilled) << k.err;
  CmdResult again = sb_->cli({"unexpose", keep_.name, "8080/tcp"});
  EXPECT_EQ(again.code, GetParam() == "journal-end" ? 3 : 0) << again.err;
  EXPECT_EQ(footprint(*sb_), before_);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledUnexpose, testing::Values("journal", "unpublish", "state", "journal-end"),
                         step_name);

// ---- policy set

// Every rule-set entry in the maps belongs to a policy the node holds.
void expect_policy_entries_match(SandboxNode& sb) {
  CmdResult show = sb.cli({"-o", "json", "policy", "show"});
  ASSERT_EQ(show.code, 0) << show.err;
  auto j = nlohmann::json::parse(show.out);
  size_t cidr = 0, port = 0, policed = 0;
  for (const auto& p : j) {
    cidr += p["cidr_entries"].get<size_t>();
    port += p["port_entries"].get<size_t>();
    ++policed;
  }
  Footprint f = footprint(sb);
  EXPECT_EQ(f.entries["policy_cidr"], cidr) << show.out;
  EXPECT_EQ(f.entries["policy_port"], port) << show.out;
  EXPECT_EQ(f.entries["ep_policy"], policed) << show.out;
}

class KilledPolicySet : public Killed {};

TEST_P(KilledPolicySet, RunAgainThenDel) {
  // An old policy, so the kill can also land while its rule sets are erased.
  cli_ok(*sb_, {"policy", "set", keep_.name, "--ingress-default", "deny", "--ingress", "allow tcp 80",
                "--ingress", "allow udp 53 from 10.0.0.0/8"});
  const std::vector<std::string> set = {"policy", "set", keep_.name, "--ingress-default", "deny",
                                        "--ingress", "allow tcp 443 from 10.1.0.0/16", "--ingress",
                                        "deny tcp 22", "--egress", "deny udp 1000-2000"};
  CmdResult k = killed_at(*sb_, GetParam(), set);
  ASSERT_EQ(k.code, kKilled) << k.err;
  expect_policy_entries_match(*sb_);
  cli_ok(*sb_, set);
  expect_policy_entries_match(*sb_);
  cli_ok(*sb_, {"policy", "del", keep_.name});
  EXPECT_EQ(footprint(*sb_), before_);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledPolicySet,
                         testing::Values("journal", "rule-sets", "switch", "state", "database", "old-rule-sets",
                                         "journal-end"),
                         step_name);

// ---- node delete

class KilledNodeDelete : public Killed {
 protected:
  KilledNodeDelete() { uplink_ = true; }
};

TEST_P(KilledNodeDelete, RunAgainFinishesIt) {
  const std::string second = unique("kd");
  cli_ok(*sb_, {"endpoint", "add", second});
  const std::string outside = sb_->outside();
  const auto pins = sb_->node().pin_dir();
  CmdResult k = killed_at(*sb_, GetParam(), {"node", "delete", sb_->name()});
  ASSERT_EQ(k.code, kKilled) << k.err;
  cli_ok(*sb_, {"node", "delete", sb_->name()});
  for (const auto& ns : {sb_->name(), outside, keep_.name, second}) EXPECT_FALSE(netns::exists(ns)) << ns;
  EXPECT_FALSE(std::filesystem::exists(pins));
  EXPECT_FALSE(std::filesystem::exists(sb_->env().state_root / sb_->name()));
}

INSTANTIATE_TEST_SUITE_P(Points, KilledNodeDelete,
                         testing::Values("detach", "unlink#2", "node-netns", "outside", "state-removal"), step_name);

// ---- killed at arbitrary moments, not only between steps

// A node of schema 7 held its endpoints in its state file; the first
// command moves them into the endpoint table. Killed after the table has
// them and before the state without them is saved, the next command moves
// them again: nothing lost, nothing twice.
class KilledLegacyMove : public Killed {};

TEST_P(KilledLegacyMove, NextCommandFinishesTheMove) {
  const std::string other = unique("kl");
  cli_ok(*sb_, {"endpoint", "add", other});
  const auto dir = sb_->env().state_root / sb_->name();
  const auto state_file = dir / "state.json";
  nlohmann::json st = nlohmann::json::parse(test::read_file(state_file));
  st["version"] = 7;
  st["endpoints"] = test::stored_endpoints_json(dir);
  const nlohmann::json endpoints = st["endpoints"];
  ASSERT_EQ(endpoints.size(), 2u);
  std::ofstream(state_file) << st.dump();

  CmdResult k = killed_at(*sb_, GetParam(), {"endpoint", "list"});
  ASSERT_EQ(k.code, kKilled) << k.err;
  CmdResult list = sb_->cli({"-o", "json", "endpoint", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 2u) << list.out;
  EXPECT_EQ(test::stored_endpoints_json(dir), endpoints);
  const nlohmann::json now = nlohmann::json::parse(test::read_file(state_file));
  EXPECT_EQ(now.at("version"), 9);
  EXPECT_FALSE(now.contains("endpoints"));
  expect_forwards(other, keep_.ip);
  cli_ok(*sb_, {"endpoint", "del", other});
  EXPECT_EQ(footprint(*sb_), before_);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledLegacyMove, testing::Values("legacy-moved"), step_name);

TEST(KilledAnywhere, EndpointAddAtEveryMillisecond) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.248.1.0/24");
  EndpointRecord keep = sb.node().add_endpoint({unique("kk"), std::nullopt, std::nullopt, "eth0"});
  const Footprint before = footprint(sb);
  int killed = 0;
  for (int ms = 1; ms <= 40; ms += 3) {
    SCOPED_TRACE("killed after " + std::to_string(ms) + " ms");
    const std::vector<std::string> names = {unique("kt"), unique("kt")};
    killed += killed_after(sb, std::chrono::milliseconds(ms), {"endpoint", "add", names[0], names[1]}) == kKilled;
    // Whatever it left, adding the same endpoints again works (or they exist).
    CmdResult again = sb.cli({"endpoint", "add", names[0], names[1]});
    EXPECT_TRUE(again.code == 0 || again.code == 4) << again.err;
    for (const auto& n : names) expect_forwards(n, keep.ip);
    for (const auto& n : names) cli_ok(sb, {"endpoint", "del", n});
    for (const auto& n : names) EXPECT_FALSE(netns::exists(n));
    EXPECT_EQ(footprint(sb), before);
  }
  EXPECT_GT(killed, 5) << "too few runs were killed midway to test anything";
}

TEST(KilledAnywhere, EndpointDelAtEveryMillisecond) {
  EBPFNET_REQUIRE_ROOT();
  SandboxNode sb("10.248.2.0/24");
  EndpointRecord keep = sb.node().add_endpoint({unique("kk"), std::nullopt, std::nullopt, "eth0"});
  const Footprint before = footprint(sb);
  for (int ms = 1; ms <= 25; ms += 3) {
    SCOPED_TRACE("killed after " + std::to_string(ms) + " ms");
    const std::string name = unique("kt");
    cli_ok(sb, {"endpoint", "add", name});
    killed_after(sb, std::chrono::milliseconds(ms), {"endpoint", "del", name});
    CmdResult again = sb.cli({"endpoint", "del", name});
    EXPECT_TRUE(again.code == 0 || again.code == 3) << again.err;
    EXPECT_FALSE(netns::exists(name));
    EXPECT_EQ(footprint(sb), before);
  }
}

}  // namespace
}  // namespace ebpfnet
