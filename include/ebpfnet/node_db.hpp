// The node's SQLite database, <node>/services.db: its services
// (service_table.hpp) and, since state schema 8, its endpoints
// (endpoint_table.hpp), one table each in one file. One file, so that an
// operation that changes both (an endpoint's removal takes it out of the
// services it backs) commits them in one SQLite transaction; the file keeps
// the name it had when it held only services, so a node of schema 7 needs
// no file moved (with a WAL a killed process may have left beside it).
//
// Writes go into one transaction, begun by the first of them and made
// durable by commit() (NodeTxn commits it before the state file); a
// database closed uncommitted rolls back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace ebpfnet {

class NodeDb {
 public:
  enum class Mode { read, write };
  // write makes the file when missing and brings its layout up to date.
  // A read of a file that does not exist is an empty database (open() is
  // false): every table reads as empty.
  NodeDb(const std::filesystem::path& file, Mode mode);
  ~NodeDb();
  NodeDb(const NodeDb&) = delete;
  NodeDb& operator=(const NodeDb&) = delete;

  // A prepared statement, finalized when it goes; errors name the file,
  // and a broken constraint is Errc::exists.
  class Statement {
   public:
    Statement(NodeDb& db, const char* sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, std::string_view s);
    Statement& bind(int i, int64_t n);
    Statement& bind_null(int i);
    // true: a row is there to read.
    bool step();
    // Runs it to the end and makes it ready to run again with new values.
    void run();
    std::string text(int col) const;
    int64_t integer(int col) const;

   private:
    [[noreturn]] void fail(const std::string& what) const;
    void check(int rc) const;
    NodeDb& db_;
    sqlite3_stmt* q_ = nullptr;
  };

  bool open() const { return db_ != nullptr; }
  const std::filesystem::path& file() const { return file_; }
  Statement prepare(const char* sql) { return Statement(*this, sql); }
  void exec(const char* sql);
  // Begins the write transaction unless one is open; Errc::failed on a
  // database open for reading.
  void begin_write();
  void commit();

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
  bool writing_ = false;
};

}  // namespace ebpfnet
