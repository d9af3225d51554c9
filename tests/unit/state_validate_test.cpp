// State read from a file is checked like user input and migrated from older
// schema versions: every bad record is refused naming the file and field.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/state.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

using nlohmann::json;

EndpointRecord endpoint(const std::string& name, const std::string& ip, int ifindex) {
  EndpointRecord e;
  e.name = name;
  e.netns = name;
  e.netns_path = "/run/netns/" + name;
  e.netns_owned = true;
  e.ip = *Ipv4::parse(ip);
  e.mac = *parse_mac("02:00:00:00:00:01");
  e.host_ifname = "ep-" + name;
  e.host_ifindex = ifindex;
  e.host_mac = *parse_mac("02:00:00:00:01:01");
  return e;
}

// The endpoints of the rich node, which a state file of schema 7 held.
std::vector<EndpointRecord> rich_endpoints() {
  std::vector<EndpointRecord> out;
  out.push_back(endpoint("web", "10.240.0.2", 7));
  out[0].policy = Policy{};
  out[0].policy_ids = {{1, 2}, {1, 3}};
  out[0].netns_cookie = 4096;
  EndpointRecord db = endpoint("db", "10.240.0.3", 8);
  db.netns = "pid:1";
  db.netns_path = "/proc/1/ns/net";
  db.netns_owned = false;
  out.push_back(db);
  return out;
}

// An endpoint as schema 7 wrote it in the state file.
json as_version7(const EndpointRecord& e) {
  return {{"name", e.name},
          {"netns", e.netns},
          {"netns_path", e.netns_path},
          {"netns_owned", e.netns_owned},
          {"ifname", e.ifname},
          {"ip", e.ip.str()},
          {"mac", mac_str(e.mac)},
          {"host_ifname", e.host_ifname},
          {"host_ifindex", e.host_ifindex},
          {"host_mac", mac_str(e.host_mac)},
          {"netns_cookie", e.netns_cookie},
          {"tc_mode", to_string(e.tc_mode)},
          {"container_id", e.container_id},
          {"cni_network", e.cni_network},
          {"policy", e.policy ? to_json(*e.policy) : json(nullptr)},
          {"policy_sets", e.policy_ids.set},
          {"policy_first_classes", e.policy_ids.first_class}};
}

// A node with something in every list, so each kind of record can be spoiled.
NodeState rich() {
  NodeState s;
  s.name = "lab";
  s.cidr = *Ipv4Cidr::parse("10.240.0.0/24");
  s.last_allocated = *Ipv4::parse("10.240.0.3");
  s.attached = true;
  s.tc_mode = TcMode::tcx;
  s.uplink = UplinkRecord{"eth0", "lab-out", TcMode::tcx, true};
  s.published = {{"web", "tcp", 80, 8080}, {"db", "udp", 53, 5353}};
  s.routes = {{*Ipv4Cidr::parse("192.168.50.0/24"), *Ipv4::parse("10.99.0.1")},
              {*Ipv4Cidr::parse("172.16.0.0/16"), *Ipv4::parse("10.99.0.1")}};
  s.ct_size = 65536;
  s.policy_counters = {3, 4};
  s.uplink->xdp = XdpMode::native;
  s.prefilter = {*Ipv4Cidr::parse("203.0.113.0/24"), *Ipv4Cidr::parse("198.51.100.7/32")};
  s.socket_lb = false;
  s.overlay = OverlayRecord{};
  s.overlay->vni = 7;
  s.overlay->peers = {{*Ipv4Cidr::parse("10.241.0.0/24"), *Ipv4::parse("198.18.250.2")},
                      {*Ipv4Cidr::parse("10.242.0.0/24"), *Ipv4::parse("198.18.250.3")}};
  return s;
}

// The rich state as schema 7 wrote it, with its endpoints in the file.
json as_version7(json j) {
  j["version"] = 7;
  j["endpoints"] = json::array();
  for (const auto& e : rich_endpoints()) j["endpoints"].push_back(as_version7(e));
  return j;
}

