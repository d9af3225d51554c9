// State written before the CNI plugin existed still loads: endpoints
// without container_id and cni_network are hand-made ones.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ebpfnet/endpoint_table.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

EndpointRecord endpoint(const std::string& name, const std::string& ip) {
  EndpointRecord e;
  e.name = name;
  e.netns = "/run/netns/" + name;
  e.netns_path = e.netns;
  e.ip = *Ipv4::parse(ip);
  e.host_ifname = "ep-" + name;
  e.host_ifindex = 5;
  return e;
}

TEST(CniState, StateWithoutContainerFieldsLoads) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "old");
  NodeState st;
  st.name = "old";
  st.cidr = *Ipv4Cidr::parse("10.240.0.0/24");
  {
    auto lock = store.lock(true);
    store.save(st);
  }
  // What older versions wrote: a version 1 file, its endpoints in it.
  auto path = store.dir() / "state.json";
  nlohmann::json j = nlohmann::json::parse(test::read_file(path));
  j["version"] = 1;
  j["endpoints"] = nlohmann::json::parse(R"([{"name": "web", "netns": "/run/netns/web",
      "netns_path": "/run/netns/web", "netns_owned": false, "ifname": "eth0", "ip": "10.240.0.2",
      "mac": "00:00:00:00:00:00", "host_ifname": "ep-web", "host_ifindex": 5,
      "host_mac": "00:00:00:00:00:00", "tc_mode": "tcx"}])");
  std::ofstream(path) << j.dump();

  NodeState back = store.load();
  ASSERT_TRUE(back.legacy_endpoints);
  ASSERT_EQ(back.legacy_endpoints->size(), 1u);
  EXPECT_EQ((*back.legacy_endpoints)[0].name, "web");
  EXPECT_EQ((*back.legacy_endpoints)[0].container_id, "");
  EXPECT_EQ((*back.legacy_endpoints)[0].cni_network, "");
}

TEST(CniState, ContainerFieldsRoundTrip) {
  test::TempStateDir dir;
  const Ipv4Cidr pool = *Ipv4Cidr::parse("10.240.0.0/24");
  EndpointRecord e = endpoint("c1", "10.240.0.2");
  e.container_id = "0123456789abcdef";
  e.cni_network = "ebpfnet";
  e.ifname = "net1";
  {
    EndpointTable t(std::make_shared<NodeDb>(dir.path() / "services.db", NodeDb::Mode::write), pool);
    t.put(e);
    t.commit();
  }
  EndpointTable t(std::make_shared<NodeDb>(dir.path() / "services.db", NodeDb::Mode::read), pool);
  auto back = t.of_container("0123456789abcdef", "net1");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->name, "c1");
  EXPECT_EQ(back->cni_network, "ebpfnet");
  EXPECT_EQ(back->ifname, "net1");
}

}  // namespace
}  // namespace ebpfnet
