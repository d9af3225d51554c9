// The loader's own behaviour: config slots, and errors that say what the
// kernel said.
#include <gtest/gtest.h>

#include "datapath_fixture.hpp"
#include "ebpfnet/skeleton.hpp"
#include "rejected.skel.h"

namespace ebpfnet::test {
namespace {

// attach owns the identity slots; the node's settings never overwrite them,
// and a setting is written only when it changes.
TEST_F(DatapathTest, ConfigSlotsKeepTheDatapathIdentity) {
  dp_->maps().write_slot(EBPFNET_CFG_ABI_VERSION, EBPFNET_ABI_VERSION);
  dp_->maps().write_slot(EBPFNET_CFG_BUILD, 0x1234);
  NodeConfig c = config();
  c[EBPFNET_CFG_PUBLISHED] = 7;
  dp_->maps().write_config(c);
  const NodeConfig got = dp_->maps().read_config();
  EXPECT_EQ(got[EBPFNET_CFG_ABI_VERSION], EBPFNET_ABI_VERSION);
  EXPECT_EQ(got[EBPFNET_CFG_BUILD], 0x1234u);
  EXPECT_EQ(got[EBPFNET_CFG_PUBLISHED], 7u);
  EXPECT_EQ(got[EBPFNET_CFG_UPLINK_IP], kUplinkIp.be());
  EXPECT_EQ(Datapath::abi_of(Datapath::open_map_pins("/nonexistent")), 0u);
}

// The pinned maps' layouts as this binary loads them: what a reload compares.
TEST_F(DatapathTest, LayoutsAreTheLoadedMaps) {
  const MapLayouts want = Datapath::layouts({kGateway, kCtSize});
  for (size_t i = 0; i < kMapNames.size(); ++i)
    EXPECT_EQ(MapLayout::of_fd(dp_->maps().fd(i)).str(), want[i].str()) << kMapNames[i];
  EXPECT_EQ(Datapath::layouts({kGateway, 2 * kCtSize})[map_index("ct")].max_entries, 2 * kCtSize);
}

// A reload copies conntrack into a map of another size, entries intact;
// only_missing keeps what the new map has.
TEST_F(DatapathTest, CopyEntriesKeepsFlows) {
  masquerade(sent_by(kA, L4::udp), kA);
  const auto flows = dp_->maps().ct_flows();
  ASSERT_EQ(flows.size(), 2u);
  Datapath bigger = Datapath::load({kGateway, 2 * kCtSize});
  const int from = dp_->maps().fd("ct"), to = bigger.maps().fd("ct");
  EXPECT_EQ(copy_entries(from, to, false), 2u);
  const auto copied = bigger.maps().ct_flows();
  ASSERT_EQ(copied.size(), 2u);
  for (const auto& f : flows) {
    const auto e = find_entry(copied, f.key);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(std::memcmp(&*e, &f.entry, sizeof f.entry), 0);
  }
  EXPECT_EQ(copy_entries(from, to, true), 0u) << "entries the new map has stay as they are";
  // Per-CPU counters come across whole.
  const int stats = dp_->maps().fd("ep_stats");
  EXPECT_EQ(copy_entries(stats, bigger.maps().fd("ep_stats"), false), 2u);
  EXPECT_EQ(bigger.maps().stats(ifindex(kA))->tx_packets, dp_->maps().stats(ifindex(kA))->tx_packets);
}

TEST(Loader, VerifierRejectionNamesTheProgramAndTheVerifiersWords) {
  EBPFNET_REQUIRE_ROOT();
  Skeleton<rejected_bpf> skel("rejected");
  try {
    skel.load();
    FAIL() << "the verifier accepted a program reading a packet without a bounds check";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::rejected) << e.what();
    const std::string what = e.what();
    EXPECT_NE(what.find("rejected program unchecked_read"), std::string::npos) << what;
    EXPECT_NE(what.find("invalid access to packet"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace ebpfnet::test
