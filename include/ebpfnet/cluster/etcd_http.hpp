// POSTs JSON to one etcd member's JSON gateway (etcd 3.4: /v3/kv/range,
// /v3/lease/grant, /v3/watch, ...) over libcurl. One object per thread:
// it keeps its connection open between requests and is not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"

namespace ebpfnet::cluster {

struct HttpTimeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds request{3000};  // whole unary request; a watch has none
};

// Every failure names the member and the path: "etcd http://A:2379
// /v3/kv/put: connection refused". Exit code Errc::failed.
class EtcdError : public Error {
 public:
  enum class Kind {
    unreachable,  // no connection, reset, or no answer in time
    etcd,         // etcd answered with an error ({"error": ..., "code": N})
    protocol,     // an answer that is not what the gateway sends
  };
  EtcdError(Kind kind, const std::string& what, int etcd_code = 0)
      : Error(Errc::failed, what), kind_(kind), etcd_code_(etcd_code) {}
  Kind kind() const { return kind_; }
  int etcd_code() const { return etcd_code_; }  // gRPC code (5 not found, 9 failed precondition, ...)

 private:
  Kind kind_;
  int etcd_code_;
};

class EtcdHttp {
 public:
  // endpoint: "http://ADDR:PORT" (https is accepted; no proxy is ever used).
  explicit EtcdHttp(std::string endpoint, HttpTimeouts timeouts = {});
  ~EtcdHttp();
  EtcdHttp(const EtcdHttp&) = delete;
  EtcdHttp& operator=(const EtcdHttp&) = delete;

  // POSTs body to path and returns the parsed answer; throws EtcdError.
  nlohmann::json post(std::string_view path, const nlohmann::json& body);

  // POSTs body to path and hands every chunk of the answer to on_data as it
  // arrives, until the server ends it (returns true) or stop is requested
  // (returns false). Throws EtcdError when the connection fails, and
  // whatever on_data throws.
  bool stream(std::string_view path, const nlohmann::json& body,
              const std::function<void(std::string_view)>& on_data, std::stop_token stop);

  const std::string& endpoint() const { return endpoint_; }
  // "etcd http://A:2379 /v3/kv/put" for messages.
  std::string where(std::string_view path) const;

 private:
  struct Curl;
  std::string endpoint_;
  HttpTimeouts timeouts_;
  std::unique_ptr<Curl> curl_;
};

// Throws EtcdError(etcd) when answer is the gateway's error object.
void throw_if_etcd_error(const EtcdHttp& http, std::string_view path, const nlohmann::json& answer);

}  // namespace ebpfnet::cluster
