#include "ebpfnet/service_table.hpp"

#include <nlohmann/json.hpp>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"
#include "json_fields.hpp"
#include "service_json.hpp"

namespace ebpfnet {

using nlohmann::json;

// ---- The row's record: one source of truth for a service's JSON layout,
// also read from state files of schema 6 and older.

json service_to_json(const ServiceRecord& v) {
  json backends = json::array();
  for (const auto& b : v.backends)
    backends.push_back(
        {{"id", b.id}, {"endpoint", b.endpoint}, {"port", b.port}, {"weight", b.weight}, {"draining", b.draining}});
  return {{"name", v.name},
          {"id", v.id},
          {"proto", v.proto},
          {"vip", v.vip ? json(v.vip->str()) : json(nullptr)},
          {"port", v.port},
          {"node_port", v.node_port},
          {"affinity_s", v.affinity_s},
          {"backends", backends}};
}

ServiceRecord service_from(const Fields& f) {
  ServiceRecord v;
  v.name = f.str("name");
  v.id = f.number<uint32_t>("id");
  v.proto = f.str("proto");
  if (!f.null("vip")) v.vip = f.ip("vip");
  v.port = f.number<uint16_t>("port");
  v.node_port = f.number<uint16_t>("node_port");
  v.affinity_s = f.number<uint32_t>("affinity_s");
  for (const Fields& b : f.list("backends"))
    v.backends.push_back({b.number<uint32_t>("id"), b.str("endpoint"), b.number<uint16_t>("port"),
                          b.number<uint32_t>("weight"), b.flag("draining")});
  return v;
}

// What ebpfnet never writes, refused with the field: the table is a file
// others may have edited. Checks within one service; the table's
// constraints keep names, ids and addresses unique across services.
void validate_service(const ServiceRecord& v, const std::string& at) {
  auto refuse = [&](const std::string& field, const std::string& problem) {
    throw Error(Errc::failed, at + field + ": " + problem);
  };
  try {
    validate_name("service", v.name);
  } catch (const Error& e) {
    refuse("name", e.what());
  }
  if (v.id == 0) refuse("id", "0 is not a service id");
  if (v.proto != "tcp" && v.proto != "udp") refuse("proto", "'" + printable(v.proto) + "' is not tcp or udp");
  if (!v.vip && v.node_port == 0) refuse("vip", "a service needs a virtual IP or a node port");
  if (v.vip && v.vip->host() == 0) refuse("vip", "0.0.0.0 is not a virtual IP");
  if (v.vip && v.port == 0) refuse("port", "0 is not a port");
  for (size_t k = 0; k < v.backends.size(); ++k) {
    const BackendRecord& b = v.backends[k];
    const std::string bat = "backends[" + std::to_string(k) + "].";
    if (b.id == 0) refuse(bat + "id", "0 is not a backend id");
    try {
      validate_name("endpoint", b.endpoint);
    } catch (const Error& e) {
      refuse(bat + "endpoint", e.what());
    }
    if (b.port == 0) refuse(bat + "port", "0 is not a port");
    if (b.weight == 0 || b.weight > kMaxBackendWeight)
      refuse(bat + "weight", std::to_string(b.weight) + " is not between 1 and " + std::to_string(kMaxBackendWeight));
    for (size_t o = 0; o < k; ++o)
      if (v.backends[o].endpoint == b.endpoint && v.backends[o].port == b.port)
        refuse(bat + "port", b.endpoint + ":" + std::to_string(b.port) + " is backends[" + std::to_string(o) + "] too");
  }
}

namespace {

std::string vip_key(Ipv4 vip, uint16_t port, std::string_view proto) {
  return vip.str() + ":" + std::to_string(port) + "/" + std::string(proto);
}
std::string node_port_key(uint16_t port, std::string_view proto) {
  return std::to_string(port) + "/" + std::string(proto);
}

}  // namespace

std::vector<ServiceRecord> ServiceTable::records(Statement& q) {
  std::vector<ServiceRecord> out;
  while (q.step()) {
    const std::string name = q.text(0);
    const std::string at = "services table " + db_->file().string() + ": service '" + printable(name) + "': ";
    try {
      const json j = json::parse(q.text(1));
      ServiceRecord v = service_from(Fields(j, ""));
      if (v.name != name) throw Error(Errc::failed, "name: '" + printable(v.name) + "' is not its row's");
      validate_service(v, "");
      out.push_back(std::move(v));
    } catch (const json::exception& e) {
      throw Error(Errc::failed, at + e.what());
    } catch (const Error& e) {
      throw Error(Errc::failed, at + e.what());
    }
  }
  return out;
}

std::optional<ServiceRecord> ServiceTable::get(std::string_view name) {
  if (!db_->open()) return std::nullopt;
  Statement q = prepare("SELECT name, record FROM services WHERE name = ?");
  q.bind(1, name);
  auto found = records(q);
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

std::vector<ServiceRecord> ServiceTable::all() {
  if (!db_->open()) return {};
  Statement q = prepare("SELECT name, record FROM services ORDER BY id");
  return records(q);
}

std::optional<std::string> ServiceTable::at_vip(Ipv4 vip, uint16_t port, std::string_view proto) {
  if (!db_->open()) return std::nullopt;
  Statement q = prepare("SELECT name FROM services WHERE vip_key = ?");
  q.bind(1, vip_key(vip, port, proto));
  return q.step() ? std::optional(q.text(0)) : std::nullopt;
}

std::optional<std::string> ServiceTable::at_node_port(uint16_t port, std::string_view proto) {
  if (!db_->open()) return std::nullopt;
  Statement q = prepare("SELECT name FROM services WHERE node_port_key = ?");
  q.bind(1, node_port_key(port, proto));
  return q.step() ? std::optional(q.text(0)) : std::nullopt;
}

std::vector<ServiceRecord> ServiceTable::with_backends_on(const std::set<std::string>& endpoints) {
  std::vector<ServiceRecord> out;
  if (!db_->open()) return out;
  std::set<std::string> seen;
  for (const auto& e : endpoints) {
    Statement q = prepare(
        "SELECT s.name, s.record FROM backends b JOIN services s ON s.name = b.service WHERE b.endpoint = ?");
    q.bind(1, e);
    for (auto& v : records(q))
      if (seen.insert(v.name).second) out.push_back(std::move(v));
  }
  return out;
}

// Totals are kept by put and erase, not counted: a count reads every row,
// and an operation beside 10,000 services must read only its own.
size_t ServiceTable::total(const char* name) {
  if (!db_->open()) return 0;
  Statement q = prepare("SELECT n FROM totals WHERE name = ?");
  q.bind(1, name);
  return q.step() ? static_cast<size_t>(q.integer(0)) : 0;
}

void ServiceTable::add_totals(int64_t services, int64_t keys, int64_t backends) {
  Statement q = prepare("UPDATE totals SET n = n + ? WHERE name = ?");
  q.bind(1, services).bind(2, "services").run();
  q.bind(1, keys).bind(2, "keys").run();
  q.bind(1, backends).bind(2, "backends").run();
}

size_t ServiceTable::size() { return total("services"); }
size_t ServiceTable::key_count() { return total("keys"); }
size_t ServiceTable::backend_count() { return total("backends"); }

bool ServiceTable::any_vip() {
  if (!db_->open()) return false;
  Statement q = prepare("SELECT 1 FROM services WHERE vip_key IS NOT NULL LIMIT 1");
  return q.step();
}

ServiceIdCounters ServiceTable::counters() {
  ServiceIdCounters c;
  if (!db_->open()) return c;
  Statement q = prepare("SELECT name, next FROM counters");
  while (q.step()) {
    const std::string name = q.text(0);
    const int64_t next = q.integer(1);
    if (next < 1 || next > UINT32_MAX)
      throw Error(Errc::failed, "services table " + db_->file().string() + ": counter " + printable(name) + ": " +
                                    std::to_string(next) + " is not an id");
    if (name == "service") c.next_service = static_cast<uint32_t>(next);
    if (name == "backend") c.next_backend = static_cast<uint32_t>(next);
  }
  return c;
}

void ServiceTable::set_counters(const ServiceIdCounters& c) {
  db_->begin_write();
  Statement q = prepare("INSERT OR REPLACE INTO counters(name, next) VALUES ('service', ?), ('backend', ?)");
  q.bind(1, static_cast<int64_t>(c.next_service)).bind(2, static_cast<int64_t>(c.next_backend)).run();
}

void ServiceTable::put(const ServiceRecord& v) {
  db_->begin_write();
  erase(v.name);
  Statement q = prepare(
      "INSERT INTO services(name, id, vip_key, node_port_key, keys, backends, record) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const int64_t keys = (v.vip ? 1 : 0) + (v.node_port ? 1 : 0), backends = static_cast<int64_t>(v.backends.size());
  q.bind(1, v.name).bind(2, static_cast<int64_t>(v.id));
  if (v.vip)
    q.bind(3, vip_key(*v.vip, v.port, v.proto));
  else
    q.bind_null(3);
  if (v.node_port)
    q.bind(4, node_port_key(v.node_port, v.proto));
  else
    q.bind_null(4);
  q.bind(5, keys).bind(6, backends).bind(7, service_to_json(v).dump()).run();
  add_totals(1, keys, backends);
  Statement b = prepare("INSERT OR IGNORE INTO backends(endpoint, service) VALUES (?, ?)");
  for (const auto& r : v.backends) b.bind(1, r.endpoint).bind(2, v.name).run();
}

void ServiceTable::erase(std::string_view name) {
  db_->begin_write();
  int64_t keys = 0, backends = 0;
  {
    Statement q = prepare("SELECT keys, backends FROM services WHERE name = ?");
    q.bind(1, name);
    if (!q.step()) return;
    keys = q.integer(0);
    backends = q.integer(1);
  }
  add_totals(-1, -keys, -backends);
  prepare("DELETE FROM services WHERE name = ?").bind(1, name).run();
  prepare("DELETE FROM backends WHERE service = ?").bind(1, name).run();
}

void ServiceTable::replace_all(const std::vector<ServiceRecord>& services, const ServiceIdCounters& c) {
  db_->begin_write();
  db_->exec("DELETE FROM services; DELETE FROM backends; UPDATE totals SET n = 0;");
  for (const auto& v : services) put(v);
  set_counters(c);
}

}  // namespace ebpfnet
