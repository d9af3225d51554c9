// The plugin killed (SIGKILL, as a runtime does on its timeout) at every
// step of ADD and DEL: the retried ADD succeeds, and DEL, with or without
// the container's namespace, leaves nothing in the node or the container.
#include <gtest/gtest.h>
#include <signal.h>

#include "cni_harness.hpp"

namespace ebpfnet::test {
namespace {

constexpr int kKilled = 128 + SIGKILL;

struct Scene {
  SandboxNode sb{"10.249.0.0/24", true, true};
  CniNet net{sb};
  Container c;

  CniReply killed_at(const std::string& verb, const std::string& point, const Attachment& a) {
    json conf = net.conf();
    conf["runtimeConfig"]["portMappings"] = json::array({{{"hostPort", 18080}, {"containerPort", 80}}});
    return net.call(verb, a, conf, {"EBPFNET_FAILPOINT=" + point});
  }
  CniReply add() {
    json conf = net.conf();
    conf["runtimeConfig"]["portMappings"] = json::array({{{"hostPort", 18080}, {"containerPort", 80}}});
    return net.call("ADD", c.attachment(), conf);
  }
  void expect_nothing_left() {
    expect_node_empty(sb);
    EXPECT_TRUE(sb.node().published().empty());
    EXPECT_TRUE(links_besides_lo(c.netns()).empty()) << "an interface is left in the container";
  }
};

// Steps of ADD: the endpoint's (journal .. journal-end), then its port's.
const std::vector<std::string> kAddPoints = {"journal",     "netns", "veth",   "endpoint-config",
                                             "node-config", "maps",  "attach", "state",
                                             "journal-end", "publish", "journal#2", "journal-end#2"};

class KilledCniAdd : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { EBPFNET_REQUIRE_ROOT(); }
};

TEST_P(KilledCniAdd, RetriedAddSucceeds) {
  Scene s;
  CniReply k = s.killed_at("ADD", GetParam(), s.c.attachment());
  ASSERT_EQ(k.code, kKilled) << "not killed at " << GetParam() << ": " << k.out << k.err;
  CniReply again = s.add();
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  expect_spec_result(again.result(), "1.0.0");
  EXPECT_EQ(links_besides_lo(s.c.netns()), std::vector<std::string>{"eth0"});
  EXPECT_EQ(s.sb.node().endpoints().size(), 1u);
  EXPECT_EQ(s.sb.node().published().size(), 1u);
  CniReply check = s.net.check(s.c.attachment(), again.result());
  EXPECT_EQ(check.code, 0) << check.out;
  ASSERT_EQ(s.net.del(s.c.attachment()).code, 0);
  s.expect_nothing_left();
}

TEST_P(KilledCniAdd, DelLeavesNothing) {
  Scene s;
  ASSERT_EQ(s.killed_at("ADD", GetParam(), s.c.attachment()).code, kKilled);
  CniReply del = s.net.del(s.c.attachment());
  EXPECT_EQ(del.code, 0) << del.out;
  s.expect_nothing_left();
}

TEST_P(KilledCniAdd, DelAfterTheNamespaceIsGoneLeavesNothing) {
  Scene s;
  ASSERT_EQ(s.killed_at("ADD", GetParam(), s.c.attachment()).code, kKilled);
  s.c.remove();
  Attachment gone = s.c.attachment();
  gone.netns = "";
  CniReply del = s.net.del(gone);
  EXPECT_EQ(del.code, 0) << del.out;
  expect_node_empty(s.sb);
  EXPECT_TRUE(s.sb.node().published().empty());
}

INSTANTIATE_TEST_SUITE_P(Points, KilledCniAdd, testing::ValuesIn(kAddPoints), step_name);

class KilledCniDel : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { EBPFNET_REQUIRE_ROOT(); }
};

TEST_P(KilledCniDel, RetriedDelLeavesNothing) {
  Scene s;
  ASSERT_EQ(s.add().code, 0);
  ASSERT_EQ(s.killed_at("DEL", GetParam(), s.c.attachment()).code, kKilled);
  CniReply del = s.net.del(s.c.attachment());
  EXPECT_EQ(del.code, 0) << del.out;
  s.expect_nothing_left();
  // The container can be attached again.
  ASSERT_EQ(s.add().code, 0);
  ASSERT_EQ(s.net.del(s.c.attachment()).code, 0);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledCniDel,
                         testing::Values("journal", "detach", "unmap", "unlink", "state", "journal-end"),
                         step_name);

}  // namespace
}  // namespace ebpfnet::test
