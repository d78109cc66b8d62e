// The store's data model. Field names follow the Mesa REST v1 (0.38.0) resources.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace mesa::server {

struct Org {
  std::string id;
  std::string slug;
  std::string name;
  int64_t created_at_ms = 0;
};

enum class Scope { kRead = 1, kWrite = 2, kAdmin = 3 };

struct ApiKey {
  std::string id;
  std::string org_id;
  std::optional<std::string> name;
  std::vector<std::string> scopes;
  std::optional<std::vector<std::string>> repo_ids;  // nullopt: every repo of the org
  nlohmann::json tags = nlohmann::json::object();
  int64_t created_at_ms = 0;
  std::optional<int64_t> expires_at_ms;
  std::optional<int64_t> revoked_at_ms;
  std::optional<int64_t> last_used_at_ms;

  bool HasScope(Scope needed) const;
  bool CanSeeRepo(const std::string& repo_id) const;
};

struct Repo {
  int64_t seq = 0;  // creation order; the list cursor
  std::string id;
  std::string org_id;
  std::string org_slug;
  std::string name;
  std::string default_bookmark;
  std::string head_change_id;
  nlohmann::json tags = nlohmann::json::object();
  nlohmann::json upstream;  // null, or {url, auth} as stored (auth is never rendered)
  int64_t created_at_ms = 0;
};

struct Bookmark {
  std::string name;
  std::string change_id;
  bool is_default = false;
};

struct Signature {
  std::string name;
  std::string email;
  int64_t time_s = 0;
  int offset_minutes = 0;
};

struct Change {
  std::string id;
  std::string commit_oid;
  bool is_conflicted = false;
  std::string message;
  Signature author;
  Signature committer;
  std::vector<std::string> parents;  // parent change ids
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::vector<std::string> files;      // filled by GetChange only
  std::vector<std::string> conflicts;  // filled by GetChange only
};

struct FileOp {
  enum class Kind { kUpsert, kDelete };
  Kind kind = Kind::kUpsert;
  std::string path;
  std::string content;    // raw bytes
  uint32_t mode = 0100644;  // 0100644 or 0100755
};

struct Resolution {
  std::string path;
  // Whole-file: exactly one of content/take. Per-hunk: hunks non-empty.
  std::optional<std::string> content;
  std::optional<std::string> take;  // "target" | "source"
  struct Hunk {
    std::string hunk_id;
    std::optional<std::string> content;
    std::optional<std::string> take;
  };
  std::vector<Hunk> hunks;
};

struct ContentEntry {
  std::string type;  // file | symlink | dir
  std::string name;
  std::string path;
  std::string sha;
  uint64_t size = 0;
  std::string mode;  // "100644" | "100755" | "120000" | "" for dirs
};

struct Content {
  std::string type;  // file | symlink | dir
  std::string name;
  std::string path;
  std::string sha;
  uint64_t size = 0;
  std::string mode;
  std::string data;  // file bytes or symlink target
  bool is_conflicted = false;
  uint64_t child_count = 0;
  std::vector<ContentEntry> entries;
};

struct WebhookTarget {
  int64_t seq = 0;  // creation order; the list cursor
  std::string id;
  std::string org_id;
  std::optional<std::string> name;
  std::string url;
  std::vector<std::string> events;
  std::optional<std::vector<std::string>> repo_ids;  // nullopt: every repo of the org
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::optional<std::string> next_cursor;
};

}  // namespace mesa::server
