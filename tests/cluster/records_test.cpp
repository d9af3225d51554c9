// Records come from a store anyone with access can write: every hostile
// value is refused with a reason, never a crash. Also the key layout and the
// peer set's bookkeeping, without etcd.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ebpfnet/cluster/peers.hpp"
#include "ebpfnet/cluster/records.hpp"
#include "ebpfnet/cluster/registry.hpp"
#include "ebpfnet/error.hpp"

namespace ebpfnet::cluster {
namespace {

using nlohmann::json;

const ClusterConfig kConfig{*Ipv4Cidr::parse("10.244.0.0/16"), 24};

std::string good() {
  return R"({"name":"lab-2","underlay":"198.18.0.12","pool":"10.244.2.0/24","mode":"vxlan","vtep_mac":"02:00:00:00:00:02"})";
}

TEST(Records, RoundTrip) {
  NodeRecord r{"lab-2", *Ipv4::parse("198.18.0.12"), *Ipv4Cidr::parse("10.244.2.0/24"), parse_mac("02:00:00:00:00:02"),
               Mode::native};
  std::string why;
  auto back = decode_node(encode(r), &kConfig, &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, r);
  auto c = decode_config(encode(kConfig), &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(*c, kConfig);
  EXPECT_TRUE(decode_node(good(), &kConfig, &why)) << why;
}

TEST(Records, UnknownFieldsAreAccepted) {  // a newer agent may add some
  json j = json::parse(good());
  j["future"] = {{"x", 1}};
  std::string why;
  EXPECT_TRUE(decode_node(j.dump(), &kConfig, &why)) << why;
}

TEST(Records, HostileNodeRecordsAreRefusedWithAReason) {
  auto with = [](const char* field, json v) {
    json j = json::parse(good());
    if (v.is_discarded()) j.erase(field);
    else j[field] = v;
    return j.dump();
  };
  const json gone = json(json::value_t::discarded);
  const std::vector<std::string> bad = {
      "", "null", "[]", "42", "\"string\"", "{", "{\"name\":", std::string("{\0}", 3), "\xff\xfe{}",
      std::string(kMaxRecordBytes + 1, ' ') + good(),
      with("name", gone), with("name", 7), with("name", ""), with("name", "Lab-2"), with("name", "a/b"),
      with("name", "-x"), with("name", std::string(64, 'a')), with("name", "x\ny"), with("name", json::array()),
      with("underlay", gone), with("underlay", "0.0.0.0"), with("underlay", "127.0.0.1"),
      with("underlay", "224.0.0.1"), with("underlay", "255.255.255.255"), with("underlay", "999.1.1.1"),
      with("underlay", "1.2.3"), with("underlay", "::1"), with("underlay", 3232235521), with("underlay", nullptr),
      with("pool", gone), with("pool", "10.244.2.0/33"), with("pool", "10.244.2.1/24"), with("pool", "10.245.0.0/24"),
      with("pool", "10.244.0.0/16"), with("pool", "10.244.2.0/25"), with("pool", "0.0.0.0/0"), with("pool", true),
      with("mode", gone), with("mode", "geneve"), with("mode", "VXLAN"), with("mode", 1),
      with("vtep_mac", "01:00:5e:00:00:01"), with("vtep_mac", "zz:00:00:00:00:00"), with("vtep_mac", 5)};
  for (const auto& text : bad) {
    std::string why;
    EXPECT_EQ(decode_node(text, &kConfig, &why), std::nullopt) << printable(text);
    EXPECT_FALSE(why.empty()) << printable(text);
  }
}

TEST(Records, HostileConfigurationsAreRefused) {
  for (const char* text : {"{}", R"({"cidr":"10.0.0.0/8"})", R"({"cidr":"10.0.0.0/8","pool_prefix":"24"})",
                           R"({"cidr":"10.0.0.0/16","pool_prefix":8})", R"({"cidr":"10.0.0.0/16","pool_prefix":31})",
                           R"({"cidr":"10.0.0.0/16","pool_prefix":-1})", R"({"cidr":"0.0.0.0/0","pool_prefix":30})",
                           R"({"cidr":"10.0.0.1/16","pool_prefix":24})", R"({"cidr":"x","pool_prefix":24})"}) {
    std::string why;
    EXPECT_EQ(decode_config(text, &why), std::nullopt) << text;
    EXPECT_FALSE(why.empty()) << text;
  }
}

TEST(Records, PrintableEscapesControlBytes) {
  EXPECT_EQ(printable("a\nb\x01\\"), "a\\x0ab\\x01\\x5c");
  EXPECT_EQ(printable(std::string(100, 'x'), 10), "xxxxxxxxxx...");
}

TEST(Keys, Layout) {
  Keys k("lab");
  EXPECT_EQ(k.config(), "/ebpfnet/lab/config");
  EXPECT_EQ(k.node("lab-1"), "/ebpfnet/lab/nodes/lab-1");
  EXPECT_EQ(k.pool(*Ipv4Cidr::parse("10.244.3.0/24")), "/ebpfnet/lab/pools/10.244.3.0-24");
  EXPECT_EQ(k.pool_of("/ebpfnet/lab/pools/10.244.3.0-24"), Ipv4Cidr::parse("10.244.3.0/24"));
  EXPECT_EQ(k.pool_of("/ebpfnet/lab/pools/10.244.3.0/24"), std::nullopt);
  EXPECT_EQ(k.pool_of("/ebpfnet/lab/pools/010.244.3.0-24"), std::nullopt);
  EXPECT_EQ(k.pool_of("/ebpfnet/lab/pools/junk"), std::nullopt);
  EXPECT_EQ(k.node_of("/ebpfnet/lab/nodes/x"), "x");
  EXPECT_EQ(k.node_of("/ebpfnet/lab/nodes/"), std::nullopt);
  EXPECT_EQ(k.node_of("/ebpfnet/lab/config"), std::nullopt);
  for (const char* bad : {"", "Lab", "a/b", "-a", "a b", "../x"}) EXPECT_THROW(Keys{bad}, Error) << bad;
}

struct Recorder : PeerConsumer {
  std::vector<std::string> log;
  void peer_added(const NodeRecord& p) override { log.push_back("+" + p.name); }
  void peer_changed(const NodeRecord&, const NodeRecord& a) override { log.push_back("~" + a.name); }
  void peer_removed(const NodeRecord& p) override { log.push_back("-" + p.name); }
};

KeyValue node_kv(const std::string& name, int third, const std::string& underlay = "198.18.0.9") {
  NodeRecord r{name, *Ipv4::parse(underlay), Ipv4Cidr{Ipv4((10u << 24) | (244u << 16) | (third << 8)), 24},
               std::nullopt, Mode::vxlan};
  return {"/ebpfnet/lab/nodes/" + name, encode(r)};
}

TEST(PeerSet, ReconcileAndEvents) {
  Recorder rec;
  PeerSet set(Keys("lab"), "me", Ipv4Cidr::parse("10.244.0.0/24"), kConfig, rec);
  set.reconcile({node_kv("me", 0), node_kv("a", 1), node_kv("b", 2)});
  EXPECT_EQ(rec.log, (std::vector<std::string>{"+a", "+b"}));
  set.apply({{WatchEvent::Type::put, node_kv("c", 3)}, {WatchEvent::Type::put, node_kv("a", 1, "198.18.0.10")},
             {WatchEvent::Type::put, node_kv("b", 2)}, {WatchEvent::Type::del, {"/ebpfnet/lab/nodes/b"}},
             {WatchEvent::Type::del, {"/ebpfnet/lab/nodes/never"}}});
  EXPECT_EQ(rec.log, (std::vector<std::string>{"+a", "+b", "+c", "~a", "-b"}));
  // A re-list after an outage: c went, d came, a unchanged.
  set.reconcile({node_kv("a", 1, "198.18.0.10"), node_kv("d", 4)});
  EXPECT_EQ(rec.log, (std::vector<std::string>{"+a", "+b", "+c", "~a", "-b", "+d", "-c"}));
  EXPECT_EQ(set.snapshot().size(), 2u);
  EXPECT_EQ(set.ignored(), 0u);
}

TEST(PeerSet, HostileRecordsAreIgnoredAndCounted) {
  Recorder rec;
  PeerSet set(Keys("lab"), "me", Ipv4Cidr::parse("10.244.0.0/24"), kConfig, rec);
  set.reconcile({node_kv("a", 1)});
  KeyValue renamed = node_kv("x", 5);
  renamed.key = "/ebpfnet/lab/nodes/y";  // a record under another node's name
  KeyValue steals_pool = node_kv("s", 1);       // a's pool
  KeyValue steals_mine = node_kv("t", 0);       // this node's pool
  KeyValue bad_key = node_kv("u", 6);
  bad_key.key = "/ebpfnet/lab/nodes/U\n";
  set.apply({{WatchEvent::Type::put, renamed},
             {WatchEvent::Type::put, steals_pool},
             {WatchEvent::Type::put, steals_mine},
             {WatchEvent::Type::put, bad_key},
             {WatchEvent::Type::put, {"/ebpfnet/lab/nodes/z", "{not json"}},
             {WatchEvent::Type::put, {"/ebpfnet/lab/nodes/a", "garbage"}}});  // a's record became junk
  EXPECT_EQ(set.ignored(), 6u);
  EXPECT_EQ(rec.log, (std::vector<std::string>{"+a", "-a"}));
  EXPECT_TRUE(set.snapshot().empty());
}

}  // namespace
}  // namespace ebpfnet::cluster
