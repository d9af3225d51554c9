#include "ebpfnet/cluster/etcd_client.hpp"

#include "ebpfnet/cluster/base64.hpp"

namespace ebpfnet::cluster {
namespace {

using nlohmann::json;

constexpr int kGrpcNotFound = 5;

[[noreturn]] void malformed(const std::string& what) {
  throw EtcdError(EtcdError::Kind::protocol, "etcd answer: " + what);
}

std::string b64(const std::string& s) { return base64_encode(s); }

std::string unb64(const json& obj, const char* field) {
  if (!obj.contains(field)) return "";
  const json& v = obj[field];
  if (!v.is_string()) malformed(std::string(field) + " is not a string");
  auto d = base64_decode(v.get<std::string>());
  if (!d) malformed(std::string(field) + " is not base64");
  return *d;
}

json put_op(const std::string& key, const std::string& value, int64_t lease) {
  json p = {{"key", b64(key)}, {"value", b64(value)}};
  if (lease) p["lease"] = std::to_string(lease);
  return {{"request_put", p}};
}

}  // namespace

int64_t json_int(const json& obj, const char* field) {
  if (!obj.is_object() || !obj.contains(field)) return 0;
  const json& v = obj[field];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    try {
      size_t used = 0;
      const long long n = std::stoll(s, &used);
      if (used == s.size()) return n;
    } catch (const std::exception&) {
    }
  }
  malformed(std::string(field) + " is not an integer: " + v.dump());
}

