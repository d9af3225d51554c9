// The prefilter bench: each hook really drops the flood (the denied entry
// counts what the generator sent), the hook goes after its run, and the
// bench removes everything it made.
#include <gtest/gtest.h>

#include <algorithm>

#include "bench/prefilter.hpp"
#include "bench_support.hpp"
#include "support.hpp"

namespace ebpfnet::bench {
namespace {

TEST(PrefilterBench, EachHookDropsTheFloodAndEverythingGoes) {
  EBPFNET_REQUIRE_ROOT();
  auto links0 = test::root_links();
  test::TempConfig tc;
  std::vector<std::string> made;
  {
    PrefilterBench b(tc.cfg.prefix, 16);
    made = b.namespaces();
    ASSERT_EQ(made.size(), 2u);
    for (const auto& n : made) EXPECT_TRUE(test::netns_names().count(n)) << n;
    EXPECT_EQ(test::root_links(), links0) << "the root namespace got a link";
    for (DropHook h : {DropHook::xdp, DropHook::xdp_generic, DropHook::tc}) {
      SCOPED_TRACE(to_string(h));
      const DropSample s = b.run(h, 0, 0.3);
      EXPECT_GT(s.sent, 1000u);
      // Every frame sent is the denied source's: all of them are dropped, by the entry.
      EXPECT_GE(s.dropped, s.sent * 99 / 100) << s.dropped << " of " << s.sent;
      EXPECT_LE(s.dropped, s.sent);
      if (h == DropHook::xdp) EXPECT_EQ(s.xdp_mode, "native");
      if (h == DropHook::xdp_generic) EXPECT_EQ(s.xdp_mode, "generic");
    }
  }
  for (const auto& n : test::netns_names())
    EXPECT_FALSE(std::count(made.begin(), made.end(), n)) << n << " was left behind";
  EXPECT_EQ(test::root_links(), links0);
}

}  // namespace
}  // namespace ebpfnet::bench