// The rich state as schema 6 wrote it, with its services in the file too.
json as_version6(json j) {
  j["version"] = 6;
  j["services"] = json::parse(R"([
    {"name": "api", "id": 1, "proto": "tcp", "vip": "10.96.0.10", "port": 80, "node_port": 30080,
     "affinity_s": 0, "backends": [{"id": 1, "endpoint": "web", "port": 8080, "weight": 1, "draining": false},
                                   {"id": 2, "endpoint": "db", "port": 8080, "weight": 2, "draining": true}]},
    {"name": "dns", "id": 2, "proto": "udp", "vip": "10.96.0.53", "port": 53, "node_port": 0,
     "affinity_s": 60, "backends": [{"id": 3, "endpoint": "db", "port": 53, "weight": 1, "draining": false}]}])");
  j["service_counters"] = {{"next_service", 3}, {"next_backend", 4}};
  return j;
}

class StateFile : public testing::Test {
 protected:
  void SetUp() override {
    lock_.emplace(store_.lock(true));
    store_.save(rich());
    good_ = as_version7(read());
    write(good_);
  }
  std::filesystem::path file() const { return store_.dir() / "state.json"; }
  json read() const { return json::parse(test::read_file(file())); }
  void write(const json& j) const { std::ofstream(file()) << j.dump(2); }

  // The saved state, spoiled, must fail to load with Errc::failed, naming the
  // file and `field`.
  void expect_refused(const std::string& field, const std::function<void(json&)>& spoil) {
    json j = good_;
    spoil(j);
    write(j);
    try {
      store_.load();
      ADD_FAILURE() << field << ": spoiled state loaded";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.code(), Errc::failed) << msg;
      EXPECT_NE(msg.find("state " + file().string() + ": "), std::string::npos) << msg;
      EXPECT_NE(msg.find(field + ": "), std::string::npos) << "expected " << field << " named: " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }

  test::TempStateDir dir_;
  StateStore store_{dir_.path(), "lab"};
  std::optional<StateStore::Lock> lock_;
  json good_;
};

TEST_F(StateFile, RichStateRoundTrips) {
  NodeState s = store_.load();
  ASSERT_TRUE(s.legacy_endpoints);
  EXPECT_EQ(s.legacy_endpoints->size(), 2u);
  EXPECT_TRUE((*s.legacy_endpoints)[0].policy);
  EXPECT_EQ((*s.legacy_endpoints)[0].policy_ids.first_class[1], 3u);
  EXPECT_FALSE((*s.legacy_endpoints)[1].netns_owned);
  EXPECT_EQ(s.published.size(), 2u);
  EXPECT_EQ(s.routes.size(), 2u);
  EXPECT_EQ(s.ct_size, 65536u);
  EXPECT_EQ(s.policy_counters.next_class, 4u);
  EXPECT_EQ(s.prefilter.size(), 2u);
  EXPECT_FALSE(s.legacy_services);
  EXPECT_FALSE(s.socket_lb);
  EXPECT_EQ((*s.legacy_endpoints)[0].netns_cookie, 4096u);
  ASSERT_TRUE(s.overlay);
  EXPECT_EQ(s.overlay->ifname, "vx0");
  EXPECT_EQ(s.overlay->vni, 7u);
  EXPECT_EQ(s.overlay->mtu, 1450u);
  ASSERT_EQ(s.overlay->peers.size(), 2u);
  EXPECT_EQ(s.overlay->peers[1].via.str(), "198.18.250.3");
  // Saved, it is of schema 9: the endpoints are the table's.
  s.legacy_endpoints.reset();
  store_.save(s);
  EXPECT_EQ(read().at("version"), 9);
  EXPECT_FALSE(read().contains("services"));
  EXPECT_FALSE(read().contains("endpoints"));
  NodeState again = store_.load();
  EXPECT_FALSE(again.legacy_endpoints);
  EXPECT_EQ(again.published.size(), 2u);
  EXPECT_EQ(again.policy_counters.next_class, 4u);
}

