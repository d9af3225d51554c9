// The endpoint table: one row per endpoint, its constraints, its order, its
// transactions shared with the services table, and rows others edited
// refused by field.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "ebpfnet/endpoint_table.hpp"
#include "ebpfnet/error.hpp"
#include "ebpfnet/service_table.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

const Ipv4Cidr kPool = *Ipv4Cidr::parse("10.240.0.0/24");

EndpointRecord endpoint(const std::string& name, int n) {
  EndpointRecord e;
  e.name = name;
  e.netns = name;
  e.netns_path = "/run/netns/" + name;
  e.netns_owned = true;
  e.ip = Ipv4(kPool.network.host() + 1 + static_cast<uint32_t>(n));
  e.mac = *parse_mac("02:00:00:00:00:01");
  e.host_ifname = "ep-" + name;
  e.host_ifindex = 100 + n;
  e.host_mac = *parse_mac("02:00:00:00:01:01");
  e.netns_cookie = 4096 + static_cast<uint64_t>(n);
  return e;
}

class EndpointTableTest : public testing::Test {
 protected:
  std::filesystem::path file() const { return dir_.path() / "services.db"; }
  EndpointTable table(NodeDb::Mode mode) const { return EndpointTable(std::make_shared<NodeDb>(file(), mode), kPool); }
  test::TempStateDir dir_;
};

TEST_F(EndpointTableTest, KeepsWhatWasCommittedInOrder) {
  {
    EndpointTable t = table(NodeDb::Mode::write);
    EndpointRecord web = endpoint("web", 1);
    web.container_id = "c1";
    web.policy = Policy{};
    web.policy_ids = {{1, 2}, {1, 3}};
    t.put(web);
    t.put(endpoint("db", 2));
    t.put(endpoint("cache", 3));
    t.commit();
  }
  EndpointTable t = table(NodeDb::Mode::read);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.policed(), 1u);
  auto web = t.get("web");
  ASSERT_TRUE(web);
  EXPECT_EQ(web->ip.str(), "10.240.0.2");
  EXPECT_EQ(web->host_ifindex, 101);
  EXPECT_EQ(web->netns_cookie, 4097u);
  EXPECT_TRUE(web->policy);
  EXPECT_EQ(web->policy_ids.first_class[1], 3u);
  EXPECT_FALSE(t.get("nope"));
  EXPECT_TRUE(t.contains("db"));
  EXPECT_EQ(t.of_container("c1", "eth0")->name, "web");
  EXPECT_FALSE(t.of_container("c1", "eth1"));
  EXPECT_FALSE(t.of_container("", "eth0")) << "endpoints without a container are no runtime's";
  EXPECT_EQ(t.in_netns(4098), std::vector<std::string>{"db"});
  EXPECT_EQ(t.addresses().size(), 3u);
  std::vector<std::string> order;
  t.for_each([&](const EndpointRecord& e) { order.push_back(e.name); });
  EXPECT_EQ(order, (std::vector<std::string>{"web", "db", "cache"}));
}

TEST_F(EndpointTableTest, AChangedEndpointKeepsItsPlace) {
  EndpointTable t = table(NodeDb::Mode::write);
  t.put(endpoint("web", 1));
  t.put(endpoint("db", 2));
  EndpointRecord web = endpoint("web", 1);
  web.policy = Policy{};
  t.put(web);
  EXPECT_EQ(t.all().front().name, "web");
  EXPECT_EQ(t.policed(), 1u);
  EXPECT_EQ(t.size(), 2u);
  t.erase("web");
  t.erase("never");
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.policed(), 0u);
}

TEST_F(EndpointTableTest, AddressesAndVethsAreUnique) {
  EndpointTable t = table(NodeDb::Mode::write);
  t.put(endpoint("web", 1));
  auto refused = [&](EndpointRecord e) {
    try {
      t.put(e);
      ADD_FAILURE() << e.name << " was put";
    } catch (const Error& x) {
      EXPECT_EQ(x.code(), Errc::exists) << x.what();
    }
  };
  EndpointRecord same_ip = endpoint("other", 2);
  same_ip.ip = endpoint("web", 1).ip;
  refused(same_ip);
  EndpointRecord same_veth = endpoint("other", 2);
  same_veth.host_ifname = "ep-web";
  refused(same_veth);
  EndpointRecord same_ifindex = endpoint("other", 2);
  same_ifindex.host_ifindex = 101;
  refused(same_ifindex);
  EXPECT_EQ(t.size(), 1u);
}

