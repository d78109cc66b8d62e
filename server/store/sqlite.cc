#include "server/store/sqlite.h"

#include <chrono>
#include <thread>

#include "rest/api_error.h"

namespace mesa::server {
namespace {

absl::Status SqliteError(sqlite3* db, std::string_view what) {
  return rest::InternalError(std::string("sqlite ") + std::string(what) + ": " +
                             (db ? sqlite3_errmsg(db) : "unknown"));
}

}  // namespace

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int index, std::string_view value) {
  sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}
Statement& Statement::Bind(int index, std::nullopt_t) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}
Statement& Statement::Bind(int index, const std::optional<std::string>& value) {
  return value ? Bind(index, std::string_view(*value)) : Bind(index, std::nullopt);
}
Statement& Statement::Bind(int index, const std::optional<int64_t>& value) {
  return value ? Bind(index, *value) : Bind(index, std::nullopt);
}

absl::StatusOr<bool> Statement::Step() {
  for (int attempt = 0;; ++attempt) {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // busy_timeout handles most contention; a locked shared cache may still surface here.
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 100) {
      sqlite3_reset(stmt_);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    return SqliteError(db_, "step");
  }
}

absl::Status Statement::Run() {
  auto row = Step();
  if (!row.ok()) return row.status();
  return absl::OkStatus();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}
std::optional<std::string> Statement::OptText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}
int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
std::optional<int64_t> Statement::OptInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}
bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

absl::StatusOr<std::unique_ptr<SqliteConnection>> SqliteConnection::Open(const std::string& path,
                                                                         bool full_sync) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status st = SqliteError(db, "open " + path);
    sqlite3_close(db);
    return st;
  }
  auto conn = std::unique_ptr<SqliteConnection>(new SqliteConnection(db));
  sqlite3_busy_timeout(db, 10000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA temp_store=MEMORY"}) {
    if (auto st = conn->Exec(pragma); !st.ok()) return st;
  }
  if (auto st = conn->Exec(full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
      !st.ok())
    return st;
  return conn;
}

SqliteConnection::~SqliteConnection() { sqlite3_close_v2(db_); }

absl::StatusOr<Statement> SqliteConnection::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, "prepare");
  return Statement(db_, stmt);
}

absl::Status SqliteConnection::Exec(std::string_view sql) {
  std::string owned(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "exec failed";
    sqlite3_free(err);
    return rest::InternalError("sqlite exec: " + msg);
  }
  return absl::OkStatus();
}

SqlitePool::Lease::~Lease() {
  if (conn_ && pool_) {
    std::lock_guard<std::mutex> lock(pool_->mu_);
    if (pool_->idle_.size() < 32) pool_->idle_.push_back(std::move(conn_));
  }
}

absl::StatusOr<SqlitePool::Lease> SqlitePool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
  }
  auto conn = SqliteConnection::Open(path_, full_sync_);
  if (!conn.ok()) return conn.status();
  return Lease(this, std::move(*conn));
}

Transaction::~Transaction() {
  if (open_) (void)conn_.Exec("ROLLBACK");
}

absl::Status Transaction::Begin() {
  auto st = conn_.Exec("BEGIN IMMEDIATE");
  if (st.ok()) open_ = true;
  return st;
}

absl::Status Transaction::Commit() {
  auto st = conn_.Exec("COMMIT");
  if (st.ok()) open_ = false;
  return st;
}

}  // namespace mesa::server