// Schema 6 kept the services in the file: they are read (for the loading
// transaction to move into the services table) and no longer saved.
TEST_F(StateFile, Version6CarriesItsServicesToTheTable) {
  write(as_version6(good_));
  NodeState s = store_.load();
  ASSERT_TRUE(s.legacy_services);
  const auto& v = s.legacy_services->services;
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].node_port, 30080);
  EXPECT_TRUE(v[0].backends[1].draining);
  EXPECT_EQ(v[0].backends[1].weight, 2u);
  EXPECT_EQ(v[1].affinity_s, 60u);
  EXPECT_EQ(s.legacy_services->counters.next_backend, 4u);
  s.legacy_services.reset();
  store_.save(s);
  EXPECT_FALSE(read().contains("services"));
  EXPECT_FALSE(read().contains("service_counters"));
}

TEST_F(StateFile, RefusesABadPrefilter) {
  expect_refused("prefilter", [](json& j) { j["prefilter"] = {"203.0.113.1/24"}; });
  expect_refused("prefilter", [](json& j) { j["prefilter"] = {"nonsense"}; });
  expect_refused("prefilter[1]", [](json& j) { j["prefilter"] = {"203.0.113.0/24", "203.0.113.7/32"}; });
  expect_refused("prefilter", [](json& j) { j.erase("prefilter"); });
  expect_refused("uplink.xdp_mode", [](json& j) { j["uplink"]["xdp_mode"] = "offload"; });
}

TEST_F(StateFile, RefusesABadOverlay) {
  expect_refused("overlay.peers[0].pool", [](json& j) { j["overlay"]["peers"][0]["pool"] = "10.240.0.0/16"; });
  expect_refused("overlay.peers[0].pool", [](json& j) { j["overlay"]["peers"][1]["pool"] = "10.241.0.128/25"; });
  expect_refused("overlay.peers[0].pool", [](json& j) { j["overlay"]["peers"][0]["pool"] = "192.168.50.0/25"; });
  expect_refused("overlay.peers[0].pool", [](json& j) { j["overlay"]["peers"][0]["via"] = "224.0.0.1"; });
  expect_refused("overlay.peers[0].via", [](json& j) { j["overlay"]["peers"][0]["via"] = "node-b"; });
  expect_refused("overlay.vni", [](json& j) { j["overlay"]["vni"] = 1 << 24; });
  expect_refused("overlay.ifname", [](json& j) { j["overlay"]["ifname"] = "a/b"; });
  expect_refused("overlay.mtu", [](json& j) { j["overlay"]["mtu"] = 100; });
  expect_refused("overlay", [](json& j) { j.erase("overlay"); });
}

// Version 5 had no overlay.
TEST_F(StateFile, Version5LoadsWithoutAnOverlay) {
  json v5 = as_version6(good_);
  v5["version"] = 5;
  v5.erase("overlay");
  write(v5);
  EXPECT_FALSE(store_.load().overlay);
}

TEST_F(StateFile, RefusesABadNode) {
  expect_refused("name", [](json& j) { j["name"] = "../lab"; });
  expect_refused("name", [](json& j) { j["name"] = "other"; });
  expect_refused("cidr", [](json& j) { j["cidr"] = "10.240.0.0/31"; });
  expect_refused("cidr", [](json& j) { j["cidr"] = "10.0.0.0/7"; });
  expect_refused("cidr", [](json& j) { j["cidr"] = "10.240.0.1/24"; });
  expect_refused("cidr", [](json& j) { j["cidr"] = "10.240.0.0/024"; });
  expect_refused("last_allocated", [](json& j) { j["last_allocated"] = "10.9.9.9"; });
  expect_refused("last_allocated", [](json& j) { j["last_allocated"] = "10.240.0.03"; });
  expect_refused("ct_size", [](json& j) { j["ct_size"] = 0; });
  expect_refused("ct_size", [](json& j) { j["ct_size"] = -1; });
  expect_refused("sandbox", [](json& j) { j["sandbox"] = "yes"; });
}

