// The endpoints of a node: one row each in the node's database
// (node_db.hpp), read and written one at a time, so that adding or removing
// an endpoint, or finding one, costs the same beside 10 endpoints as beside
// 10,000, and a listing streams rows instead of holding them all. A row is
// the endpoint's record as JSON (endpoint_json.hpp: the layout state files
// of schema 7 and older used), beside columns for what is looked up or must
// be unique: the name, the address, the node-side veth's name and index.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ebpfnet/node_db.hpp"
#include "ebpfnet/state.hpp"

namespace ebpfnet {

class EndpointTable {
 public:
  // Rows are checked against the node's pool as they are read (the file
  // may have been edited): Errc::failed naming the row and field.
  EndpointTable(std::shared_ptr<NodeDb> db, Ipv4Cidr pool, std::optional<Ipv6Cidr> pool6 = std::nullopt)
      : db_(std::move(db)), pool_(pool), pool6_(pool6) {}

  std::optional<EndpointRecord> get(std::string_view name);
  bool contains(std::string_view name);
  // Each endpoint in the order they were added; fn must not write to the
  // table. Only one record is in memory at a time.
  void for_each(const std::function<void(const EndpointRecord&)>& fn);
  // Every endpoint at once: for what needs them all together.
  std::vector<EndpointRecord> all();
  // The endpoint a CNI runtime added for (container_id, ifname).
  std::optional<EndpointRecord> of_container(std::string_view container_id, std::string_view ifname);
  // Names of the endpoints in the namespace of that cookie.
  std::vector<std::string> in_netns(uint64_t cookie);
  std::set<Ipv4> addresses();
  std::set<Ipv6> addresses6();
  size_t size();
  size_t policed();  // endpoints with a policy

  // Inserts or replaces the endpoint of that name (keeping its place in the
  // order); Errc::exists when its address or veth is another endpoint's.
  void put(const EndpointRecord& e);
  void erase(std::string_view name);
  // Replaces every endpoint (moving a schema-7 state in).
  void replace_all(const std::vector<EndpointRecord>& endpoints);
  // Makes the writes durable (NodeTxn commits the whole database instead).
  void commit() { db_->commit(); }

 private:
  using Statement = NodeDb::Statement;
  // Runs q (columns: name, record) and hands each checked record to fn.
  void rows(Statement& q, const std::function<void(EndpointRecord&&)>& fn);
  std::optional<EndpointRecord> one(Statement& q);

  std::shared_ptr<NodeDb> db_;
  Ipv4Cidr pool_;
  std::optional<Ipv6Cidr> pool6_;
};

}  // namespace ebpfnet
