// Pieces shared by the store_*.cc files; not part of the store's interface.
#pragma once

#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/store/store.h"

namespace mesa::server {

struct Store::Internals {
  explicit Internals(const std::string& db_path, bool fsync) : db(db_path, fsync) {}
  ~Internals() {
    if (owner_lock_fd >= 0) close(owner_lock_fd);
  }
  SqlitePool db;
  // flock'ed by the first Store opened on a data dir (the server's); only that Store may treat
  // git lock files as a dead process's leftovers.
  int owner_lock_fd = -1;
  std::mutex mu;
  std::map<std::string, std::vector<git::RepositoryPtr>> git_idle;
  std::map<std::string, std::weak_ptr<std::mutex>> repo_locks;
  std::map<std::string, int64_t> key_last_used_ms;
  std::mutex outbox_mu;
  std::function<void()> outbox_listener;
  std::string public_url = "http://localhost";
};

// A pooled libgit2 repository handle; one thread at a time.
class Store::GitLease {
 public:
  GitLease(Store* store, std::string repo_id, git::RepositoryPtr repo)
      : store_(store), repo_id_(std::move(repo_id)), repo_(std::move(repo)) {}
  GitLease(GitLease&&) = default;
  ~GitLease();
  git_repository* get() const { return repo_.get(); }

 private:
  Store* store_;
  std::string repo_id_;
  git::RepositoryPtr repo_;
};

namespace store_detail {

// "<prefix><20 random alphanumerics>".
std::string NewId(std::string_view prefix);

nlohmann::json ParseJsonColumn(const std::optional<std::string>& text, nlohmann::json fallback);

// A repo read through `db` (so an open transaction sees its own writes). 404 when missing.
absl::StatusOr<Repo> LoadRepo(SqliteConnection& db, const std::string& repo_id);

// True when `ids` is a restriction (not org-wide) to a subset of `allowed`.
bool RepoSubset(const std::optional<std::vector<std::string>>& ids, const std::vector<std::string>& allowed);

// Commit oid a change id resolves to, or "" for the virtual root / unknown changes.
std::string CommitOrEmpty(SqliteConnection& db, const std::string& repo_id, const std::string& change_id);

// Commit oid of a change; "" for the virtual root. 404 CHANGE_NOT_FOUND when unknown.
absl::StatusOr<std::string> ChangeCommit(SqliteConnection& db, const std::string& repo_id,
                                         const std::string& change_id);

// The change a bookmark points at. 404 BOOKMARK_NOT_FOUND when missing.
absl::StatusOr<std::string> BookmarkChange(SqliteConnection& db, const std::string& repo_id,
                                           const std::string& name);

// Change with parents resolved to change ids and is_conflicted; files/conflicts left empty.
absl::StatusOr<Change> LoadChange(git_repository* git, SqliteConnection& db,
                                  const std::string& repo_id, const std::string& change_id);

Change VirtualRootChange();

// Makes refs/heads/* match the bookmarks table (bookmarks at the virtual root have no ref).
absl::Status SyncRefs(git_repository* git, SqliteConnection& db, const std::string& repo_id);

// Applies file ops in order on top of `base_tree` ("" = empty tree); returns the new tree oid.
absl::StatusOr<std::string> ApplyFileOps(git_repository* git, const std::string& base_tree,
                                         const std::vector<FileOp>& ops);

// Tree oid of a commit ("" commit = empty tree "").
absl::StatusOr<std::string> CommitTree(git_repository* git, const std::string& commit_oid);

struct FileConflict {
  std::string path;
  std::optional<std::string> base_oid, target_oid, source_oid;
  uint32_t mode = 0100644;
};

absl::StatusOr<std::vector<FileConflict>> LoadConflicts(SqliteConnection& db,
                                                        const std::string& repo_id,
                                                        const std::string& commit_oid);
absl::Status SaveConflicts(SqliteConnection& db, const std::string& repo_id,
                           const std::string& commit_oid, const std::vector<FileConflict>& conflicts);

// Per-hunk view of a textual conflict, and the file as written into a conflicted tree.
struct ConflictAnalysis {
  std::vector<ConflictHunk> hunks;
  std::optional<std::string> omitted_reason;  // "binary" | "too_large"
  uint64_t size_bytes = 0;
  std::optional<std::string> materialized;  // file content with markers; nullopt = delete
  // Segments to recompose the file from per-hunk choices.
  struct Segment {
    bool conflict = false;
    std::string text;  // stable text
    size_t hunk = 0;   // index into hunks when conflict
  };
  std::vector<Segment> segments;
};

absl::StatusOr<ConflictAnalysis> AnalyzeConflict(git_repository* git, const FileConflict& c);

// Resolves conflicts per the given resolutions. Returns ops for resolved paths; removes them
// from `conflicts`. 400 for resolutions of non-conflicted paths, 409 MERGE_CONFLICT when a
// per-hunk resolution does not cover every hunk.
absl::StatusOr<std::vector<FileOp>> ApplyResolutions(git_repository* git,
                                                     std::vector<FileConflict>& conflicts,
                                                     const std::vector<Resolution>& resolutions);

// The MERGE_CONFLICT error for unresolved conflicts, with per-path hunks and hunk ids.
absl::Status MergeConflictError(git_repository* git, const std::vector<FileConflict>& conflicts,
                                std::string_view message);

absl::StatusOr<std::string> ReadBlob(git_repository* git, const std::string& oid);

}  // namespace store_detail
}  // namespace mesa::server