TEST_F(StateFile, RefusesABadEndpoint) {
  expect_refused("endpoints[0].name", [](json& j) { j["endpoints"][0]["name"] = "a/b"; });
  expect_refused("endpoints[0].netns", [](json& j) { j["endpoints"][0]["netns"] = "../../etc"; });
  expect_refused("endpoints[1].netns", [](json& j) { j["endpoints"][1]["netns"] = ""; });
  expect_refused("endpoints[0].netns_path", [](json& j) { j["endpoints"][0]["netns_path"] = "run/netns/web"; });
  expect_refused("endpoints[0].netns_path",
                 [](json& j) { j["endpoints"][0]["netns_path"] = "/run/netns/../../etc/x"; });
  expect_refused("endpoints[0].ifname", [](json& j) { j["endpoints"][0]["ifname"] = "eth0/x"; });
  expect_refused("endpoints[1].host_ifname",
                 [](json& j) { j["endpoints"][1]["host_ifname"] = "../../../../tmp/x"; });
  expect_refused("endpoints[0].host_ifname",
                 [](json& j) { j["endpoints"][0]["host_ifname"] = "ep-web\nforged"; });
  for (const char* ip : {"10.9.0.5", "10.240.0.0", "10.240.0.1", "10.240.0.255", "10.240.0.2/32"})
    expect_refused("endpoints[0].ip", [&](json& j) { j["endpoints"][0]["ip"] = ip; });
  expect_refused("endpoints[0].host_ifindex", [](json& j) { j["endpoints"][0]["host_ifindex"] = 0; });
  expect_refused("endpoints[0].host_ifindex", [](json& j) { j["endpoints"][0]["host_ifindex"] = -3; });
  // Beyond int: refused, not truncated (2^32 + 7 would become 7).
  expect_refused("endpoints[0].host_ifindex", [](json& j) { j["endpoints"][0]["host_ifindex"] = 2147483648LL; });
  expect_refused("endpoints[0].host_ifindex", [](json& j) { j["endpoints"][0]["host_ifindex"] = 4294967303LL; });
  expect_refused("endpoints[0].host_ifindex", [](json& j) { j["endpoints"][0]["host_ifindex"] = 7.5; });
  expect_refused("endpoints[0].mac", [](json& j) { j["endpoints"][0]["mac"] = "02:00:00:00:00"; });
  expect_refused("endpoints[1].host_mac", [](json& j) { j["endpoints"][1]["host_mac"] = "zz:00:00:00:00:01"; });
  expect_refused("endpoints[0].tc_mode", [](json& j) { j["endpoints"][0]["tc_mode"] = "xdp"; });
  expect_refused("endpoints[0].policy_sets", [](json& j) { j["endpoints"][0]["policy_sets"] = {1}; });
  expect_refused("endpoints[0].policy",
                 [](json& j) { j["endpoints"][0]["policy"]["ingress"]["default"] = "maybe"; });
  expect_refused("endpoints[1]", [](json& j) { j["endpoints"][1] = "db"; });
}

TEST_F(StateFile, RefusesTwoEndpointsWithOneNameAddressOrInterface) {
  expect_refused("endpoints[1].name", [](json& j) { j["endpoints"][1]["name"] = "web"; });
  expect_refused("endpoints[1].ip", [](json& j) { j["endpoints"][1]["ip"] = "10.240.0.2"; });
  expect_refused("endpoints[1].host_ifname", [](json& j) { j["endpoints"][1]["host_ifname"] = "ep-web"; });
  expect_refused("endpoints[1].host_ifindex", [](json& j) { j["endpoints"][1]["host_ifindex"] = 7; });
}

TEST_F(StateFile, RefusesABadUplink) {
  expect_refused("uplink.ifname", [](json& j) { j["uplink"]["ifname"] = "eth 0"; });
  expect_refused("uplink.outside", [](json& j) { j["uplink"]["outside"] = "../../run"; });
  expect_refused("uplink.outside_owned", [](json& j) { j["uplink"].erase("outside_owned"); });
}

