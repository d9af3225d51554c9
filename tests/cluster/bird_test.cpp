// BIRD's configuration as the agent renders it (and as bird itself parses
// it, when bird2 is installed), and birdc's protocol list as status reads it.
#include <gtest/gtest.h>

#include <fstream>

#include "ebpfnet/cluster/bird.hpp"
#include "ebpfnet/cluster/daemon.hpp"
#include "support.hpp"

namespace ebpfnet::test {
namespace {

using namespace cluster;

const BgpSelf kSelf{"lab-1", *Ipv4::parse("198.18.0.2"), *Ipv4Cidr::parse("10.244.0.0/24")};

NodeRecord peer(const std::string& name, const char* underlay, const char* pool, Mode mode = Mode::native) {
  return {name, *Ipv4::parse(underlay), *Ipv4Cidr::parse(pool), std::nullopt, mode};
}

TEST(BirdConfig, AnnouncesThePoolAndAcceptsEachPeersOwnPoolOnly) {
  const std::string conf = render_bird_config(
      kSelf, {{"lab-2", peer("lab-2", "198.18.1.2", "10.244.1.0/24")},
              {"lab-3", peer("lab-3", "198.18.2.2", "10.244.2.0/24", Mode::vxlan)}});
  EXPECT_NE(conf.find("router id 198.18.0.2;"), std::string::npos);
  EXPECT_NE(conf.find("route 10.244.0.0/24 blackhole;"), std::string::npos);
  EXPECT_NE(conf.find("local 198.18.0.2 as 64512;"), std::string::npos);
  EXPECT_NE(conf.find("strict bind yes;"), std::string::npos) << "listens on the underlay address only";
  EXPECT_NE(conf.find("graceful restart on;"), std::string::npos);
  EXPECT_NE(conf.find("persist;"), std::string::npos);
  EXPECT_NE(conf.find("protocol bgp peer_lab_2 from mesh"), std::string::npos);
  EXPECT_NE(conf.find("neighbor 198.18.1.2 as 64512;"), std::string::npos);
  EXPECT_NE(conf.find("import where net = 10.244.1.0/24;"), std::string::npos);
  EXPECT_EQ(conf.find("lab_3"), std::string::npos) << "a vxlan peer is reached through the overlay";
}

TEST(BirdConfig, BirdParsesIt) {
  const std::string bird = find_program("bird");
  if (bird.empty()) GTEST_SKIP() << "SKIPPED LOUDLY: bird is not installed (apt-get install bird2)";
  TempStateDir dir;
  const auto file = dir.path() / "bird.conf";
  std::ofstream(file) << render_bird_config(kSelf, {{"lab-2", peer("lab-2", "198.18.1.2", "10.244.1.0/24")},
                                                    {"lab-3", peer("lab-3", "198.18.2.2", "10.244.2.0/24")}});
  const ProgramRun r = run_program({bird, "-p", "-c", file.string()});
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(BirdSessions, ParsesBgpProtocolsOfShowProtocols) {
  const std::string out =
      "BIRD 2.0.12 ready.\n"
      "Name       Proto      Table      State  Since         Info\n"
      "device1    Device     ---        up     14:05:01.234  \n"
      "pool       Static     master4    up     14:05:01.234  \n"
      "kernel1    Kernel     master4    up     14:05:01.234  \n"
      "peer_lab_2 BGP        ---        up     14:05:03.001  Established   \n"
      "peer_lab_3 BGP        ---        start  2026-12-03 14:05:01  Active        Socket: Connection refused\n";
  const auto s = parse_bgp_sessions(out);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0], (BgpSession{"peer_lab_2", "up", "Established"}));
  EXPECT_EQ(s[1].protocol, "peer_lab_3");
  EXPECT_EQ(s[1].state, "start");
  EXPECT_EQ(s[1].info, "Active Socket: Connection refused");
}

}  // namespace
}  // namespace ebpfnet::test
