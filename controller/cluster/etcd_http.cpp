#include "ebpfnet/cluster/etcd_http.hpp"

#include <curl/curl.h>

#include <cctype>
#include <cstring>
#include <exception>
#include <mutex>

namespace ebpfnet::cluster {
namespace {

constexpr size_t kMaxAnswer = 256u << 20;  // a unary answer larger than this is refused

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

struct EtcdHttp::Curl {
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  // Per request:
  std::function<void(std::string_view)> sink;
  std::exception_ptr sink_error;

  ~Curl() {
    if (multi) curl_multi_cleanup(multi);
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
  }

  static size_t write(char* data, size_t size, size_t n, void* self) {
    auto* c = static_cast<Curl*>(self);
    try {
      c->sink(std::string_view(data, size * n));
      return size * n;
    } catch (...) {
      c->sink_error = std::current_exception();
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
  }
};

EtcdHttp::EtcdHttp(std::string endpoint, HttpTimeouts timeouts)
    : endpoint_(std::move(endpoint)), timeouts_(timeouts), curl_(std::make_unique<Curl>()) {
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  if (endpoint_.rfind("http://", 0) != 0 && endpoint_.rfind("https://", 0) != 0)
    throw Error(Errc::usage, "etcd endpoint '" + endpoint_ + "': expected http://ADDR:PORT (e.g. http://10.0.0.1:2379)");
  global_init();
  curl_->easy = curl_easy_init();
  curl_->multi = curl_multi_init();
  if (!curl_->easy || !curl_->multi) throw Error(Errc::failed, "libcurl: cannot create a handle");
  curl_->headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_->headers = curl_slist_append(curl_->headers, "Expect:");  // no 100-continue round trip
}

EtcdHttp::~EtcdHttp() = default;

std::string EtcdHttp::where(std::string_view path) const {
  return "etcd " + endpoint_ + " " + std::string(path);
}

bool EtcdHttp::stream(std::string_view path, const nlohmann::json& body,
                      const std::function<void(std::string_view)>& on_data, std::stop_token stop) {
  CURL* e = curl_->easy;
  curl_easy_reset(e);
  const std::string url = endpoint_ + std::string(path);
  const std::string payload = body.dump();
  const bool unary = !stop.stop_possible();
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_PROXY, "");  // never through a proxy from the environment
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, curl_->headers);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeouts_.connect.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, unary ? static_cast<long>(timeouts_.request.count()) : 0L);
  // A watch is idle for long: keepalive probes notice a member that vanished.
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 2L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curl_->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Curl::write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, curl_.get());
  curl_->errbuf[0] = 0;
  curl_->sink = on_data;
  curl_->sink_error = nullptr;

  CURLM* m = curl_->multi;
  curl_multi_add_handle(m, e);
  bool stopped = false;
  CURLcode rc = CURLE_OK;
  {
    std::stop_callback wake(stop, [m] { curl_multi_wakeup(m); });
    int running = 1;
    for (;;) {
      curl_multi_perform(m, &running);
      if (!running) break;
      if (stop.stop_requested()) {
        stopped = true;
        break;
      }
      curl_multi_poll(m, nullptr, 0, 1000, nullptr);
    }
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &left))
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) rc = msg->data.result;
  }
  curl_multi_remove_handle(m, e);
  curl_->sink = nullptr;
  if (curl_->sink_error) std::rethrow_exception(curl_->sink_error);
  if (stopped) return false;

  if (rc != CURLE_OK) {
    std::string why;
    if (rc == CURLE_COULDNT_CONNECT) {
      long os = 0;
      curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os);
      why = os ? lower_first(std::strerror(static_cast<int>(os))) : "could not connect";
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      why = "no answer within " +
            std::to_string((unary ? timeouts_.request : timeouts_.connect).count()) + " ms";
    } else {
      why = curl_->errbuf[0] ? lower_first(curl_->errbuf) : lower_first(curl_easy_strerror(rc));
    }
    throw EtcdError(EtcdError::Kind::unreachable, where(path) + ": " + why);
  }
  return true;
}

nlohmann::json EtcdHttp::post(std::string_view path, const nlohmann::json& body) {
  std::string answer;
  stream(
      path, body,
      [&](std::string_view chunk) {
        if (answer.size() + chunk.size() > kMaxAnswer)
          throw EtcdError(EtcdError::Kind::protocol, where(path) + ": answer larger than " +
                                                         std::to_string(kMaxAnswer >> 20) + " MiB");
        answer.append(chunk);
      },
      std::stop_token{});
  long status = 0;
  curl_easy_getinfo(curl_->easy, CURLINFO_RESPONSE_CODE, &status);
  nlohmann::json j = nlohmann::json::parse(answer, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::string head = answer.substr(0, 80);
    for (char& c : head)
      if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
    throw EtcdError(EtcdError::Kind::protocol, where(path) + ": HTTP " + std::to_string(status) +
                                                   ", not a JSON object: '" + head + "'");
  }
  throw_if_etcd_error(*this, path, j);
  if (status != 200)
    throw EtcdError(EtcdError::Kind::protocol, where(path) + ": HTTP " + std::to_string(status));
  return j;
}

void throw_if_etcd_error(const EtcdHttp& http, std::string_view path, const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("error")) return;
  // Unary calls: {"error": "...", "message": "...", "code": N}; a stream's
  // error: {"error": {"grpc_code": N, "http_code": N, "message": "..."}}.
  const nlohmann::json& err = j["error"];
  const nlohmann::json& where = err.is_object() ? err : j;
  std::string msg = where.contains("message") && where["message"].is_string() ? where["message"].get<std::string>() : "";
  if (msg.empty() && err.is_string()) msg = err.get<std::string>();
  if (msg.empty()) msg = err.dump();
  const char* code_field = err.is_object() ? "grpc_code" : "code";
  const int code = where.contains(code_field) && where[code_field].is_number_integer() ? where[code_field].get<int>() : 0;
  throw EtcdError(EtcdError::Kind::etcd, http.where(path) + ": " + msg, code);
}

}  // namespace ebpfnet::cluster