TEST_F(StateFile, RefusesABadPublishedPort) {
  expect_refused("published[0].proto", [](json& j) { j["published"][0]["proto"] = "sctp"; });
  expect_refused("published[0].port", [](json& j) { j["published"][0]["port"] = 0; });
  expect_refused("published[0].port", [](json& j) { j["published"][0]["port"] = 70000; });
  expect_refused("published[1].target_port", [](json& j) { j["published"][1]["target_port"] = 0; });
  expect_refused("published[0].endpoint", [](json& j) { j["published"][0]["endpoint"] = "ghost"; });
  expect_refused("published[1].port", [](json& j) {
    j["published"][1]["proto"] = "tcp";
    j["published"][1]["port"] = 8080;
  });
}

TEST_F(StateFile, RefusesABadRoute) {
  expect_refused("routes[0].dst", [](json& j) { j["routes"][0]["dst"] = "192.168.50.1/24"; });
  expect_refused("routes[0].dst", [](json& j) { j["routes"][0]["dst"] = "10.240.0.0/16"; });
  expect_refused("routes[1].dst", [](json& j) { j["routes"][1]["dst"] = "10.240.0.128/25"; });
  expect_refused("routes[1].dst", [](json& j) { j["routes"][1]["dst"] = "192.168.50.0/24"; });
  expect_refused("routes[0].via", [](json& j) { j["routes"][0]["via"] = "gateway"; });
}

TEST_F(StateFile, RefusesAZeroOrNegativeTimeout) {
  expect_refused("ct_timeouts.udp", [](json& j) { j["ct_timeouts"]["udp"] = 0; });
  expect_refused("ct_timeouts.tcp", [](json& j) { j["ct_timeouts"]["tcp"] = -1; });
  expect_refused("ct_timeouts.syn", [](json& j) { j["ct_timeouts"]["syn"] = "60"; });
}

// Version 2 has every field: no defaults stand in for a missing one.
TEST_F(StateFile, RefusesAMissingField) {
  expect_refused("endpoints[0].container_id", [](json& j) { j["endpoints"][0].erase("container_id"); });
  expect_refused("ct_size", [](json& j) { j.erase("ct_size"); });
  expect_refused("routes", [](json& j) { j.erase("routes"); });
  expect_refused("version", [](json& j) { j.erase("version"); });
  expect_refused("version", [](json& j) { j["version"] = 0; });
}

// Services in a schema-6 file are checked as that schema checked them.
TEST_F(StateFile, RefusesABadServiceOfVersion6) {
  auto expect_refused = [this](const std::string& field, const std::function<void(json&)>& spoil) {
    StateFile::expect_refused(field, [&](json& j) {
      j = as_version6(j);
      spoil(j);
    });
  };
  expect_refused("services[0].vip", [](json& j) { j["services"][0]["vip"] = "10.240.0.9"; });
  expect_refused("services[0].vip", [](json& j) { j["services"][0]["vip"] = nullptr; j["services"][0]["node_port"] = 0; });
  expect_refused("services[1].name", [](json& j) { j["services"][1]["name"] = "api"; });
  expect_refused("services[1].id", [](json& j) { j["services"][1]["id"] = 1; });
  expect_refused("services[1].id", [](json& j) { j["services"][1]["id"] = 9; });
  expect_refused("services[0].proto", [](json& j) { j["services"][0]["proto"] = "sctp"; });
  expect_refused("services[0].node_port", [](json& j) { j["services"][0]["node_port"] = 8080; });
  expect_refused("services[1].vip", [](json& j) {
    j["services"][1]["vip"] = "10.96.0.10";
    j["services"][1]["port"] = 80;
    j["services"][1]["proto"] = "tcp";
  });
  expect_refused("services[0].backends[0].endpoint", [](json& j) { j["services"][0]["backends"][0]["endpoint"] = "gone"; });
  expect_refused("services[0].backends[1].id", [](json& j) { j["services"][0]["backends"][1]["id"] = 1; });
  expect_refused("services[0].backends[0].weight", [](json& j) { j["services"][0]["backends"][0]["weight"] = 0; });
  expect_refused("services[0].backends[1].port", [](json& j) {
    j["services"][0]["backends"][1]["endpoint"] = "web";
    j["services"][0]["backends"][1]["port"] = 8080;
  });
  expect_refused("service_counters", [](json& j) { j.erase("service_counters"); });
}

