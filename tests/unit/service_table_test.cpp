// The services table: one row per service, its constraints, its
// transactions, and rows others edited refused by field.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "ebpfnet/error.hpp"
#include "ebpfnet/service_table.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

ServiceRecord service(const std::string& name, uint32_t id, const char* vip, uint16_t node_port = 0) {
  ServiceRecord v{name, id, "tcp", vip ? Ipv4::parse(vip) : std::nullopt, 80, node_port, 0, {}};
  v.backends = {{id * 10, "web", 8080, 1, false}, {id * 10 + 1, "db", 8080, 2, true}};
  return v;
}

class ServiceTableTest : public testing::Test {
 protected:
  std::filesystem::path file() const { return dir_.path() / "services.db"; }
  test::TempStateDir dir_;
};

TEST_F(ServiceTableTest, KeepsWhatWasCommitted) {
  {
    ServiceTable t(file(), ServiceTable::Mode::write);
    t.put(service("api", 1, "10.96.0.10", 30080));
    t.put(service("dns", 2, "10.96.0.53"));
    t.set_counters({3, 22});
    t.commit();
  }
  ServiceTable t(file(), ServiceTable::Mode::read);
  ASSERT_EQ(t.size(), 2u);
  auto api = t.get("api");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->node_port, 30080);
  ASSERT_EQ(api->backends.size(), 2u);
  EXPECT_TRUE(api->backends[1].draining);
  EXPECT_EQ(api->backends[1].weight, 2u);
  EXPECT_FALSE(t.get("nope"));
  EXPECT_EQ(t.all()[1].name, "dns");
  EXPECT_EQ(t.at_vip(*Ipv4::parse("10.96.0.53"), 80, "tcp"), "dns");
  EXPECT_FALSE(t.at_vip(*Ipv4::parse("10.96.0.53"), 80, "udp"));
  EXPECT_EQ(t.at_node_port(30080, "tcp"), "api");
  EXPECT_EQ(t.key_count(), 3u);
  EXPECT_EQ(t.backend_count(), 4u);
  EXPECT_TRUE(t.any_vip());
  EXPECT_EQ(t.counters().next_service, 3u);
  EXPECT_EQ(t.counters().next_backend, 22u);
}

TEST_F(ServiceTableTest, WhatIsNotCommittedIsRolledBack) {
  {
    ServiceTable t(file(), ServiceTable::Mode::write);
    t.put(service("api", 1, "10.96.0.10"));
    t.commit();
    t.put(service("dns", 2, "10.96.0.53"));
    t.erase("api");
    t.set_counters({9, 9});
  }
  ServiceTable t(file(), ServiceTable::Mode::read);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.get("api"));
  EXPECT_EQ(t.counters().next_service, 1u);
}

TEST_F(ServiceTableTest, AMissingTableReadsEmpty) {
  ServiceTable t(file(), ServiceTable::Mode::read);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_TRUE(t.all().empty());
  EXPECT_FALSE(t.any_vip());
  EXPECT_EQ(t.counters().next_backend, 1u);
  EXPECT_FALSE(std::filesystem::exists(file()));
}

TEST_F(ServiceTableTest, AddressesAndIdsAreUnique) {
  ServiceTable t(file(), ServiceTable::Mode::write);
  t.put(service("api", 1, "10.96.0.10", 30080));
  auto refused = [&](const ServiceRecord& v) {
    try {
      t.put(v);
      ADD_FAILURE() << v.name << " was put";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::exists) << e.what();
    }
  };
  refused(service("same-vip", 2, "10.96.0.10"));
  refused(service("same-node-port", 3, nullptr, 30080));
  refused(service("same-id", 1, "10.96.0.11"));
  // Replacing a service by its name is no conflict with itself, and the
  // totals count it once.
  ServiceRecord api = service("api", 1, "10.96.0.10", 30080);
  api.backends.pop_back();
  t.put(api);
  EXPECT_EQ(t.get("api")->backends.size(), 1u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.key_count(), 2u);
  EXPECT_EQ(t.backend_count(), 1u);
  t.erase("api");
  t.erase("never");
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.key_count(), 0u);
  EXPECT_EQ(t.backend_count(), 0u);
}

TEST_F(ServiceTableTest, FindsServicesByBackendEndpoint) {
  ServiceTable t(file(), ServiceTable::Mode::write);
  t.put(service("api", 1, "10.96.0.10"));
  ServiceRecord solo{"solo", 2, "udp", Ipv4::parse("10.96.0.11"), 53, 0, 0, {{30, "dns", 53, 1, false}}};
  t.put(solo);
  auto names = [&](std::set<std::string> eps) {
    std::vector<std::string> out;
    for (const auto& v : t.with_backends_on(eps)) out.push_back(v.name);
    return out;
  };
  EXPECT_EQ(names({"web"}), std::vector<std::string>{"api"});
  EXPECT_EQ(names({"db", "dns"}).size(), 2u);
  EXPECT_TRUE(names({"other"}).empty());
  solo.backends.clear();
  t.put(solo);
  EXPECT_TRUE(names({"dns"}).empty());
  t.erase("api");
  EXPECT_TRUE(names({"web"}).empty());
}

// A row others edited is refused naming the service and the field.
TEST_F(ServiceTableTest, RefusesAnEditedRow) {
  {
    ServiceTable t(file(), ServiceTable::Mode::write);
    t.put(service("api", 1, "10.96.0.10"));
    t.commit();
  }
  const std::pair<const char*, const char*> edits[] = {
      {R"({"name":"api","id":1,"proto":"sctp","vip":"10.96.0.10","port":80,"node_port":0,"affinity_s":0,"backends":[]})",
       "service 'api': proto: "},
      {R"({"name":"api","id":1,"proto":"tcp","vip":"10.96.0.10","port":80,"node_port":0,"affinity_s":0,
          "backends":[{"id":4,"endpoint":"web","port":8080,"weight":0,"draining":false}]})",
       "service 'api': backends[0].weight: "},
      {R"({"name":"other","id":1,"proto":"tcp","vip":"10.96.0.10","port":80,"node_port":0,"affinity_s":0,"backends":[]})",
       "service 'api': name: "},
      {R"({"name":"api","id":1})", "service 'api': proto: is missing"},
      {"not json", "service 'api': "},
  };
  for (const auto& [row, says] : edits) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db, "UPDATE services SET record = ? WHERE name = 'api'", -1, &q, nullptr);
    sqlite3_bind_text(q, 1, row, -1, SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
    ServiceTable t(file(), ServiceTable::Mode::read);
    try {
      t.all();
      ADD_FAILURE() << row << ": loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::failed);
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
}

TEST_F(ServiceTableTest, ReplaceAllTakesEverythingAndTheCounters) {
  ServiceTable t(file(), ServiceTable::Mode::write);
  t.put(service("old", 1, "10.96.0.10"));
  t.replace_all({service("a", 1, "10.96.0.10"), service("b", 2, nullptr, 30001)}, {3, 40});
  t.commit();
  EXPECT_FALSE(t.get("old"));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.counters().next_backend, 40u);
  EXPECT_EQ(t.with_backends_on({"web"}).size(), 2u);
  EXPECT_EQ(t.key_count(), 2u);
  EXPECT_EQ(t.backend_count(), 4u);
  // A service rewritten (a drain, a backend) keeps its place in the list.
  ServiceRecord a = service("a", 1, "10.96.0.10");
  a.backends[0].draining = true;
  t.put(a);
  EXPECT_EQ(t.all().front().name, "a");
}

}  // namespace
}  // namespace ebpfnet
