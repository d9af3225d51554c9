// The wire formats: base64, the watch stream's concatenated JSON objects and
// its messages. No etcd needed.
#include <gtest/gtest.h>

#include <random>

#include "ebpfnet/cluster/base64.hpp"
#include "ebpfnet/cluster/etcd_watch.hpp"

namespace ebpfnet::cluster {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (auto [plain, enc] : v) {
    EXPECT_EQ(base64_encode(plain), enc);
    EXPECT_EQ(base64_decode(enc), std::optional<std::string>(plain));
  }
  EXPECT_EQ(base64_encode("/t/a"), "L3QvYQ==");  // what etcd's gateway sent for /t/a
}

TEST(Base64, EveryByteRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    const std::string s = all.substr(0, n) + std::string(1, '\0');
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  }
}

TEST(Base64, RefusesWhatIsNotBase64) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "====", "Zm9v!A==", "Zm=v", "Zg==Zg==", "Zm9v\n", "Zm9-",
                          "Zm9_", "=Zm9"})
    EXPECT_EQ(base64_decode(bad), std::nullopt) << bad;
}

TEST(JsonObjectStream, ObjectsSplitAtEveryByte) {
  const std::string a = R"({"result":{"header":{"revision":"2"},"created":true}})";
  const std::string b = R"({"result":{"events":[{"kv":{"key":"e30=","value":"In0ie1wi"}}],"s":"}{\"]"}})";
  const std::string stream = a + "\n" + b + "\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    JsonObjectStream split;
    auto first = split.feed(std::string_view(stream).substr(0, cut));
    auto second = split.feed(std::string_view(stream).substr(cut));
    first.insert(first.end(), second.begin(), second.end());
    ASSERT_EQ(first.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(first[0], a);
    EXPECT_EQ(first[1], b);
    EXPECT_EQ(split.skipped_bytes(), 0u);
    EXPECT_EQ(split.buffered(), 0u);
  }
}

TEST(JsonObjectStream, OneByteAtATime) {
  const std::string stream = R"({"a":"\\"}{"b":[1,{"c":"\"}"}]}  {})";
  JsonObjectStream split;
  std::vector<std::string> got;
  for (char c : stream)
    for (auto& o : split.feed(std::string_view(&c, 1))) got.push_back(o);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], R"({"a":"\\"})");
  EXPECT_EQ(got[1], R"({"b":[1,{"c":"\"}"}]})");
  EXPECT_EQ(got[2], "{}");
}

TEST(JsonObjectStream, GarbageBetweenObjectsIsSkippedAndCounted) {
  JsonObjectStream split;
  auto got = split.feed("HTTP/1.1 junk]]]\x01\x02{\"x\":1}garbage{\"y\":2}");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], R"({"x":1})");
  EXPECT_EQ(got[1], R"({"y":2})");
  EXPECT_GT(split.skipped_bytes(), 10u);
}

TEST(JsonObjectStream, AnOversizedObjectIsDroppedAndTheStreamResyncs) {
  JsonObjectStream split(64);
  auto got = split.feed("{\"big\":\"" + std::string(500, 'x') + "\"}{\"ok\":true}");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], R"({"ok":true})");
  EXPECT_EQ(split.dropped_objects(), 1u);
}

TEST(JsonObjectStream, RandomBytesNeverCrashOrGrowWithoutBound) {
  std::mt19937 rng(13);
  JsonObjectStream split(4096);
  for (int round = 0; round < 200; ++round) {
    std::string chunk(1 + rng() % 512, '\0');
    for (char& c : chunk) c = static_cast<char>("{}[]\"\\ax: \n"[rng() % 11]);
    split.feed(chunk);
    EXPECT_LE(split.buffered(), 4097u);
  }
}

TEST(WatchMessage, ParsesWhatTheGatewaySends) {
  EtcdHttp http("http://198.18.0.1:2379");  // names the member in errors; never connects here
  auto created = parse_watch_message(
      http, R"({"result":{"header":{"cluster_id":"1","revision":"2","raft_term":"2"},"created":true}})");
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.revision, 2);
  // A PUT has no "type" (the gateway leaves out enum zero); a DELETE has no value.
  auto events = parse_watch_message(http, R"({"result":{"header":{"revision":"3"},"events":[
      {"kv":{"key":"L3QvYQ==","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8=","lease":"77"}},
      {"type":"DELETE","kv":{"key":"L3QvYQ==","mod_revision":"3"}}]}})");
  ASSERT_EQ(events.events.size(), 2u);
  EXPECT_EQ(events.events[0].type, WatchEvent::Type::put);
  EXPECT_EQ(events.events[0].kv.key, "/t/a");
  EXPECT_EQ(events.events[0].kv.value, "hello");
  EXPECT_EQ(events.events[0].kv.lease, 77);
  EXPECT_EQ(events.events[1].type, WatchEvent::Type::del);
  EXPECT_EQ(events.events[1].kv.mod_revision, 3);
  auto compacted = parse_watch_message(
      http, R"({"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"3"}})");
  EXPECT_TRUE(compacted.canceled);
  EXPECT_EQ(compacted.compact_revision, 3);
}

TEST(WatchMessage, RefusesMalformedMessagesWithContext) {
  EtcdHttp http("http://198.18.0.1:2379");
  for (const char* bad : {"not json", "[]", R"({"nothing":1})", R"({"result":{"events":{}}})",
                          R"({"result":{"events":[{"kv":{"key":"%%%"}}]}})",
                          R"({"result":{"events":[{"type":"EXPLODE","kv":{}}]}})",
                          R"({"result":{"header":{"revision":"12ab"}}})", R"({"result":{"events":[7]}})"}) {
    try {
      parse_watch_message(http, bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const EtcdError& e) {
      EXPECT_EQ(e.kind(), EtcdError::Kind::protocol) << bad;
      EXPECT_NE(std::string(e.what()).find("etcd http://198.18.0.1:2379"), std::string::npos) << e.what();
    }
  }
  try {
    parse_watch_message(http, R"({"error":"etcdserver: mvcc: required revision has been compacted","code":11})");
    ADD_FAILURE() << "accepted an error";
  } catch (const EtcdError& e) {
    EXPECT_EQ(e.kind(), EtcdError::Kind::etcd);
    EXPECT_EQ(e.etcd_code(), 11);
    EXPECT_NE(std::string(e.what()).find("compacted"), std::string::npos);
  }
  try {  // what the gateway puts in a watch stream when etcd goes away
    parse_watch_message(http, R"({"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}})");
    ADD_FAILURE() << "accepted an error";
  } catch (const EtcdError& e) {
    EXPECT_EQ(e.etcd_code(), 14);
    EXPECT_EQ(std::string(e.what()), "etcd http://198.18.0.1:2379 /v3/watch: transport is closing");
  }
}

TEST(PrefixEnd, IsTheFirstKeyPastThePrefix) {
  EXPECT_EQ(prefix_end("/ebpfnet/a/"), "/ebpfnet/a0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

}  // namespace
}  // namespace ebpfnet::cluster
