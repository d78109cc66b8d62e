// The mesa-server store: one bare git repository per Mesa repo (objects, and refs mirrored
// from bookmarks) plus SQLite metadata (orgs, keys, repos, bookmarks, changes, evolution log,
// conflicts).
//
// Crash safety (kill -9): every mutation writes git objects first, then commits one SQLite
// transaction, then mirrors refs/heads/* from SQLite. SQLite is the source of truth for
// bookmarks, so a kill between the transaction and the ref update is repaired by
// ReconcileRefs() at the next Open(). Repos are created as directories first and rows second;
// deleted as rows first and directories second; Open() removes directories without a row.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/git.h"
#include "server/store/sqlite.h"
#include "rest/access_token.h"
#include "server/store/types.h"

namespace mesa::server {

struct StoreOptions {
  // fsync git objects and run SQLite with synchronous=FULL: survives power loss, not just
  // a killed process. Off by default (kill -9 safety does not need it).
  bool fsync = false;
  size_t diff_max_entries = 3000;          // beyond this a diff is `truncated`
  size_t diff_max_file_bytes = 1 << 20;    // larger files get omitted_reason "too_large"
  size_t diff_max_files_with_hunks = 500;  // later files get omitted_reason "file_limit"
};

struct CreateKeyParams {
  std::optional<std::string> name;
  std::vector<std::string> scopes = {"read", "write"};
  std::optional<std::vector<std::string>> repo_ids;
  std::optional<int64_t> expires_in_seconds;
  nlohmann::json tags = nlohmann::json::object();
};

struct NewApiKey {
  ApiKey key;
  std::string secret;  // shown once; only its SHA-256 is stored
};

struct ListKeysParams {
  std::optional<std::string> cursor;
  int limit = 50;
  std::optional<std::string> query;
  std::string status = "active";  // active|revoked|expired|all
  std::optional<std::string> scope;
  std::optional<std::string> repo_id;
  // Set for a repository-restricted caller: only keys restricted to a subset of these repos.
  std::optional<std::vector<std::string>> within_repo_ids;
};

struct CreateWebhookTargetParams {
  std::optional<std::string> name;
  std::string url;
  std::optional<std::vector<std::string>> events;    // default ["push"]
  std::optional<std::vector<std::string>> repo_ids;  // nullopt: org-wide
};

struct UpdateWebhookTargetParams {
  std::optional<std::optional<std::string>> name;                  // present: null clears
  std::optional<std::string> url;
  std::optional<std::vector<std::string>> events;
  std::optional<std::optional<std::vector<std::string>>> repo_ids;  // present: null = org-wide
};

struct NewWebhookTarget {
  WebhookTarget target;
  std::string secret;  // whsec_...; returned by create only
};

struct ListWebhookTargetsParams {
  std::optional<std::string> cursor;
  int limit = 50;
  // Set for a repository-restricted caller: only targets restricted to a subset of these repos.
  std::optional<std::vector<std::string>> within_repo_ids;
};

// One attempt's worth of an outbox row, joined with its target.
struct PendingDelivery {
  int64_t seq = 0;
  std::string event_id;
  std::string event_type;
  std::string body;  // the envelope JSON, identical on every attempt
  std::string target_id;
  std::string url;
  std::string secret;
  int attempts = 0;  // attempts made so far
};

struct OutboxStats {
  int64_t pending = 0;
  int64_t failed = 0;
};

struct CreateRepoParams {
  std::optional<std::string> name;
  std::string default_bookmark = "main";
  nlohmann::json tags = nlohmann::json::object();
  nlohmann::json upstream;  // null or {url, auth}
};

struct UpdateRepoParams {
  std::optional<std::string> name;
  std::optional<std::string> default_bookmark;
  std::optional<nlohmann::json> tags;      // values: string sets, null deletes
  std::optional<nlohmann::json> upstream;  // present: null removes, object sets
};

struct ListReposParams {
  std::optional<std::string> cursor;
  int limit = 50;
  std::vector<std::pair<std::string, std::optional<std::string>>> tag_filter;  // AND-ed
  std::optional<std::vector<std::string>> visible_repo_ids;
};

struct CreateChangeParams {
  std::string base_change_id;
  std::optional<std::string> message;
  std::optional<Signature> author;
  std::optional<Signature> committer;
  std::vector<FileOp> files;
};

struct UpdateChangeParams {
  std::optional<std::string> message;
  std::optional<Signature> author;
  std::optional<Signature> committer;
  std::vector<FileOp> files;
  std::optional<std::string> base_commit_oid;
  std::vector<Resolution> resolutions;
};

struct MoveResult {
  Bookmark bookmark;
  std::optional<std::string> from_change_id;
};

struct MergeParams {
  std::string target;
  std::string source;
  bool delete_source = false;
  bool allow_conflicted = false;
  std::optional<std::string> message;
  std::vector<Resolution> resolutions;
  Signature identity;  // author/committer of the merge commit
};

struct MergeResult {
  std::string merge_type;  // merge_commit | no_op
  bool is_conflicted = false;
  std::string commit_oid;
  std::string change_id;
  std::string target;
  std::string source;
  bool source_deleted = false;
};

enum class ConflictsMode { kInclude, kOnly, kExclude };

struct DiffLine {
  std::string kind;  // context | added | deleted | annotation
  std::string text;
};
struct DiffHunk {
  int old_start = 0, old_lines = 0, new_start = 0, new_lines = 0;
  std::vector<DiffLine> lines;
};
struct ConflictHunk {
  std::string hunk_id;
  int old_start = 0, old_lines = 0, new_start = 0, new_lines = 0;
  std::optional<std::string> target, base, source;  // raw bytes of each side
};
struct DiffEntry {
  std::string path;
  std::string status;  // added | modified | deleted | renamed
  std::optional<std::string> old_path;
  uint64_t size_bytes = 0;
  std::optional<std::string> omitted_reason;
  std::optional<std::vector<DiffHunk>> hunks;
};
struct ConflictedEntry {
  std::string path;
  std::vector<ConflictHunk> hunks;
  uint64_t size_bytes = 0;
  std::optional<std::string> omitted_reason;
};
struct Diff {
  std::string base_change_id;
  std::string head_change_id;
  int additions = 0, deletions = 0, conflicted_hunks = 0;
  bool truncated = false;
  std::vector<DiffEntry> entries;
  std::vector<ConflictedEntry> conflicted_entries;
};

class Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& data_dir,
                                                     StoreOptions options = {});
  ~Store();

  const std::string& data_dir() const { return data_dir_; }

  // Orgs
  absl::StatusOr<Org> CreateOrg(const std::string& slug, const std::string& name);
  absl::StatusOr<Org> GetOrgBySlug(const std::string& slug);
  absl::StatusOr<Org> GetOrgById(const std::string& id);
  absl::StatusOr<int64_t> CountRepos(const std::string& org_id);

  // API keys
  absl::StatusOr<NewApiKey> CreateApiKey(const std::string& org_id, const CreateKeyParams& params);
  // 401 unless the key exists, is not revoked and not expired. Updates last_used_at (throttled).
  absl::StatusOr<ApiKey> AuthenticateKey(std::string_view secret);
  absl::StatusOr<ApiKey> GetApiKey(const std::string& org_id, const std::string& id);
  absl::StatusOr<Page<ApiKey>> ListApiKeys(const std::string& org_id, const ListKeysParams& params);
  absl::Status RevokeApiKey(const std::string& org_id, const std::string& id);
  absl::StatusOr<nlohmann::json> UpdateApiKeyTags(const std::string& org_id, const std::string& id,
                                                  const nlohmann::json& tags);
  // An access token (rest/access_token.h) signed from one of this store's keys: 401 unless
  // the signature verifies against the stored SHA-256 of the key, the token is current and
  // the key is neither revoked nor expired. Returns the key (unclamped) and the claims;
  // updates last_used_at (throttled).
  absl::StatusOr<ApiKey> AuthenticateAccessToken(std::string_view token, rest::AccessTokenClaims* claims);

  // Webhook targets (admin). The secret is stored (it signs deliveries) and returned by
  // create only.
  absl::StatusOr<NewWebhookTarget> CreateWebhookTarget(const std::string& org_id,
                                                       const CreateWebhookTargetParams& params);
  absl::StatusOr<WebhookTarget> GetWebhookTarget(const std::string& org_id, const std::string& id);
  absl::StatusOr<Page<WebhookTarget>> ListWebhookTargets(const std::string& org_id,
                                                         const ListWebhookTargetsParams& params);
  absl::StatusOr<WebhookTarget> UpdateWebhookTarget(const std::string& org_id, const std::string& id,
                                                    const UpdateWebhookTargetParams& params);
  absl::Status DeleteWebhookTarget(const std::string& org_id, const std::string& id);

  // The webhook outbox. Every mutation writes its events (one row per matching target) in
  // the same SQLite transaction as the mutation itself, so an event exists iff the mutation
  // committed. A delivery worker drains it.
  absl::StatusOr<std::vector<PendingDelivery>> DueDeliveries(int64_t now_ms, int limit,
                                                             const std::vector<int64_t>& exclude_seqs);
  // Earliest next_attempt_at of a pending row not in `exclude_seqs`; nullopt when none.
  absl::StatusOr<std::optional<int64_t>> NextDeliveryAt(const std::vector<int64_t>& exclude_seqs);
  absl::Status CompleteDelivery(int64_t seq);
  // Records a failed attempt: retry at `retry_at_ms`, or give up (state failed) when nullopt.
  absl::Status FailDelivery(int64_t seq, int attempts, std::optional<int64_t> retry_at_ms,
                            const std::string& error);
  // Deletes deliveries that were given up before `failed_before_ms`; returns how many.
  absl::StatusOr<int64_t> PruneFailedDeliveries(int64_t failed_before_ms);
  absl::StatusOr<OutboxStats> GetOutboxStats();
  // Called (from the mutating thread) after a transaction that wrote outbox rows committed.
  void SetOutboxListener(std::function<void()> listener);

  // Base of the `repository.url` of webhook events ("<base>/v1/<org>/<repo>"); default
  // "http://localhost".
  void SetPublicUrl(std::string url);

  // Repos
  absl::StatusOr<Repo> CreateRepo(const Org& org, const CreateRepoParams& params);
  absl::StatusOr<Repo> GetRepo(const Org& org, const std::string& name);
  absl::StatusOr<Repo> GetRepoById(const std::string& repo_id);
  absl::StatusOr<Page<Repo>> ListRepos(const Org& org, const ListReposParams& params);
  absl::StatusOr<Repo> UpdateRepo(const Org& org, const Repo& repo, const UpdateRepoParams& params);
  absl::Status DeleteRepo(const Repo& repo);
  absl::StatusOr<int64_t> BulkUpdateRepoTags(const Org& org, const std::vector<std::string>& repo_ids,
                                             bool set, const std::string& key,
                                             const std::optional<std::string>& value);

  // Bookmarks
  absl::StatusOr<Page<Bookmark>> ListBookmarks(const Repo& repo, std::optional<std::string> cursor,
                                               int limit, std::optional<std::string> glob);
  absl::StatusOr<Bookmark> GetBookmark(const Repo& repo, const std::string& name);
  absl::StatusOr<Bookmark> CreateBookmark(const Repo& repo, const std::string& name,
                                          const std::string& change_id);
  absl::StatusOr<MoveResult> MoveBookmark(const Repo& repo, const std::string& name,
                                          const std::string& change_id);
  absl::Status DeleteBookmark(const Repo& repo, const std::string& name);
  absl::StatusOr<MergeResult> MergeBookmarks(const Repo& repo, const MergeParams& params);

  // Changes
  absl::StatusOr<Page<Change>> ListChanges(const Repo& repo, std::optional<std::string> bookmark,
                                           std::optional<std::string> cursor, int limit);
  absl::StatusOr<Change> GetChange(const Repo& repo, const std::string& change_id);
  absl::StatusOr<Change> CreateChange(const Repo& repo, const CreateChangeParams& params,
                                      const Signature& default_identity);
  absl::StatusOr<Change> UpdateChange(const Repo& repo, const std::string& change_id,
                                      const UpdateChangeParams& params);

  // Content. `change_id` nullopt = the change at the default bookmark's tip.
  absl::StatusOr<Content> GetContent(const Repo& repo, const std::optional<std::string>& change_id,
                                     const std::string& path, int depth, bool with_data);

  absl::StatusOr<Diff> GetDiff(const Repo& repo, const std::string& base_change_id,
                               const std::string& head_change_id, ConflictsMode mode);
  absl::StatusOr<std::string> GetUnifiedDiff(const Repo& repo, const std::string& base_change_id,
                                             const std::string& head_change_id);

  // Path of a repo's bare git directory (for git clone and tests).
  std::string GitDir(const std::string& repo_id) const;

 private:
  class GitLease;
  friend class GitLease;
  struct Internals;

  Store(std::string data_dir, StoreOptions options);
  absl::Status Init();

  absl::StatusOr<GitLease> Git(const std::string& repo_id);
  std::shared_ptr<std::mutex> RepoMutex(const std::string& repo_id);

  // Webhook events of one mutation. EnqueueEvents runs inside the mutation's open
  // transaction; KickOutbox after it committed.
  struct Event {
    std::string type;
    nlohmann::json data;
  };
  absl::Status EnqueueEvents(SqliteConnection& db, const std::string& org_id, const Repo* repo,
                             const std::vector<Event>& events);
  void KickOutbox();
  absl::StatusOr<ApiKey> UsableKey(ApiKey key);

  std::string data_dir_;
  StoreOptions options_;
  std::unique_ptr<Internals> in_;
};

// The wire form of a conflict hunk (sides base64-encoded), used by diffs and MERGE_CONFLICT.
nlohmann::json ConflictHunkJson(const ConflictHunk& hunk);

// Parses a cursor produced by the store; exposed for tests.
std::optional<std::string> DecodeCursor(std::string_view cursor, char kind);
std::string EncodeCursor(char kind, std::string_view value);

// Glob with '*' and '?' as documented for bookmark listing.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace mesa::server