// Schema 9: native routing's cluster CIDR round-trips, and must hold the pool.
TEST_F(StateFile, NativeCidrRoundTripsAndMustHoldThePool) {
  {
    NodeState s = store_.load();
    EXPECT_FALSE(s.native_cidr);
    s.native_cidr = *Ipv4Cidr::parse("10.240.0.0/16");
    store_.save(s);
  }
  EXPECT_EQ(read().at("native_cidr"), "10.240.0.0/16");
  EXPECT_EQ(store_.load().native_cidr->str(), "10.240.0.0/16");
  expect_refused("native_cidr", [](json& j) { j["native_cidr"] = "10.250.0.0/16"; });
  expect_refused("native_cidr", [](json& j) { j["native_cidr"] = "junk"; });
}

TEST_F(StateFile, RefusesANewerSchema) {
  json j = good_;
  j["version"] = 10;
  j["something_new"] = true;
  write(j);
  try {
    store_.load();
    FAIL() << "a version 10 state loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::failed);
    EXPECT_EQ(std::string(e.what()), "state of node 'lab' (" + file().string() +
                                         ") has schema version 10; this ebpfnet reads up to 9: upgrade ebpfnet");
  }
}

// A version 1 file as written before CNI, policy, NAT, routes, timeouts and
// ct_size existed: every field those added is missing.
constexpr const char* kVersion1 = R"({
  "version": 1, "name": "lab", "sandbox": true, "cidr": "10.240.0.0/24",
  "last_allocated": "10.240.0.2", "attached": true, "tc_mode": "tcx",
  "endpoints": [{"name": "web", "netns": "web", "netns_path": "/run/netns/web", "netns_owned": true,
                 "ifname": "eth0", "ip": "10.240.0.2", "mac": "02:00:00:00:00:02",
                 "host_ifname": "ep-web", "host_ifindex": 9, "host_mac": "02:00:00:00:01:02",
                 "tc_mode": "clsact"}]
})";

TEST(StateMigration, Version1LoadsWithTodaysDefaults) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  std::ofstream(store.dir() / "state.json") << kVersion1;
  NodeState s = store.load();
  ASSERT_EQ(s.legacy_endpoints->size(), 1u);
  const EndpointRecord& e = (*s.legacy_endpoints)[0];
  EXPECT_EQ(e.host_ifindex, 9);
  EXPECT_EQ(e.tc_mode, TcMode::clsact);
  EXPECT_EQ(e.container_id, "");
  EXPECT_EQ(e.cni_network, "");
  EXPECT_FALSE(e.policy);
  EXPECT_EQ(e.policy_ids.set, (std::array<uint32_t, 2>{0, 0}));
  EXPECT_FALSE(s.uplink);
  EXPECT_TRUE(s.routes.empty());
  EXPECT_TRUE(s.published.empty());
  EXPECT_EQ(s.ct_timeouts.tcp, CtTimeouts{}.tcp);
  EXPECT_EQ(s.ct_timeouts.icmp, CtTimeouts{}.icmp);
  EXPECT_EQ(s.ct_size, 262144u);
  EXPECT_EQ(s.policy_counters.next_set, 1u);

  // Saving writes the current schema, with every field.
  store.save(s);
  json j = json::parse(test::read_file(store.dir() / "state.json"));
  EXPECT_EQ(j.at("version"), 9);
  EXPECT_EQ(j.at("ct_size"), 262144);
  EXPECT_EQ(j.at("overlay"), nullptr);
  EXPECT_EQ(j.at("native_cidr"), nullptr) << "native routing: none before schema 9";
  EXPECT_EQ(j.at("prefilter"), json::array());
  EXPECT_FALSE(j.contains("services"));
  EXPECT_FALSE(j.contains("endpoints"));
}

