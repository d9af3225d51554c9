// `ebpfnet demo`, what the README's first command runs: every check passes,
// its trace agrees with what its probe saw, and it leaves nothing behind.
#include <gtest/gtest.h>

#include "ebpfnet/netns.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

TEST(Demo, RunsEveryCheckAndRemovesItsSandbox) {
  EBPFNET_REQUIRE_ROOT();
  test::TempStateDir state;
  test::CmdResult r = test::run({test::ebpfnet_bin(), "--state-dir", state.path().string(), "demo"}, "", 120);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict  drop (policy-default-deny)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sandbox removed"), std::string::npos) << r.out;
  // The sandbox's name, from the trace command it shows.
  const std::string marker = "ebpfnet --node ";
  const size_t at = r.out.find(marker);
  ASSERT_NE(at, std::string::npos) << "the demo traces one packet:\n" << r.out;
  const std::string node = r.out.substr(at + marker.size(), r.out.find(' ', at + marker.size()) - at - marker.size());
  ASSERT_EQ(node.rfind("demo-", 0), 0u) << node;
  for (const auto& ns : netns::list()) EXPECT_NE(ns.rfind(node, 0), 0u) << ns << " was left behind";
}

}  // namespace
}  // namespace ebpfnet
