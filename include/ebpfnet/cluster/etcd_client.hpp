// etcd's key-value and lease API over the JSON gateway: range (paged),
// put, compare-and-swap transactions, delete, leases. Keys and values are
// bytes (base64 on the wire); revisions and lease ids are etcd's int64s.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ebpfnet/cluster/etcd_http.hpp"

namespace ebpfnet::cluster {

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;  // the store's revision the answer is consistent with
};

// The key just past every key that starts with prefix (etcd's range_end).
std::string prefix_end(std::string prefix);

// A KeyValue from the gateway's JSON; throws EtcdError(protocol) when malformed.
KeyValue parse_kv(const nlohmann::json& j);
// An int64 the gateway sends as a string ("42"), a number, or omits (0).
int64_t json_int(const nlohmann::json& obj, const char* field);

// Runs f, which parses an answer of http at path; a malformed answer's error
// gains the member and path ("etcd http://A:2379 /v3/kv/range: kvs is not an array").
template <class F>
auto in_context(const EtcdHttp& http, std::string_view path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const EtcdError& e) {
    constexpr std::string_view tag = "etcd answer: ";
    const std::string what = e.what();
    if (e.kind() != EtcdError::Kind::protocol || what.rfind(tag, 0) != 0) throw;
    throw EtcdError(e.kind(), http.where(path) + ": " + what.substr(tag.size()));
  }
}

class EtcdClient {
 public:
  explicit EtcdClient(std::string endpoint, HttpTimeouts timeouts = {});

  std::optional<KeyValue> get(const std::string& key);
  // Every key under prefix, read at one revision in pages of page_size.
  RangeResult list(const std::string& prefix, int64_t page_size = 1000);
  // Returns the revision of the write.
  int64_t put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Writes many keys, at most batch per transaction (etcd's --max-txn-ops is 128).
  void put_all(const std::vector<std::pair<std::string, std::string>>& kvs, size_t batch = 100);
  // Creates key only if it does not exist (create_revision == 0): true when
  // created. When it exists, *current (if given) receives it.
  bool create(const std::string& key, const std::string& value, int64_t lease = 0,
              KeyValue* current = nullptr);
  // Replaces key only if its mod_revision is still mod_revision.
  bool replace(const std::string& key, int64_t mod_revision, const std::string& value, int64_t lease = 0);
  // Returns how many keys went.
  int64_t erase(const std::string& key);
  int64_t erase_prefix(const std::string& prefix);

  // A lease of ttl seconds; returns its id.
  int64_t lease_grant(int64_t ttl_s);
  // Renews the lease; returns its TTL, or 0 when the lease no longer exists.
  int64_t lease_keepalive(int64_t id);
  // Seconds the lease has left; -1 when it no longer exists.
  int64_t lease_ttl(int64_t id);
  // Revokes the lease and deletes its keys; a lease already gone is fine.
  void lease_revoke(int64_t id);

  EtcdHttp& http() { return http_; }

 private:
  EtcdHttp http_;
};

}  // namespace ebpfnet::cluster