// Version 4 had neither connect-time balancing nor namespace cookies: it is
// on, and each cookie is unknown (learnt from the namespace at the next refill).
TEST_F(StateFile, Version4TurnsConnectTimeBalancingOnWithCookiesUnknown) {
  json v4 = as_version6(good_);
  v4["version"] = 4;
  v4.erase("socket_lb");
  for (auto& e : v4["endpoints"]) e.erase("netns_cookie");
  write(v4);
  NodeState s = store_.load();
  EXPECT_TRUE(s.socket_lb);
  ASSERT_EQ(s.legacy_endpoints->size(), 2u);
  EXPECT_EQ((*s.legacy_endpoints)[0].netns_cookie, 0u);
}

TEST_F(StateFile, RefusesABadNetnsCookie) {
  expect_refused("endpoints[0].netns_cookie", [](json& j) { j["endpoints"][0]["netns_cookie"] = -1; });
  expect_refused("socket_lb", [](json& j) { j["socket_lb"] = "yes"; });
}

TEST(StateMigration, Version1UplinkWithoutOutsideOwnedIsOwned) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  json j = json::parse(kVersion1);
  j["uplink"] = {{"ifname", "eth0"}, {"outside", "lab-out"}, {"tc_mode", "tcx"}};
  std::ofstream(store.dir() / "state.json") << j.dump();
  NodeState s = store.load();
  ASSERT_TRUE(s.uplink);
  EXPECT_TRUE(s.uplink->outside_owned);
  EXPECT_EQ(s.uplink->outside, "lab-out");
}

// Version 2 (ABI 2's ebpfnet) had no prefilter: an empty list, no XDP attachment.
TEST(StateMigration, Version2LoadsWithAnEmptyPrefilter) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  json j = json::parse(kVersion1);
  j["uplink"] = {{"ifname", "eth0"}, {"outside", "lab-out"}, {"tc_mode", "tcx"}};
  std::ofstream(store.dir() / "state.json") << j.dump();
  store.save(store.load());  // now the current version
  json v2 = json::parse(test::read_file(store.dir() / "state.json"));
  v2["version"] = 2;
  v2["endpoints"] = json::array();
  v2.erase("prefilter");
  v2["uplink"].erase("xdp_mode");
  std::ofstream(store.dir() / "state.json") << v2.dump();
  NodeState s = store.load();
  EXPECT_TRUE(s.prefilter.empty());
  ASSERT_TRUE(s.uplink);
  EXPECT_FALSE(s.uplink->xdp);
  // A version 2 file that (hand-edited) has a prefilter keeps it.
  v2["prefilter"] = {"203.0.113.0/24"};
  std::ofstream(store.dir() / "state.json") << v2.dump();
  EXPECT_EQ(store.load().prefilter.size(), 1u);
}

// Version 3 (ABI 3's ebpfnet) had no services.
TEST(StateMigration, Version3LoadsWithoutServices) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  std::ofstream(store.dir() / "state.json") << kVersion1;
  store.save(store.load());
  json v3 = json::parse(test::read_file(store.dir() / "state.json"));
  v3["version"] = 3;
  v3["endpoints"] = json::array();
  v3.erase("services");
  v3.erase("service_counters");
  std::ofstream(store.dir() / "state.json") << v3.dump();
  NodeState s = store.load();
  ASSERT_TRUE(s.legacy_services);
  EXPECT_TRUE(s.legacy_services->services.empty());
  EXPECT_EQ(s.legacy_services->counters.next_service, 1u);
  EXPECT_EQ(s.legacy_services->counters.next_backend, 1u);
}

// A migrated file is validated like any other.
TEST(StateMigration, Version1IsValidatedToo) {
  test::TempStateDir dir;
  StateStore store(dir.path(), "lab");
  auto lock = store.lock(true);
  json j = json::parse(kVersion1);
  j["endpoints"][0]["host_ifname"] = "../../../../tmp/x";
  std::ofstream(store.dir() / "state.json") << j.dump();
  try {
    store.load();
    FAIL() << "an invalid version 1 state loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::failed);
    EXPECT_NE(std::string(e.what()).find("endpoints[0].host_ifname: "), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ebpfnet