TEST_F(EndpointTableTest, AMissingTableReadsEmpty) {
  EndpointTable t = table(NodeDb::Mode::read);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_TRUE(t.all().empty());
  EXPECT_FALSE(t.get("web"));
  EXPECT_FALSE(std::filesystem::exists(file()));
}

// Endpoints and services share one database and one transaction: an
// operation that changes both commits both or neither.
TEST_F(EndpointTableTest, OneTransactionWithTheServices) {
  {
    auto db = std::make_shared<NodeDb>(file(), NodeDb::Mode::write);
    EndpointTable eps(db, kPool);
    ServiceTable svcs(db);
    eps.put(endpoint("web", 1));
    svcs.put({"api", 1, "tcp", Ipv4::parse("10.96.0.10"), 80, 0, 0, {{1, "web", 8080, 1, false}}});
    db->commit();
    eps.erase("web");
    svcs.erase("api");
  }  // closed uncommitted: both roll back
  auto db = std::make_shared<NodeDb>(file(), NodeDb::Mode::read);
  EXPECT_TRUE(EndpointTable(db, kPool).get("web"));
  EXPECT_TRUE(ServiceTable(db).get("api"));
}

// A database of layout 1 (services only, as schema 7 nodes have it) gains
// the endpoint table when opened for writing, and keeps its services.
TEST_F(EndpointTableTest, ALayout1DatabaseGainsTheTable) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE services(name TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE, vip_key TEXT "
                           "UNIQUE, node_port_key TEXT UNIQUE, keys INTEGER NOT NULL, backends INTEGER NOT NULL, "
                           "record TEXT NOT NULL); PRAGMA user_version=1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto db = std::make_shared<NodeDb>(file(), NodeDb::Mode::write);
  EndpointTable t(db, kPool);
  t.put(endpoint("web", 1));
  db->commit();
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(ServiceTable(db).size(), 0u);
}

// A row others edited is refused naming the endpoint and the field.
TEST_F(EndpointTableTest, RefusesAnEditedRow) {
  {
    EndpointTable t = table(NodeDb::Mode::write);
    t.put(endpoint("web", 1));
    t.commit();
  }
  const std::pair<std::string, const char*> edits[] = {
      {R"("ip":"10.250.0.2")", "endpoint 'web': ip: "},
      {R"("ip":"10.240.0.1")", "endpoint 'web': ip: "},
      {R"("host_ifindex":0)", "endpoint 'web': host_ifindex: "},
      {R"("netns_path":"run/x")", "endpoint 'web': netns_path: "},
      {R"("name":"other")", "endpoint 'web': name: "},
      {R"("tc_mode":"xdp")", "endpoint 'web': tc_mode: "},
  };
  for (const auto& [field, says] : edits) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    // The field replaced in the stored JSON, as an editor would.
    const std::string key = field.substr(0, field.find(':'));
    const std::string sql = "UPDATE endpoints SET record = json_set(record, '$." + key.substr(1, key.size() - 2) +
                            "', json_extract('{" + field + "}', '$." + key.substr(1, key.size() - 2) + "'))";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, "SAVEPOINT edit", nullptr, nullptr, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    ASSERT_EQ(sqlite3_exec(db, "RELEASE edit", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    try {
      table(NodeDb::Mode::read).all();
      ADD_FAILURE() << field << ": loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::failed);
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
    // Put back for the next edit.
    EndpointTable t = table(NodeDb::Mode::write);
    t.replace_all({endpoint("web", 1)});
    t.commit();
  }
}

TEST_F(EndpointTableTest, ReplaceAllTakesEverything) {
  EndpointTable t = table(NodeDb::Mode::write);
  t.put(endpoint("old", 1));
  t.replace_all({endpoint("a", 1), endpoint("b", 2)});
  t.commit();
  EXPECT_FALSE(t.get("old"));
  EXPECT_EQ(t.size(), 2u);
}

}  // namespace
}  // namespace ebpfnet
