#include "ebpfnet/endpoint_table.hpp"

#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "endpoint_json.hpp"

namespace ebpfnet {

using nlohmann::json;

void EndpointTable::rows(Statement& q, const std::function<void(EndpointRecord&&)>& fn) {
  while (q.step()) {
    const std::string name = q.text(0);
    EndpointRecord e;
    try {
      e = endpoint_from_json(json::parse(q.text(1)));
      if (e.name != name) throw Error(Errc::failed, "name: '" + printable(e.name) + "' is not its row's");
      validate_endpoint(e, pool_, pool6_, "");
    } catch (const std::exception& x) {
      throw Error(Errc::failed,
                  "endpoint table " + db_->file().string() + ": endpoint '" + printable(name) + "': " + x.what());
    }
    fn(std::move(e));
  }
}

std::optional<EndpointRecord> EndpointTable::one(Statement& q) {
  std::optional<EndpointRecord> out;
  rows(q, [&](EndpointRecord&& e) { out = std::move(e); });
  return out;
}

std::optional<EndpointRecord> EndpointTable::get(std::string_view name) {
  if (!db_->open()) return std::nullopt;
  Statement q = db_->prepare("SELECT name, record FROM endpoints WHERE name = ?");
  q.bind(1, name);
  return one(q);
}

bool EndpointTable::contains(std::string_view name) {
  if (!db_->open()) return false;
  Statement q = db_->prepare("SELECT 1 FROM endpoints WHERE name = ?");
  q.bind(1, name);
  return q.step();
}

void EndpointTable::for_each(const std::function<void(const EndpointRecord&)>& fn) {
  if (!db_->open()) return;
  Statement q = db_->prepare("SELECT name, record FROM endpoints ORDER BY rowid");
  rows(q, [&](EndpointRecord&& e) { fn(e); });
}

std::vector<EndpointRecord> EndpointTable::all() {
  std::vector<EndpointRecord> out;
  for_each([&](const EndpointRecord& e) { out.push_back(e); });
  return out;
}

std::optional<EndpointRecord> EndpointTable::of_container(std::string_view container_id, std::string_view ifname) {
  if (!db_->open() || container_id.empty()) return std::nullopt;
  Statement q = db_->prepare("SELECT name, record FROM endpoints WHERE container_id = ? AND ifname = ? LIMIT 1");
  q.bind(1, container_id).bind(2, ifname);
  return one(q);
}

std::vector<std::string> EndpointTable::in_netns(uint64_t cookie) {
  std::vector<std::string> out;
  if (!db_->open()) return out;
  Statement q = db_->prepare("SELECT name FROM endpoints WHERE netns_cookie = ?");
  q.bind(1, static_cast<int64_t>(cookie));
  while (q.step()) out.push_back(q.text(0));
  return out;
}

std::set<Ipv4> EndpointTable::addresses() {
  std::set<Ipv4> out;
  if (!db_->open()) return out;
  Statement q = db_->prepare("SELECT ip FROM endpoints");
  while (q.step()) out.insert(Ipv4(static_cast<uint32_t>(q.integer(0))));
  return out;
}

std::set<Ipv6> EndpointTable::addresses6() {
  std::set<Ipv6> out;
  if (!db_->open()) return out;
  Statement q = db_->prepare("SELECT ip6 FROM endpoints WHERE ip6 IS NOT NULL");
  while (q.step())
    if (auto a = Ipv6::parse(q.text(0))) out.insert(*a);
  return out;
}

// Counted from the indexes (SQLite counts the smallest), not the records.
size_t EndpointTable::size() {
  if (!db_->open()) return 0;
  Statement q = db_->prepare("SELECT count(*) FROM endpoints");
  return q.step() ? static_cast<size_t>(q.integer(0)) : 0;
}

size_t EndpointTable::policed() {
  if (!db_->open()) return 0;
  Statement q = db_->prepare("SELECT count(*) FROM endpoints WHERE policed = 1");
  return q.step() ? static_cast<size_t>(q.integer(0)) : 0;
}

void EndpointTable::put(const EndpointRecord& e) {
  db_->begin_write();
  // An upsert keeps the row's rowid: an endpoint that changes keeps its place.
  Statement q = db_->prepare(
      "INSERT INTO endpoints(name, ip, host_ifname, host_ifindex, netns_cookie, container_id, ifname, policed, record, "
      "ip6) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET ip = excluded.ip, ip6 = excluded.ip6, "
      "host_ifname = excluded.host_ifname, host_ifindex = excluded.host_ifindex, "
      "netns_cookie = excluded.netns_cookie, container_id = excluded.container_id, ifname = excluded.ifname, "
      "policed = excluded.policed, record = excluded.record");
  q.bind(1, e.name)
      .bind(2, static_cast<int64_t>(e.ip.host()))
      .bind(3, e.host_ifname)
      .bind(4, static_cast<int64_t>(e.host_ifindex))
      .bind(5, static_cast<int64_t>(e.netns_cookie))
      .bind(6, e.container_id)
      .bind(7, e.ifname)
      .bind(8, int64_t{e.policy ? 1 : 0})
      .bind(9, endpoint_to_json(e).dump());
  if (e.ip6)
    q.bind(10, e.ip6->str());
  else
    q.bind_null(10);
  q.run();
}

void EndpointTable::erase(std::string_view name) {
  db_->begin_write();
  db_->prepare("DELETE FROM endpoints WHERE name = ?").bind(1, name).run();
}

void EndpointTable::replace_all(const std::vector<EndpointRecord>& endpoints) {
  db_->begin_write();
  db_->exec("DELETE FROM endpoints");
  for (const auto& e : endpoints) put(e);
}

}  // namespace ebpfnet