std::string prefix_end(std::string p) {
  while (!p.empty()) {
    if (static_cast<unsigned char>(p.back()) < 0xff) {
      p.back() = static_cast<char>(static_cast<unsigned char>(p.back()) + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');  // every key
}

KeyValue parse_kv(const json& j) {
  if (!j.is_object()) malformed("kv is not an object");
  KeyValue kv;
  kv.key = unb64(j, "key");
  kv.value = unb64(j, "value");
  kv.create_revision = json_int(j, "create_revision");
  kv.mod_revision = json_int(j, "mod_revision");
  kv.version = json_int(j, "version");
  kv.lease = json_int(j, "lease");
  return kv;
}

EtcdClient::EtcdClient(std::string endpoint, HttpTimeouts timeouts) : http_(std::move(endpoint), timeouts) {}

std::optional<KeyValue> EtcdClient::get(const std::string& key) {
  return in_context(http_, "/v3/kv/range", [&]() -> std::optional<KeyValue> {
    json a = http_.post("/v3/kv/range", {{"key", b64(key)}});
    if (!a.contains("kvs") || !a["kvs"].is_array() || a["kvs"].empty()) return std::nullopt;
    return parse_kv(a["kvs"][0]);
  });
}

RangeResult EtcdClient::list(const std::string& prefix, int64_t page_size) {
  return in_context(http_, "/v3/kv/range", [&] {
    RangeResult r;
    const std::string end = prefix_end(prefix);
    std::string from = prefix;
    for (;;) {
      json req = {{"key", b64(from)}, {"range_end", b64(end)}, {"limit", std::to_string(page_size)}};
      if (r.revision) req["revision"] = std::to_string(r.revision);  // every page at the first one's revision
      json a = http_.post("/v3/kv/range", req);
      if (!r.revision) r.revision = json_int(a.value("header", json::object()), "revision");
      if (a.contains("kvs")) {
        if (!a["kvs"].is_array()) malformed("kvs is not an array");
        for (const auto& j : a["kvs"]) r.kvs.push_back(parse_kv(j));
      }
      if (!a.value("more", false) || r.kvs.empty()) return r;
      from = r.kvs.back().key + std::string(1, '\0');
    }
  });
}

int64_t EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) {
  return in_context(http_, "/v3/kv/put", [&] {
    json req = {{"key", b64(key)}, {"value", b64(value)}};
    if (lease) req["lease"] = std::to_string(lease);
    json a = http_.post("/v3/kv/put", req);
    return json_int(a.value("header", json::object()), "revision");
  });
}

void EtcdClient::put_all(const std::vector<std::pair<std::string, std::string>>& kvs, size_t batch) {
  for (size_t i = 0; i < kvs.size(); i += batch) {
    json ops = json::array();
    for (size_t j = i; j < std::min(kvs.size(), i + batch); ++j) ops.push_back(put_op(kvs[j].first, kvs[j].second, 0));
    http_.post("/v3/kv/txn", {{"success", ops}});
  }
}

bool EtcdClient::create(const std::string& key, const std::string& value, int64_t lease, KeyValue* current) {
  return in_context(http_, "/v3/kv/txn", [&] {
    json req = {{"compare", {{{"key", b64(key)}, {"result", "EQUAL"}, {"target", "CREATE"}, {"create_revision", "0"}}}},
                {"success", {put_op(key, value, lease)}},
                {"failure", {{{"request_range", {{"key", b64(key)}}}}}}};
    json a = http_.post("/v3/kv/txn", req);
    if (a.value("succeeded", false)) return true;
    if (current) {
      *current = KeyValue{};
      const json& rs = a.value("responses", json::array());
      if (!rs.empty() && rs[0].contains("response_range")) {
        const json& rr = rs[0]["response_range"];
        if (rr.contains("kvs") && rr["kvs"].is_array() && !rr["kvs"].empty()) *current = parse_kv(rr["kvs"][0]);
      }
    }
    return false;
  });
}

bool EtcdClient::replace(const std::string& key, int64_t mod_revision, const std::string& value, int64_t lease) {
  return in_context(http_, "/v3/kv/txn", [&] {
    json req = {
        {"compare",
         {{{"key", b64(key)}, {"result", "EQUAL"}, {"target", "MOD"}, {"mod_revision", std::to_string(mod_revision)}}}},
        {"success", {put_op(key, value, lease)}}};
    return http_.post("/v3/kv/txn", req).value("succeeded", false);
  });
}

int64_t EtcdClient::erase(const std::string& key) {
  return in_context(http_, "/v3/kv/deleterange", [&] {
    return json_int(http_.post("/v3/kv/deleterange", {{"key", b64(key)}}), "deleted");
  });
}

int64_t EtcdClient::erase_prefix(const std::string& prefix) {
  return in_context(http_, "/v3/kv/deleterange", [&] {
    return json_int(http_.post("/v3/kv/deleterange", {{"key", b64(prefix)}, {"range_end", b64(prefix_end(prefix))}}),
                    "deleted");
  });
}

int64_t EtcdClient::lease_grant(int64_t ttl_s) {
  return in_context(http_, "/v3/lease/grant", [&] {
    json a = http_.post("/v3/lease/grant", {{"TTL", std::to_string(ttl_s)}});
    if (a.contains("error") && a["error"].is_string() && !a["error"].get<std::string>().empty())
      throw EtcdError(EtcdError::Kind::etcd, http_.where("/v3/lease/grant") + ": " + a["error"].get<std::string>());
    const int64_t id = json_int(a, "ID");
    if (!id) malformed("lease grant without an ID");
    return id;
  });
}

int64_t EtcdClient::lease_keepalive(int64_t id) {
  return in_context(http_, "/v3/lease/keepalive", [&] {
    json a = http_.post("/v3/lease/keepalive", {{"ID", std::to_string(id)}});
    // A single request on the gateway's stream: {"result": {"ID", "TTL"}}; no TTL: the lease is gone.
    const json& r = a.contains("result") ? a["result"] : a;
    return json_int(r, "TTL");
  });
}

int64_t EtcdClient::lease_ttl(int64_t id) {
  return in_context(http_, "/v3/lease/timetolive", [&]() -> int64_t {
    json a = http_.post("/v3/lease/timetolive", {{"ID", std::to_string(id)}});
    // etcd answers a lease that expired or never was with TTL -1 (or none).
    if (!a.contains("TTL")) return -1;
    return json_int(a, "TTL");
  });
}

void EtcdClient::lease_revoke(int64_t id) {
  try {
    http_.post("/v3/lease/revoke", {{"ID", std::to_string(id)}});
  } catch (const EtcdError& e) {
    if (e.kind() == EtcdError::Kind::etcd && e.etcd_code() == kGrpcNotFound) return;
    throw;
  }
}

}  // namespace ebpfnet::cluster
