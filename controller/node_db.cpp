#include "ebpfnet/node_db.hpp"

#include <sqlite3.h>

#include "ebpfnet/error.hpp"

namespace ebpfnet {

namespace {

// The layout of the database (user_version); a later version migrates.
// 1: services, backends, counters, totals. 2: endpoints.
constexpr int kLayoutVersion = 2;

// Every statement only adds what is missing: a file of any older layout
// becomes the current one by running it.
constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS services(
  name TEXT PRIMARY KEY,
  id INTEGER NOT NULL UNIQUE,
  vip_key TEXT UNIQUE,
  node_port_key TEXT UNIQUE,
  keys INTEGER NOT NULL,
  backends INTEGER NOT NULL,
  record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backends(
  endpoint TEXT NOT NULL,
  service TEXT NOT NULL,
  PRIMARY KEY(endpoint, service)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters(
  name TEXT PRIMARY KEY,
  next INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals(
  name TEXT PRIMARY KEY,
  n INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO totals(name, n) VALUES ('services', 0), ('keys', 0), ('backends', 0);
CREATE TABLE IF NOT EXISTS endpoints(
  name TEXT PRIMARY KEY,
  ip INTEGER NOT NULL UNIQUE,
  ip6 TEXT UNIQUE,
  host_ifname TEXT NOT NULL UNIQUE,
  host_ifindex INTEGER NOT NULL UNIQUE,
  netns_cookie INTEGER NOT NULL,
  container_id TEXT NOT NULL,
  ifname TEXT NOT NULL,
  policed INTEGER NOT NULL,
  record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS endpoints_by_cookie ON endpoints(netns_cookie);
CREATE INDEX IF NOT EXISTS endpoints_by_container ON endpoints(container_id, ifname);
)";

}  // namespace

NodeDb::Statement::Statement(NodeDb& db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v2(db_.db_, sql, -1, &q_, nullptr) != SQLITE_OK) fail("preparing a query");
}

NodeDb::Statement::~Statement() { sqlite3_finalize(q_); }

NodeDb::Statement& NodeDb::Statement::bind(int i, std::string_view s) {
  check(sqlite3_bind_text(q_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT));
  return *this;
}

NodeDb::Statement& NodeDb::Statement::bind(int i, int64_t n) {
  check(sqlite3_bind_int64(q_, i, n));
  return *this;
}

NodeDb::Statement& NodeDb::Statement::bind_null(int i) {
  check(sqlite3_bind_null(q_, i));
  return *this;
}

bool NodeDb::Statement::step() {
  const int rc = sqlite3_step(q_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail("reading or writing");
}

void NodeDb::Statement::run() {
  while (step()) {
  }
  sqlite3_reset(q_);
}

std::string NodeDb::Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(q_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(q_, col))) : std::string();
}

int64_t NodeDb::Statement::integer(int col) const { return sqlite3_column_int64(q_, col); }

void NodeDb::Statement::fail(const std::string& what) const {
  const int rc = sqlite3_extended_errcode(db_.db_);
  throw Error((rc & 0xff) == SQLITE_CONSTRAINT ? Errc::exists : Errc::failed,
              "node database " + db_.file_.string() + ": " + what + ": " + sqlite3_errmsg(db_.db_));
}

void NodeDb::Statement::check(int rc) const {
  if (rc != SQLITE_OK) fail("binding a value");
}

NodeDb::NodeDb(const std::filesystem::path& file, Mode mode) : file_(file) {
  if (mode == Mode::read && !std::filesystem::exists(file_)) return;
  const int flags = mode == Mode::write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(file_.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(Errc::failed, "opening node database " + file_.string() + ": " + why);
  }
  // Readers (monitor, metrics) may look while an operation writes: they
  // wait for the writer's commit rather than fail.
  sqlite3_busy_timeout(db_, 5000);
  if (mode == Mode::read) return;
  // WAL: a commit is one append and one fsync (FULL), not a rewrite. The
  // last close folds it into the file and removes it (SQLite's default):
  // the next process to open rebuilds its index by reading the whole WAL,
  // which left to grow cost ~10 ms beside 10,000 services.
  exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
  Statement v(*this, "PRAGMA user_version");
  const int version = v.step() ? static_cast<int>(v.integer(0)) : 0;
  if (version > kLayoutVersion)
    throw Error(Errc::failed, "node database " + file_.string() + " has layout version " + std::to_string(version) +
                                  "; this ebpfnet reads up to " + std::to_string(kLayoutVersion) + ": upgrade ebpfnet");
  if (version < kLayoutVersion) {
    exec("BEGIN IMMEDIATE");
    exec(kSchema);
    exec(("PRAGMA user_version=" + std::to_string(kLayoutVersion)).c_str());
    exec("COMMIT");
  }
}

NodeDb::~NodeDb() {
  if (!db_) return;
  if (writing_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db_);
}

void NodeDb::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    const std::string why = msg ? msg : sqlite3_errmsg(db_);
    sqlite3_free(msg);
    throw Error(Errc::failed, "node database " + file_.string() + ": " + why);
  }
}

void NodeDb::begin_write() {
  if (!db_) throw Error(Errc::failed, "node database " + file_.string() + " is open for reading only");
  if (writing_) return;
  exec("BEGIN IMMEDIATE");
  writing_ = true;
}

void NodeDb::commit() {
  if (!writing_) return;
  exec("COMMIT");
  writing_ = false;
}

}  // namespace ebpfnet
