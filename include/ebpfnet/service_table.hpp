// The services of a node: one row each in <node>/services.db (SQLite), read
// and written one at a time, so that adding or removing a service costs the
// same beside 10 services as beside 10,000. Unique names, ids, virtual IP
// ports and node ports are the table's constraints; a second table indexes
// backends by endpoint, for the services an endpoint's removal changes.
//
// The table lives in the node's database (node_db.hpp), whose transaction
// its writes join.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/node_db.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet {

class ServiceTable {
 public:
  using Mode = NodeDb::Mode;
  // The table of an open database.
  explicit ServiceTable(std::shared_ptr<NodeDb> db) : db_(std::move(db)) {}
  // Opens the database file (StateStore::checked_path("services.db")) for
  // this table alone.
  ServiceTable(const std::filesystem::path& file, Mode mode) : db_(std::make_shared<NodeDb>(file, mode)) {}

  // Errc::failed naming the row and field when a row is not what ebpfnet
  // writes (the file may have been edited).
  std::optional<ServiceRecord> get(std::string_view name);
  std::vector<ServiceRecord> all();
  // The service holding vip:port/proto, or the node port port/proto.
  std::optional<std::string> at_vip(Ipv4 vip, uint16_t port, std::string_view proto);
  std::optional<std::string> at_node_port(uint16_t port, std::string_view proto);
  // Services with a backend on any of these endpoints.
  std::vector<ServiceRecord> with_backends_on(const std::set<std::string>& endpoints);
  size_t size();
  size_t key_count();      // svc map keys: virtual IP ports and node ports
  size_t backend_count();
  bool any_vip();
  ServiceIdCounters counters();

  // Inserts or replaces the service of that name; Errc::exists when its id,
  // virtual IP port or node port is another service's.
  void put(const ServiceRecord& v);
  void erase(std::string_view name);
  void set_counters(const ServiceIdCounters& c);
  // Replaces every service and the counters (moving a schema-6 state in).
  void replace_all(const std::vector<ServiceRecord>& services, const ServiceIdCounters& c);

  void commit() { db_->commit(); }

 private:
  using Statement = NodeDb::Statement;
  Statement prepare(const char* sql) { return db_->prepare(sql); }
  std::vector<ServiceRecord> records(Statement& q);
  size_t total(const char* name);
  void add_totals(int64_t services, int64_t keys, int64_t backends);

  std::shared_ptr<NodeDb> db_;
};

}  // namespace ebpfnet
