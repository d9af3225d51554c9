// State written before the CNI plugin existed still loads: endpoints
// without container_id and cni_network are hand-made ones.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

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
  EndpointRecord e = endpoint("web", "10.240.0.2");
  e.container_id = "abc";
  e.cni_network = "net";
  st.endpoints.push_back(e);
  {
    auto lock = store.lock(true);
    store.save(st);
  }
  // Strip what older versions did not write: a version 1 file.
  auto path = store.dir() / "state.json";
  nlohmann::json j = nlohmann::json::parse(test::read_file(path));
  j["version"] = 1;
  j["endpoints"][0].erase("container_id");
  j["endpoints"][0].erase("cni_network");
  std::ofstream(path) << j.dump();

  NodeState back = store.load();
  ASSERT_EQ(back.endpoints.size(), 1u);
  EXPECT_EQ(back.endpoints[0].name, "web");
  EXPECT_EQ(back.endpoints[0].container_id, "");
  EXPECT_EQ(back.endpoints[0].cni_network, "");
}

TEST(CniState, ContainerFieldsRoundTrip) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "new");
  NodeState st;
  st.name = "new";
  st.cidr = *Ipv4Cidr::parse("10.240.0.0/24");
  EndpointRecord e = endpoint("c1", "10.240.0.2");
  e.container_id = "0123456789abcdef";
  e.cni_network = "ebpfnet";
  e.ifname = "net1";
  st.endpoints.push_back(e);
  auto lock = store.lock(true);
  store.save(st);
  NodeState back = store.load();
  ASSERT_EQ(back.endpoints.size(), 1u);
  EXPECT_EQ(back.endpoints[0].container_id, "0123456789abcdef");
  EXPECT_EQ(back.endpoints[0].cni_network, "ebpfnet");
  EXPECT_EQ(back.endpoints[0].ifname, "net1");
}

}  // namespace
}  // namespace ebpfnet
