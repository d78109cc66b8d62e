// Thin RAII layer over SQLite: connections, prepared statements, transactions.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mesa::server {

class SqliteConnection;

// A prepared statement bound to one connection. Column accessors are 0-based.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, std::string_view value);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const std::string& value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, std::nullopt_t);
  Statement& Bind(int index, const std::optional<std::string>& value);
  Statement& Bind(int index, const std::optional<int64_t>& value);

  // Returns true while a row is available; errors become a Status via Done().
  absl::StatusOr<bool> Step();
  absl::Status Run();  // steps to completion, expecting no rows
  void Reset();        // ready to bind and step again

  std::string Text(int col) const;
  std::optional<std::string> OptText(int col) const;
  int64_t Int(int col) const;
  std::optional<int64_t> OptInt(int col) const;
  bool IsNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteConnection {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteConnection>> Open(const std::string& path,
                                                                bool full_sync);
  ~SqliteConnection();

  absl::StatusOr<Statement> Prepare(std::string_view sql);
  absl::Status Exec(std::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  sqlite3* raw() { return db_; }

 private:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// A pool of connections to one database file (WAL mode: many readers, one writer).
class SqlitePool {
 public:
  SqlitePool(std::string path, bool full_sync) : path_(std::move(path)), full_sync_(full_sync) {}

  class Lease {
   public:
    Lease(SqlitePool* pool, std::unique_ptr<SqliteConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    ~Lease();
    SqliteConnection* operator->() { return conn_.get(); }
    SqliteConnection& operator*() { return *conn_; }

   private:
    SqlitePool* pool_;
    std::unique_ptr<SqliteConnection> conn_;
  };

  absl::StatusOr<Lease> Acquire();

 private:
  std::string path_;
  bool full_sync_;
  std::mutex mu_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(SqliteConnection& conn) : conn_(conn) {}
  ~Transaction();
  absl::Status Begin();
  absl::Status Commit();

 private:
  SqliteConnection& conn_;
  bool open_ = false;
};

}  // namespace mesa::server
