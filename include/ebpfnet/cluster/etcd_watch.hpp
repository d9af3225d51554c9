// etcd's watch over the JSON gateway: POST /v3/watch answers with an
// endless stream of JSON objects ({"result": {...}}), split across reads in
// any way. Also the list-then-watch loop every watcher needs: list the
// prefix, watch from the list's revision + 1, and on any failure start again
// with a re-list, backing off while etcd does not answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/cluster/etcd_client.hpp"

namespace ebpfnet::cluster {

// Splits a byte stream of concatenated JSON objects into whole objects.
// Bytes outside an object other than whitespace are skipped and counted; an
// object larger than max_object is dropped (counted) and the stream resyncs
// at the next top-level '{'.
class JsonObjectStream {
 public:
  explicit JsonObjectStream(size_t max_object = 64u << 20) : max_(max_object) {}
  std::vector<std::string> feed(std::string_view chunk);
  size_t skipped_bytes() const { return skipped_; }
  size_t dropped_objects() const { return dropped_; }
  size_t buffered() const { return buf_.size(); }

 private:
  size_t max_;
  std::string buf_;  // the object being read (starts with '{' when depth_ > 0)
  int depth_ = 0;
  bool in_string_ = false, escape_ = false, oversize_ = false;
  size_t skipped_ = 0, dropped_ = 0;
};

struct WatchEvent {
  enum class Type { put, del } type = Type::put;
  KeyValue kv;
};

// One object of the watch stream, parsed.
struct WatchMessage {
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // the start revision was compacted: re-list
  int64_t revision = 0;          // header revision
  std::string cancel_reason;
  std::vector<WatchEvent> events;
};
// Throws EtcdError: protocol for a malformed object, etcd for an error object.
WatchMessage parse_watch_message(const EtcdHttp& http, const std::string& object);

// Watches every key under prefix from start_revision, handing each batch of
// events to on_events, until stop (returns normally) or the stream ends or
// fails (throws EtcdError; a compacted start revision is an EtcdError of
// kind etcd). Returns the revision to resume from.
int64_t watch_prefix(EtcdHttp& http, const std::string& prefix, int64_t start_revision,
                     const std::function<void(const std::vector<WatchEvent>&)>& on_events,
                     std::stop_token stop, const std::function<void()>& on_created = {});

struct ListWatchOptions {
  std::chrono::milliseconds backoff_min{200};
  std::chrono::milliseconds backoff_max{5000};
};

struct ListWatchHandlers {
  std::function<void(const RangeResult&)> on_list;                   // a full, consistent list
  std::function<void(const std::vector<WatchEvent>&)> on_events;     // changes after it
  std::function<void(const std::exception&, std::chrono::milliseconds retry_in)> on_error;
  std::function<void()> on_watching;                                 // the watch is established
};

// List, then watch from the list's revision + 1; on failure back off (doubling
// from backoff_min to backoff_max) and start again with a list. Returns when
// stop is requested. Handlers run on the calling thread.
void list_and_watch(EtcdClient& client, const std::string& prefix, const ListWatchHandlers& h,
                    std::stop_token stop, ListWatchOptions opts = {});

}  // namespace ebpfnet::cluster
