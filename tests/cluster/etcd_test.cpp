// The etcd client and the registry's writes against a real etcd (sandboxed).
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "cluster_fixture.hpp"
#include "ebpfnet/cluster/etcd_client.hpp"
#include "ebpfnet/cluster/registry.hpp"

namespace ebpfnet::test {
namespace {

using namespace cluster;

TEST_F(EtcdTest, PutGetListAndCompareAndSwap) {
  EtcdClient c(etcd_->url());
  const std::string p = "/ebpfnet-test/" + cluster_ + "/";
  EXPECT_EQ(c.get(p + "none"), std::nullopt);
  const std::string binary("v\0\xff\n", 4);
  EXPECT_GT(c.put(p + "a", binary), 0);
  auto a = c.get(p + "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value, binary);
  EXPECT_EQ(a->version, 1);

  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 7; ++i) many.push_back({p + "m/" + std::to_string(i), std::to_string(i)});
  c.put_all(many, 3);
  RangeResult paged = c.list(p + "m/", 2);  // four pages, one revision
  ASSERT_EQ(paged.kvs.size(), 7u);
  EXPECT_EQ(paged.kvs[6].value, "6");
  EXPECT_GT(paged.revision, 0);

  KeyValue current;
  EXPECT_TRUE(c.create(p + "cas", "first"));
  EXPECT_FALSE(c.create(p + "cas", "second", 0, &current));
  EXPECT_EQ(current.value, "first");
  EXPECT_FALSE(c.replace(p + "cas", current.mod_revision + 100, "third"));
  EXPECT_TRUE(c.replace(p + "cas", current.mod_revision, "third"));
  EXPECT_EQ(c.get(p + "cas")->value, "third");
  EXPECT_EQ(c.erase(p + "cas"), 1);
  EXPECT_EQ(c.erase_prefix(p + "m/"), 7);
}

TEST_F(EtcdTest, LeasesKeepAndDropTheirKeys) {
  EtcdClient c(etcd_->url());
  const std::string k = "/ebpfnet-test/" + cluster_ + "/leased";
  const int64_t lease = c.lease_grant(5);
  c.put(k, "x", lease);
  EXPECT_EQ(c.get(k)->lease, lease);
  EXPECT_GT(c.lease_keepalive(lease), 0);
  c.lease_revoke(lease);
  EXPECT_EQ(c.get(k), std::nullopt);
  EXPECT_EQ(c.lease_keepalive(lease), 0);  // gone
  EXPECT_NO_THROW(c.lease_revoke(lease));  // revoking twice is fine
}

TEST_F(EtcdTest, ErrorsNameTheMemberThePathAndTheReason) {
  // A port in the sandbox where nothing listens.
  const std::string nobody = "http://" + etcd_->address() + ":2390";
  EtcdClient c(nobody);
  try {
    c.put("/k", "v");
    ADD_FAILURE() << "put to a closed port succeeded";
  } catch (const EtcdError& e) {
    EXPECT_EQ(e.kind(), EtcdError::Kind::unreachable);
    EXPECT_EQ(std::string(e.what()), "etcd " + nobody + " /v3/kv/put: connection refused");
  }
  EtcdClient real(etcd_->url());
  try {
    real.http().post("/v3/kv/range", {{"key", "not base64!"}});
    ADD_FAILURE() << "etcd accepted a bad key";
  } catch (const EtcdError& e) {
    EXPECT_EQ(e.kind(), EtcdError::Kind::etcd);
    EXPECT_NE(std::string(e.what()).find("/v3/kv/range: illegal base64"), std::string::npos) << e.what();
  }
}

TEST_F(EtcdTest, ConcurrentPoolAllocationsNeverCollide) {
  const ClusterConfig config{*Ipv4Cidr::parse("10.244.0.0/22"), 24};  // 4 pools
  {
    EtcdClient c(etcd_->url());
    Registry(c, cluster_).ensure_config(config);
  }
  constexpr int kNodes = 6;
  std::vector<std::optional<Ipv4Cidr>> got(kNodes);
  std::vector<std::string> errors(kNodes);
  {
    std::vector<std::jthread> threads;  // each inherits this thread's (sandbox) namespace
    for (int i = 0; i < kNodes; ++i)
      threads.emplace_back([&, i] {
        EtcdClient c(etcd_->url());
        Registry reg(c, cluster_);
        try {
          got[i] = reg.allocate_pool(config, "n" + std::to_string(i));
        } catch (const Error& e) {
          errors[i] = std::to_string(static_cast<int>(e.code())) + " " + e.what();
        }
      });
  }
  std::set<uint32_t> pools;
  int exhausted = 0;
  for (int i = 0; i < kNodes; ++i) {
    if (got[i]) {
      EXPECT_TRUE(pools.insert(got[i]->network.host()).second) << "pool given twice: " << got[i]->str();
      EXPECT_TRUE(config.cidr.contains(got[i]->network));
    } else {
      EXPECT_EQ(errors[i].rfind("5 ", 0), 0u) << errors[i];  // Errc::exhausted
      ++exhausted;
    }
  }
  EXPECT_EQ(pools.size(), 4u);
  EXPECT_EQ(exhausted, kNodes - 4);
  // Each owner's key says who owns it, and an owner asking again gets its own.
  EtcdClient c(etcd_->url());
  Registry reg(c, cluster_);
  for (int i = 0; i < kNodes; ++i)
    if (got[i]) {
      EXPECT_EQ(reg.allocate_pool(config, "n" + std::to_string(i)), *got[i]);
    }
}

TEST_F(EtcdTest, ASecondCidrIsRefused) {
  EtcdClient c(etcd_->url());
  Registry reg(c, cluster_);
  reg.ensure_config(ClusterConfig{*Ipv4Cidr::parse("10.244.0.0/16"), 24});
  EXPECT_EQ(reg.ensure_config(std::nullopt).cidr.str(), "10.244.0.0/16");
  try {
    reg.ensure_config(ClusterConfig{*Ipv4Cidr::parse("10.0.0.0/8"), 24});
    ADD_FAILURE() << "a second CIDR was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::usage);
    EXPECT_NE(std::string(e.what()).find("10.244.0.0/16"), std::string::npos) << e.what();
  }
  Registry other(c, unique("x"));
  try {
    other.ensure_config(std::nullopt);
    ADD_FAILURE() << "a cluster without configuration was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
  }
}

TEST_F(EtcdTest, ANodeNameIsRefusedWhileAnotherNodesLeaseLives) {
  EtcdClient c(etcd_->url());
  Registry reg(c, cluster_);
  const auto pool = *Ipv4Cidr::parse("10.244.1.0/24");
  const int64_t l1 = c.lease_grant(5);
  reg.register_node({"n1", *Ipv4::parse("198.18.0.11"), pool, std::nullopt, Mode::vxlan}, l1);
  const int64_t l2 = c.lease_grant(5);
  try {
    reg.register_node({"n1", *Ipv4::parse("198.18.0.99"), pool, std::nullopt, Mode::vxlan}, l2);
    ADD_FAILURE() << "a duplicate node name was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::exists);
    EXPECT_NE(std::string(e.what()).find("198.18.0.11"), std::string::npos) << e.what();
  }
  // The same node (same underlay) restarted before its old lease ran out takes its record over.
  reg.register_node({"n1", *Ipv4::parse("198.18.0.11"), pool, std::nullopt, Mode::vxlan}, l2);
  EXPECT_EQ(c.get(reg.keys().node("n1"))->lease, l2);
  c.lease_revoke(l1);  // the old lease no longer holds the record
  EXPECT_TRUE(c.get(reg.keys().node("n1")));
  c.lease_revoke(l2);
}

}  // namespace
}  // namespace ebpfnet::test
