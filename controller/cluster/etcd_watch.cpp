#include "ebpfnet/cluster/etcd_watch.hpp"

#include <condition_variable>
#include <mutex>

#include "ebpfnet/cluster/base64.hpp"

namespace ebpfnet::cluster {

using nlohmann::json;

std::vector<std::string> JsonObjectStream::feed(std::string_view chunk) {
  std::vector<std::string> out;
  for (const char c : chunk) {
    if (depth_ == 0) {
      if (c == '{') {
        depth_ = 1;
        buf_.assign(1, c);
        oversize_ = false;
      } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
        ++skipped_;
      }
      continue;
    }
    if (!oversize_) {
      buf_ += c;
      if (buf_.size() > max_) {
        oversize_ = true;
        ++dropped_;
        std::string().swap(buf_);
      }
    }
    if (in_string_) {
      if (escape_)
        escape_ = false;
      else if (c == '\\')
        escape_ = true;
      else if (c == '"')
        in_string_ = false;
      continue;
    }
    if (c == '"')
      in_string_ = true;
    else if (c == '{' || c == '[')
      ++depth_;
    else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        if (!oversize_) out.push_back(std::move(buf_));
        buf_.clear();
        oversize_ = false;
      }
    }
  }
  return out;
}

WatchMessage parse_watch_message(const EtcdHttp& http, const std::string& object) {
  const std::string path = "/v3/watch";
  return in_context(http, path, [&] {
    json j = json::parse(object, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw EtcdError(EtcdError::Kind::protocol, http.where(path) + ": a watch message that is not JSON");
    throw_if_etcd_error(http, path, j);
    if (!j.contains("result") || !j["result"].is_object())
      throw EtcdError(EtcdError::Kind::protocol, http.where(path) + ": a watch message without result");
    const json& r = j["result"];
    WatchMessage m;
    m.created = r.value("created", false);
    m.canceled = r.value("canceled", false);
    m.compact_revision = json_int(r, "compact_revision");
    m.cancel_reason =
        r.contains("cancel_reason") && r["cancel_reason"].is_string() ? r["cancel_reason"].get<std::string>() : "";
    if (r.contains("header")) m.revision = json_int(r["header"], "revision");
    if (r.contains("events")) {
      if (!r["events"].is_array())
        throw EtcdError(EtcdError::Kind::protocol, http.where(path) + ": events is not an array");
      for (const auto& e : r["events"]) {
        if (!e.is_object() || !e.contains("kv"))
          throw EtcdError(EtcdError::Kind::protocol, http.where(path) + ": an event without kv");
        WatchEvent ev;
        // The gateway leaves out enum zero: no "type" is a PUT.
        const std::string type = e.contains("type") && e["type"].is_string() ? e["type"].get<std::string>() : "PUT";
        if (type == "DELETE")
          ev.type = WatchEvent::Type::del;
        else if (type == "PUT")
          ev.type = WatchEvent::Type::put;
        else
          throw EtcdError(EtcdError::Kind::protocol, http.where(path) + ": unknown event type " + type);
        ev.kv = parse_kv(e["kv"]);
        m.events.push_back(std::move(ev));
      }
    }
    return m;
  });
}

int64_t watch_prefix(EtcdHttp& http, const std::string& prefix, int64_t start_revision,
                     const std::function<void(const std::vector<WatchEvent>&)>& on_events, std::stop_token stop,
                     const std::function<void()>& on_created) {
  const json req = {{"create_request",
                     {{"key", base64_encode(prefix)},
                      {"range_end", base64_encode(prefix_end(prefix))},
                      {"start_revision", std::to_string(start_revision)}}}};
  int64_t next = start_revision;
  JsonObjectStream split;
  const bool ended = http.stream(
      "/v3/watch", req,
      [&](std::string_view chunk) {
        for (const std::string& obj : split.feed(chunk)) {
          WatchMessage m = parse_watch_message(http, obj);
          if (m.compact_revision)
            throw EtcdError(EtcdError::Kind::etcd, http.where("/v3/watch") + ": revision " +
                                                       std::to_string(start_revision) + " was compacted (now " +
                                                       std::to_string(m.compact_revision) + ")");
          if (m.canceled)
            throw EtcdError(EtcdError::Kind::etcd, http.where("/v3/watch") + ": watch canceled" +
                                                       (m.cancel_reason.empty() ? "" : ": " + m.cancel_reason));
          if (m.created && on_created) on_created();
          if (!m.events.empty()) {
            on_events(m.events);
            next = std::max(next, m.events.back().kv.mod_revision + 1);
          }
        }
      },
      stop);
  if (ended) throw EtcdError(EtcdError::Kind::unreachable, http.where("/v3/watch") + ": the stream ended");
  return next;
}

void list_and_watch(EtcdClient& client, const std::string& prefix, const ListWatchHandlers& h, std::stop_token stop,
                    ListWatchOptions opts) {
  std::mutex mu;
  std::condition_variable_any cv;
  auto backoff = opts.backoff_min;
  while (!stop.stop_requested()) {
    try {
      RangeResult listed = client.list(prefix);
      h.on_list(listed);
      watch_prefix(client.http(), prefix, listed.revision + 1, h.on_events, stop, [&] {
        backoff = opts.backoff_min;  // connected: the next failure starts the backoff again
        if (h.on_watching) h.on_watching();
      });
    } catch (const std::exception& e) {
      if (stop.stop_requested()) return;
      if (h.on_error) h.on_error(e, backoff);
      std::unique_lock lock(mu);
      cv.wait_for(lock, stop, backoff, [] { return false; });
      backoff = std::min(backoff * 2, opts.backoff_max);
    }
  }
}

}  // namespace ebpfnet::cluster
