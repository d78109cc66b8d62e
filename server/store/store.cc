#include "server/store/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <filesystem>
#include <set>

#include "absl/strings/str_split.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "rest/validate.h"
#include "server/store/store_internal.h"
#include "server/webhooks/events.h"

namespace mesa::server {

namespace fs = std::filesystem;
using rest::ApiError;
using rest::NowUnixMillis;

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs(
  id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name TEXT, key_hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL, repo_ids TEXT,
  tags TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL,
  expires_at INTEGER, revoked_at INTEGER, last_used_at INTEGER);
CREATE TABLE IF NOT EXISTS repos(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name TEXT NOT NULL, default_bookmark TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '{}',
  upstream TEXT, created_at INTEGER NOT NULL, UNIQUE(org_id, name));
CREATE TABLE IF NOT EXISTS bookmarks(
  repo_id TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  name TEXT NOT NULL, change_id TEXT NOT NULL, PRIMARY KEY(repo_id, name));
CREATE TABLE IF NOT EXISTS changes(
  repo_id TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  change_id TEXT NOT NULL, commit_oid TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY(repo_id, change_id));
CREATE TABLE IF NOT EXISTS commits(
  repo_id TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  commit_oid TEXT NOT NULL, change_id TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY(repo_id, commit_oid));
CREATE TABLE IF NOT EXISTS conflicts(
  repo_id TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  commit_oid TEXT NOT NULL, path TEXT NOT NULL,
  base_oid TEXT, target_oid TEXT, source_oid TEXT, mode INTEGER NOT NULL,
  PRIMARY KEY(repo_id, commit_oid, path));
CREATE TABLE IF NOT EXISTS webhook_targets(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
  org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name TEXT, url TEXT NOT NULL, events TEXT NOT NULL, repo_ids TEXT, secret TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_deliveries(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
  target_id TEXT NOT NULL REFERENCES webhook_targets(id) ON DELETE CASCADE,
  body TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL, last_error TEXT, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_target ON webhook_deliveries(target_id);
)sql";

// Keys look like mesa_<40 alphanumerics>; the store keeps base64url(SHA-256(key)).
std::string HashKey(std::string_view secret) {
  return rest::Base64UrlEncodeNoPad(rest::Sha256(secret));
}

using store_detail::NewId;
using store_detail::ParseJsonColumn;

ApiKey ReadKeyRow(const Statement& s) {
  // columns: id, org_id, name, scopes, repo_ids, tags, created_at, expires_at, revoked_at, last_used_at
  ApiKey k;
  k.id = s.Text(0);
  k.org_id = s.Text(1);
  k.name = s.OptText(2);
  k.scopes = ParseJsonColumn(s.OptText(3), nlohmann::json::array()).get<std::vector<std::string>>();
  auto repo_ids = ParseJsonColumn(s.OptText(4), nullptr);
  if (repo_ids.is_array()) k.repo_ids = repo_ids.get<std::vector<std::string>>();
  k.tags = ParseJsonColumn(s.OptText(5), nlohmann::json::object());
  k.created_at_ms = s.Int(6);
  k.expires_at_ms = s.OptInt(7);
  k.revoked_at_ms = s.OptInt(8);
  k.last_used_at_ms = s.OptInt(9);
  return k;
}
constexpr std::string_view kKeyColumns =
    "id, org_id, name, scopes, repo_ids, tags, created_at, expires_at, revoked_at, last_used_at";

constexpr std::string_view kRepoColumns =
    "r.seq, r.id, r.org_id, o.slug, r.name, r.default_bookmark, r.tags, r.upstream, r.created_at, "
    "(SELECT change_id FROM bookmarks b WHERE b.repo_id = r.id AND b.name = r.default_bookmark)";

Repo ReadRepoRow(const Statement& s) {
  Repo r;
  r.seq = s.Int(0);
  r.id = s.Text(1);
  r.org_id = s.Text(2);
  r.org_slug = s.Text(3);
  r.name = s.Text(4);
  r.default_bookmark = s.Text(5);
  r.tags = ParseJsonColumn(s.OptText(6), nlohmann::json::object());
  r.upstream = ParseJsonColumn(s.OptText(7), nullptr);
  r.created_at_ms = s.Int(8);
  r.head_change_id = s.OptText(9).value_or(std::string(rest::kVirtualRootChangeId));
  return r;
}

absl::Status CheckTags(const nlohmann::json& tags, bool allow_null, std::string_view field) {
  if (!tags.is_object()) return rest::FieldError(field, "must be an object of strings");
  for (auto& [k, v] : tags.items()) {
    if (k.empty() || k.size() > rest::kMaxTagKeyLength)
      return rest::FieldError(field, "tag keys must have 1..64 characters");
    if (v.is_null() && allow_null) continue;
    if (!v.is_string()) return rest::FieldError(field, "tag values must be strings");
    if (v.get<std::string>().size() > rest::kMaxTagValueLength)
      return rest::FieldError(field, "tag values must have at most 256 characters");
  }
  return absl::OkStatus();
}

// Tag keys are case-insensitive: stored lower-case.
nlohmann::json LowerKeys(const nlohmann::json& tags) {
  nlohmann::json out = nlohmann::json::object();
  for (auto& [k, v] : tags.items()) {
    std::string lower = k;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out[lower] = v;
  }
  return out;
}

}  // namespace

namespace store_detail {

std::string NewId(std::string_view prefix) { return std::string(prefix) + rest::RandomAlphanumeric(20); }

nlohmann::json ParseJsonColumn(const std::optional<std::string>& text, nlohmann::json fallback) {
  if (!text) return fallback;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

absl::StatusOr<Repo> LoadRepo(SqliteConnection& db, const std::string& repo_id) {
  auto stmt = db.Prepare(std::string("SELECT ") + std::string(kRepoColumns) +
                         " FROM repos r JOIN orgs o ON o.id = r.org_id WHERE r.id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("REPO_NOT_FOUND", "repository '" + repo_id + "' not found");
  return ReadRepoRow(*stmt);
}

std::string CommitOrEmpty(SqliteConnection& db, const std::string& repo_id, const std::string& change_id) {
  auto commit = ChangeCommit(db, repo_id, change_id);
  return commit.ok() ? *commit : std::string();
}

}  // namespace store_detail

// ---- cursors and globbing ----

std::string EncodeCursor(char kind, std::string_view value) {
  return rest::Base64UrlEncodeNoPad(std::string(1, kind) + ":" + std::string(value));
}

std::optional<std::string> DecodeCursor(std::string_view cursor, char kind) {
  auto raw = rest::Base64UrlDecode(cursor);
  if (!raw || raw->size() < 2 || (*raw)[0] != kind || (*raw)[1] != ':') return std::nullopt;
  return raw->substr(2);
}

bool GlobMatch(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

// ---- ApiKey ----

bool ApiKey::HasScope(Scope needed) const {
  int best = 0;
  for (const auto& s : scopes) {
    if (s == "read") best = std::max(best, 1);
    if (s == "write") best = std::max(best, 2);
    if (s == "admin") best = std::max(best, 3);
  }
  return best >= static_cast<int>(needed);
}

bool ApiKey::CanSeeRepo(const std::string& repo_id) const {
  if (!repo_ids) return true;
  return std::find(repo_ids->begin(), repo_ids->end(), repo_id) != repo_ids->end();
}

// ---- lifecycle ----

Store::Store(std::string data_dir, StoreOptions options)
    : data_dir_(std::move(data_dir)), options_(options) {}

Store::~Store() = default;

Store::GitLease::~GitLease() {
  if (!repo_ || !store_) return;
  std::lock_guard<std::mutex> lock(store_->in_->mu);
  auto& idle = store_->in_->git_idle[repo_id_];
  if (idle.size() < 8) idle.push_back(std::move(repo_));
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& data_dir,
                                                   StoreOptions options) {
  git::GlobalInit();
  std::error_code ec;
  fs::create_directories(fs::path(data_dir) / "repos", ec);
  if (ec) return rest::InternalError("cannot create " + data_dir + ": " + ec.message());
  fs::permissions(data_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  auto store = std::unique_ptr<Store>(new Store(data_dir, options));
  if (auto st = store->Init(); !st.ok()) return st;
  return store;
}

namespace {
void RemoveStaleGitLocks(const std::string& git_dir) {
  std::error_code ec;
  for (const char* top : {"HEAD.lock", "packed-refs.lock", "config.lock"}) fs::remove(fs::path(git_dir) / top, ec);
  for (auto it = fs::recursive_directory_iterator(fs::path(git_dir) / "refs", ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->path().extension() == ".lock") fs::remove(it->path(), ec);
  }
}
}  // namespace

absl::Status Store::Init() {
  if (options_.fsync) git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
  in_ = std::make_unique<Internals>((fs::path(data_dir_) / "meta.db").string(), options_.fsync);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  if (auto st = (*db)->Exec(kSchema); !st.ok()) return st;

  // Repair what a killed process may have left: directories of repos whose row never
  // committed (or was deleted), and refs that lag behind the bookmarks table.
  std::set<std::string> repo_ids;
  {
    auto stmt = (*db)->Prepare("SELECT id FROM repos");
    if (!stmt.ok()) return stmt.status();
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      repo_ids.insert(stmt->Text(0));
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(data_dir_) / "repos", ec)) {
    std::string name = entry.path().filename().string();
    if (name.ends_with(".git") && !repo_ids.count(name.substr(0, name.size() - 4))) {
      fs::remove_all(entry.path(), ec);
    }
  }
  // A process killed while libgit2 wrote a ref leaves "<ref>.lock" behind, and every later
  // write of that ref fails with GIT_ELOCKED (the ref would lag its bookmark for good). With
  // the data dir's owner lock no other process is writing, so such files are leftovers.
  int lock_fd = open((fs::path(data_dir_) / "store.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) == 0) {
    in_->owner_lock_fd = lock_fd;
    for (const auto& id : repo_ids) RemoveStaleGitLocks(GitDir(id));
  } else if (lock_fd >= 0) {
    close(lock_fd);
  }
  for (const auto& id : repo_ids) {
    auto lease = Git(id);
    if (!lease.ok()) return lease.status();
    if (auto st = store_detail::SyncRefs(lease->get(), **db, id); !st.ok()) return st;
  }
  return absl::OkStatus();
}

std::string Store::GitDir(const std::string& repo_id) const {
  return (fs::path(data_dir_) / "repos" / (repo_id + ".git")).string();
}

absl::StatusOr<Store::GitLease> Store::Git(const std::string& repo_id) {
  {
    std::lock_guard<std::mutex> lock(in_->mu);
    auto& idle = in_->git_idle[repo_id];
    if (!idle.empty()) {
      auto repo = std::move(idle.back());
      idle.pop_back();
      return GitLease(this, repo_id, std::move(repo));
    }
  }
  auto repo = git::OpenBare(GitDir(repo_id));
  if (!repo.ok()) return repo.status();
  return GitLease(this, repo_id, std::move(*repo));
}

std::shared_ptr<std::mutex> Store::RepoMutex(const std::string& repo_id) {
  std::lock_guard<std::mutex> lock(in_->mu);
  auto& weak = in_->repo_locks[repo_id];
  auto strong = weak.lock();
  if (!strong) {
    strong = std::make_shared<std::mutex>();
    weak = strong;
  }
  return strong;
}

// ---- orgs ----

absl::StatusOr<Org> Store::CreateOrg(const std::string& slug, const std::string& name) {
  if (!rest::IsValidOrgSlug(slug)) return rest::FieldError("slug", "must match [a-z0-9_-]{1,64}");
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Org org{NewId("org_"), slug, name.empty() ? slug : name, NowUnixMillis()};
  auto stmt = (*db)->Prepare("INSERT OR IGNORE INTO orgs(id, slug, name, created_at) VALUES(?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org.id).Bind(2, org.slug).Bind(3, org.name).Bind(4, org.created_at_ms);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0) return rest::ConflictError("ORG_ALREADY_EXISTS", "organization '" + slug + "' already exists");
  return org;
}

static absl::StatusOr<Org> QueryOrg(SqliteConnection& db, std::string_view where, const std::string& value) {
  auto stmt = db.Prepare(std::string("SELECT id, slug, name, created_at FROM orgs WHERE ") +
                         std::string(where) + " = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, value);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("ORG_NOT_FOUND", "organization '" + value + "' not found");
  return Org{stmt->Text(0), stmt->Text(1), stmt->Text(2), stmt->Int(3)};
}

absl::StatusOr<Org> Store::GetOrgBySlug(const std::string& slug) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  return QueryOrg(**db, "slug", slug);
}

absl::StatusOr<Org> Store::GetOrgById(const std::string& id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  return QueryOrg(**db, "id", id);
}

absl::StatusOr<int64_t> Store::CountRepos(const std::string& org_id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare("SELECT COUNT(*) FROM repos WHERE org_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org_id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  return stmt->Int(0);
}

// ---- API keys ----

absl::StatusOr<NewApiKey> Store::CreateApiKey(const std::string& org_id, const CreateKeyParams& p) {
  if (p.scopes.empty()) return rest::FieldError("scopes", "must not be empty");
  for (const auto& s : p.scopes) {
    if (s != "read" && s != "write" && s != "admin")
      return rest::FieldError("scopes", "each scope must be read, write or admin");
  }
  if (p.expires_in_seconds && (*p.expires_in_seconds < 100 || *p.expires_in_seconds > 31536000))
    return rest::FieldError("expires_in_seconds", "must be between 100 and 31536000");
  if (auto st = CheckTags(p.tags, false, "tags"); !st.ok()) return st;

  NewApiKey out;
  out.secret = "mesa_" + rest::RandomAlphanumeric(40);
  ApiKey& k = out.key;
  k.id = NewId("key_");
  k.org_id = org_id;
  k.name = p.name;
  k.scopes = p.scopes;
  k.repo_ids = p.repo_ids;
  k.tags = LowerKeys(p.tags);
  k.created_at_ms = NowUnixMillis();
  if (p.expires_in_seconds) k.expires_at_ms = k.created_at_ms + *p.expires_in_seconds * 1000;

  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "INSERT INTO api_keys(id, org_id, name, key_hash, scopes, repo_ids, tags, created_at, "
      "expires_at) VALUES(?,?,?,?,?,?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, k.id).Bind(2, org_id).Bind(3, k.name).Bind(4, HashKey(out.secret))
      .Bind(5, nlohmann::json(k.scopes).dump())
      .Bind(6, k.repo_ids ? std::optional<std::string>(nlohmann::json(*k.repo_ids).dump()) : std::nullopt)
      .Bind(7, k.tags.dump()).Bind(8, k.created_at_ms).Bind(9, k.expires_at_ms);
  if (auto st = stmt->Run(); !st.ok()) return st;
  return out;
}

absl::StatusOr<ApiKey> Store::AuthenticateKey(std::string_view secret) {
  auto unauthenticated = ApiError(401, "UNAUTHENTICATED", "invalid API key");
  if (secret.empty() || secret.size() > 512) return unauthenticated;
  std::string hash = HashKey(secret);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kKeyColumns) +
                             ", key_hash FROM api_keys WHERE key_hash = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, hash);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row || !rest::ConstantTimeEquals(stmt->Text(10), hash)) return unauthenticated;
  return UsableKey(ReadKeyRow(*stmt));
}

absl::StatusOr<ApiKey> Store::AuthenticateAccessToken(std::string_view token, rest::AccessTokenClaims* claims) {
  auto invalid = ApiError(401, "UNAUTHENTICATED", "invalid access token");
  if (token.size() > 16384) return invalid;
  auto key_id = rest::AccessTokenKeyId(token);
  if (!key_id.ok()) return key_id.status();
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kKeyColumns) +
                             ", key_hash FROM api_keys WHERE id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, *key_id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return invalid;
  // The HMAC key is the stored base64url SHA-256 of the key, as the SDK derives it.
  auto verified = rest::VerifyAccessToken(token, stmt->Text(10), NowUnixMillis() / 1000);
  if (!verified.ok()) return verified.status();
  ApiKey key = ReadKeyRow(*stmt);
  auto usable = UsableKey(std::move(key));
  if (!usable.ok()) return usable.status();
  if (claims) *claims = std::move(*verified);
  return usable;
}

// 401 for revoked and expired keys; otherwise touches last_used_at (at most once a minute per
// key, so reads do not all become writes).
absl::StatusOr<ApiKey> Store::UsableKey(ApiKey key) {
  int64_t now = NowUnixMillis();
  if (key.revoked_at_ms) return ApiError(401, "UNAUTHENTICATED", "API key has been revoked");
  if (key.expires_at_ms && *key.expires_at_ms <= now)
    return ApiError(401, "UNAUTHENTICATED", "API key has expired");
  bool touch = false;
  {
    std::lock_guard<std::mutex> lock(in_->mu);
    auto& last = in_->key_last_used_ms[key.id];
    if (now - last > 60000) {
      last = now;
      touch = true;
    }
  }
  if (touch) {
    auto db = in_->db.Acquire();
    if (!db.ok()) return key;
    auto upd = (*db)->Prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?");
    if (upd.ok()) {
      upd->Bind(1, now).Bind(2, key.id);
      (void)upd->Run();
      key.last_used_at_ms = now;
    }
  }
  return key;
}

absl::StatusOr<ApiKey> Store::GetApiKey(const std::string& org_id, const std::string& id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kKeyColumns) +
                             " FROM api_keys WHERE org_id = ? AND id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org_id).Bind(2, id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("API_KEY_NOT_FOUND", "API key '" + id + "' not found");
  return ReadKeyRow(*stmt);
}

absl::StatusOr<Page<ApiKey>> Store::ListApiKeys(const std::string& org_id, const ListKeysParams& p) {
  int64_t after = 0;
  if (p.cursor) {
    auto v = DecodeCursor(*p.cursor, 'k');
    if (!v || v->empty() || !absl::SimpleAtoi(*v, &after)) return rest::FieldError("cursor", "invalid cursor");
  }
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kKeyColumns) +
                             ", seq FROM api_keys WHERE org_id = ? AND seq > ? ORDER BY seq");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org_id).Bind(2, after);
  Page<ApiKey> page;
  int64_t now = NowUnixMillis();
  int64_t last_seq = 0;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ApiKey k = ReadKeyRow(*stmt);
    bool revoked = k.revoked_at_ms.has_value();
    bool expired = !revoked && k.expires_at_ms && *k.expires_at_ms <= now;
    std::string state = revoked ? "revoked" : expired ? "expired" : "active";
    if (p.status != "all" && p.status != state) continue;
    if (p.query && (!k.name || k.name->find(*p.query) == std::string::npos)) continue;
    if (p.scope && std::find(k.scopes.begin(), k.scopes.end(), *p.scope) == k.scopes.end()) continue;
    if (p.repo_id && (!k.repo_ids || std::find(k.repo_ids->begin(), k.repo_ids->end(), *p.repo_id) ==
                                         k.repo_ids->end()))
      continue;
    if (p.within_repo_ids && !store_detail::RepoSubset(k.repo_ids, *p.within_repo_ids)) continue;
    if (static_cast<int>(page.items.size()) == p.limit) {
      page.next_cursor = EncodeCursor('k', std::to_string(last_seq));
      break;
    }
    last_seq = stmt->Int(10);
    page.items.push_back(std::move(k));
  }
  return page;
}

absl::Status Store::RevokeApiKey(const std::string& org_id, const std::string& id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE org_id = ? AND id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, NowUnixMillis()).Bind(2, org_id).Bind(3, id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0) return rest::NotFoundError("API_KEY_NOT_FOUND", "API key '" + id + "' not found");
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Store::UpdateApiKeyTags(const std::string& org_id,
                                                       const std::string& id,
                                                       const nlohmann::json& tags) {
  if (auto st = CheckTags(tags, true, "tags"); !st.ok()) return st;
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto key = GetApiKey(org_id, id);
  if (!key.ok()) return key.status();
  nlohmann::json merged = key->tags;
  const nlohmann::json lowered = LowerKeys(tags);
  for (auto& [k, v] : lowered.items()) {
    if (v.is_null()) merged.erase(k);
    else merged[k] = v;
  }
  auto stmt = (*db)->Prepare("UPDATE api_keys SET tags = ? WHERE id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, merged.dump()).Bind(2, id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  return merged;
}

// ---- repos ----

absl::StatusOr<Repo> Store::CreateRepo(const Org& org, const CreateRepoParams& p) {
  std::string name = p.name.value_or("repo-" + rest::RandomAlphanumeric(8));
  if (!rest::IsValidRepoName(name))
    return rest::FieldError("name", "must be 1..100 characters of [A-Za-z0-9._-] and not end in .git");
  if (!rest::IsValidBookmarkName(p.default_bookmark))
    return rest::FieldError("default_bookmark", "is not a valid bookmark name");
  if (auto st = CheckTags(p.tags, false, "tags"); !st.ok()) return st;
  if (!p.upstream.is_null() && (!p.upstream.is_object() || !p.upstream.contains("url") ||
                                !p.upstream["url"].is_string()))
    return rest::FieldError("upstream.url", "is required");

  Repo repo;
  repo.id = NewId("repo_");
  repo.org_id = org.id;
  repo.org_slug = org.slug;
  repo.name = name;
  repo.default_bookmark = p.default_bookmark;
  repo.head_change_id = std::string(rest::kVirtualRootChangeId);
  repo.tags = LowerKeys(p.tags);
  repo.upstream = p.upstream;
  repo.created_at_ms = NowUnixMillis();

  // Directory first, row second: a crash in between leaves an orphan directory that Open()
  // removes, never a row without its git repository.
  auto git = git::InitBare(GitDir(repo.id));
  if (!git.ok()) return git.status();
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto ins = (*db)->Prepare(
      "INSERT OR IGNORE INTO repos(id, org_id, name, default_bookmark, tags, upstream, created_at) "
      "VALUES(?,?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  ins->Bind(1, repo.id).Bind(2, org.id).Bind(3, name).Bind(4, repo.default_bookmark)
      .Bind(5, repo.tags.dump())
      .Bind(6, repo.upstream.is_null() ? std::optional<std::string>() : repo.upstream.dump())
      .Bind(7, repo.created_at_ms);
  if (auto st = ins->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0) {
    std::error_code ec;
    fs::remove_all(GitDir(repo.id), ec);
    return rest::ConflictError("REPO_ALREADY_EXISTS", "repository '" + name + "' already exists");
  }
  repo.seq = sqlite3_last_insert_rowid((*db)->raw());
  auto bm = (*db)->Prepare("INSERT INTO bookmarks(repo_id, name, change_id) VALUES(?,?,?)");
  if (!bm.ok()) return bm.status();
  bm->Bind(1, repo.id).Bind(2, repo.default_bookmark).Bind(3, repo.head_change_id);
  if (auto st = bm->Run(); !st.ok()) return st;
  // The default bookmark starts at the virtual root: no git ref, so no push.
  std::vector<Event> events = {
      {"repo.created", {{"repo", webhooks::RepoInfo(repo)}}},
      {"bookmark.created", {{"bookmark", webhooks::BookmarkInfo(repo.default_bookmark, true, repo.head_change_id, "")}}}};
  if (auto st = EnqueueEvents(**db, org.id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  KickOutbox();
  git_repository_set_head(git->get(), ("refs/heads/" + repo.default_bookmark).c_str());
  return repo;
}

absl::StatusOr<Repo> Store::GetRepo(const Org& org, const std::string& name) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kRepoColumns) +
                             " FROM repos r JOIN orgs o ON o.id = r.org_id WHERE r.org_id = ? AND r.name = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org.id).Bind(2, name);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("REPO_NOT_FOUND", "repository '" + name + "' not found");
  return ReadRepoRow(*stmt);
}

absl::StatusOr<Repo> Store::GetRepoById(const std::string& repo_id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kRepoColumns) +
                             " FROM repos r JOIN orgs o ON o.id = r.org_id WHERE r.id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("REPO_NOT_FOUND", "repository '" + repo_id + "' not found");
  return ReadRepoRow(*stmt);
}

absl::StatusOr<Page<Repo>> Store::ListRepos(const Org& org, const ListReposParams& p) {
  int64_t after = 0;
  if (p.cursor) {
    auto v = DecodeCursor(*p.cursor, 'r');
    if (!v || !absl::SimpleAtoi(*v, &after)) return rest::FieldError("cursor", "invalid cursor");
  }
  std::string sql = std::string("SELECT ") + std::string(kRepoColumns) +
                    " FROM repos r JOIN orgs o ON o.id = r.org_id WHERE r.org_id = ? AND r.seq > ?";
  for (size_t i = 0; i < p.tag_filter.size(); ++i) {
    sql += p.tag_filter[i].second ? " AND json_extract(r.tags, ?) = ?"
                                  : " AND json_extract(r.tags, ?) IS NOT NULL";
  }
  if (p.visible_repo_ids) {
    sql += " AND r.id IN (SELECT value FROM json_each(?))";
  }
  sql += " ORDER BY r.seq LIMIT ?";
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  int idx = 3;
  stmt->Bind(1, org.id).Bind(2, after);
  for (const auto& [key, value] : p.tag_filter) {
    stmt->Bind(idx++, "$.\"" + key + "\"");
    if (value) stmt->Bind(idx++, *value);
  }
  if (p.visible_repo_ids) stmt->Bind(idx++, nlohmann::json(*p.visible_repo_ids).dump());
  stmt->Bind(idx++, p.limit + 1);
  Page<Repo> page;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    page.items.push_back(ReadRepoRow(*stmt));
  }
  if (static_cast<int>(page.items.size()) > p.limit) {
    page.items.pop_back();
    page.next_cursor = EncodeCursor('r', std::to_string(page.items.back().seq));
  }
  return page;
}

absl::StatusOr<Repo> Store::UpdateRepo(const Org& org, const Repo& repo, const UpdateRepoParams& p) {
  if (p.name && !rest::IsValidRepoName(*p.name))
    return rest::FieldError("name", "must be 1..100 characters of [A-Za-z0-9._-] and not end in .git");
  if (p.default_bookmark && !rest::IsValidBookmarkName(*p.default_bookmark))
    return rest::FieldError("default_bookmark", "is not a valid bookmark name");
  if (p.tags) {
    if (auto st = CheckTags(*p.tags, true, "tags"); !st.ok()) return st;
  }
  if (p.upstream && !p.upstream->is_null() &&
      (!p.upstream->is_object() || !p.upstream->contains("url") || !(*p.upstream)["url"].is_string()))
    return rest::FieldError("upstream.url", "is required");

  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto current = GetRepoById(repo.id);
  if (!current.ok()) return current.status();
  Repo next = *current;
  if (p.name) next.name = *p.name;
  if (p.default_bookmark) {
    auto bm = store_detail::BookmarkChange(**db, repo.id, *p.default_bookmark);
    if (!bm.ok()) return bm.status();
    next.default_bookmark = *p.default_bookmark;
  }
  if (p.tags) {
    const nlohmann::json lowered = LowerKeys(*p.tags);
    for (auto& [k, v] : lowered.items()) {
      if (v.is_null()) next.tags.erase(k);
      else next.tags[k] = v;
    }
  }
  if (p.upstream) {
    if (p.upstream->is_null()) {
      next.upstream = nullptr;
    } else {
      nlohmann::json up = *p.upstream;
      // Omitted auth keeps the stored credential; null clears it.
      if (!up.contains("auth") && next.upstream.is_object() && next.upstream.contains("auth"))
        up["auth"] = next.upstream["auth"];
      next.upstream = up;
    }
  }
  auto stmt = (*db)->Prepare(
      "UPDATE OR IGNORE repos SET name = ?, default_bookmark = ?, tags = ?, upstream = ? WHERE id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, next.name).Bind(2, next.default_bookmark).Bind(3, next.tags.dump())
      .Bind(4, next.upstream.is_null() ? std::optional<std::string>() : next.upstream.dump())
      .Bind(5, repo.id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0)
    return rest::ConflictError("REPO_ALREADY_EXISTS", "repository '" + next.name + "' already exists");
  bool changed = next.name != current->name || next.default_bookmark != current->default_bookmark ||
                 next.tags != current->tags;
  if (changed) {
    auto after = store_detail::LoadRepo(**db, repo.id);
    if (!after.ok()) return after.status();
    std::vector<Event> events = {{"repo.updated",
                                  {{"repo", webhooks::RepoInfo(*after)},
                                   {"before", webhooks::RepoSnapshot(*current)},
                                   {"after", webhooks::RepoSnapshot(*after)}}}};
    if (auto st = EnqueueEvents(**db, org.id, &*after, events); !st.ok()) return st;
  }
  if (auto st = txn.Commit(); !st.ok()) return st;
  if (changed) KickOutbox();
  if (p.default_bookmark) {
    auto git = Git(repo.id);
    if (!git.ok()) return git.status();
    if (auto st = store_detail::SyncRefs(git->get(), **db, repo.id); !st.ok()) return st;
  }
  return GetRepoById(repo.id);
}

absl::Status Store::DeleteRepo(const Repo& repo) {
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto before = store_detail::LoadRepo(**db, repo.id);
  if (!before.ok()) return rest::NotFoundError("REPO_NOT_FOUND", "repository '" + repo.name + "' not found");
  auto stmt = (*db)->Prepare("DELETE FROM repos WHERE id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo.id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0) return rest::NotFoundError("REPO_NOT_FOUND", "repository '" + repo.name + "' not found");
  std::vector<Event> events = {{"repo.deleted", {{"repo", webhooks::RepoInfo(*before)}}}};
  if (auto st = EnqueueEvents(**db, before->org_id, &*before, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  KickOutbox();
  {
    std::lock_guard<std::mutex> l(in_->mu);
    in_->git_idle.erase(repo.id);
  }
  std::error_code ec;
  fs::remove_all(GitDir(repo.id), ec);  // a leftover is removed by the next Open()
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Store::BulkUpdateRepoTags(const Org& org, const std::vector<std::string>& repo_ids,
                                                  bool set, const std::string& key_in,
                                                  const std::optional<std::string>& value) {
  std::string key = key_in;
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (key.empty() || key.size() > rest::kMaxTagKeyLength) return rest::FieldError("key", "must have 1..64 characters");
  if (set && !value) return rest::FieldError("value", "is required when action is set");
  if (value && value->size() > rest::kMaxTagValueLength) return rest::FieldError("value", "must have at most 256 characters");
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  int64_t updated = 0;
  std::string path = "$.\"" + key + "\"";
  bool any_event = false;
  for (const auto& id : repo_ids) {
    auto before = store_detail::LoadRepo(**db, id);
    if (!before.ok() || before->org_id != org.id) continue;
    auto one = (*db)->Prepare(set ? "UPDATE repos SET tags = json_set(tags, ?, ?) WHERE org_id = ? AND id = ?"
                                  : "UPDATE repos SET tags = json_remove(tags, ?) WHERE org_id = ? AND id = ? "
                                    "AND json_extract(tags, ?) IS NOT NULL");
    if (!one.ok()) return one.status();
    if (set) one->Bind(1, path).Bind(2, *value).Bind(3, org.id).Bind(4, id);
    else one->Bind(1, path).Bind(2, org.id).Bind(3, id).Bind(4, path);
    if (auto st = one->Run(); !st.ok()) return st;
    if ((*db)->Changes() == 0) continue;
    ++updated;
    auto after = store_detail::LoadRepo(**db, id);
    if (!after.ok()) return after.status();
    if (after->tags == before->tags) continue;
    std::vector<Event> events = {{"repo.updated",
                                  {{"repo", webhooks::RepoInfo(*after)},
                                   {"before", webhooks::RepoSnapshot(*before)},
                                   {"after", webhooks::RepoSnapshot(*after)}}}};
    if (auto st = EnqueueEvents(**db, org.id, &*after, events); !st.ok()) return st;
    any_event = true;
  }
  if (auto st = txn.Commit(); !st.ok()) return st;
  if (any_event) KickOutbox();
  return updated;
}

// ---- shared helpers ----

namespace store_detail {

absl::StatusOr<std::string> ChangeCommit(SqliteConnection& db, const std::string& repo_id,
                                         const std::string& change_id) {
  if (change_id == rest::kVirtualRootChangeId) return std::string();
  auto stmt = db.Prepare("SELECT commit_oid FROM changes WHERE repo_id = ? AND change_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id).Bind(2, change_id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("CHANGE_NOT_FOUND", "change '" + change_id + "' not found");
  return stmt->Text(0);
}

absl::StatusOr<std::string> BookmarkChange(SqliteConnection& db, const std::string& repo_id,
                                           const std::string& name) {
  auto stmt = db.Prepare("SELECT change_id FROM bookmarks WHERE repo_id = ? AND name = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id).Bind(2, name);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("BOOKMARK_NOT_FOUND", "bookmark '" + name + "' not found");
  return stmt->Text(0);
}

Change VirtualRootChange() {
  Change c;
  c.id = std::string(rest::kVirtualRootChangeId);
  c.commit_oid = std::string(40, '0');
  return c;
}

absl::StatusOr<Change> LoadChange(git_repository* git, SqliteConnection& db,
                                  const std::string& repo_id, const std::string& change_id) {
  if (change_id == rest::kVirtualRootChangeId) return VirtualRootChange();
  auto stmt = db.Prepare(
      "SELECT commit_oid, created_at, updated_at, "
      "EXISTS(SELECT 1 FROM conflicts k WHERE k.repo_id = c.repo_id AND k.commit_oid = c.commit_oid) "
      "FROM changes c WHERE repo_id = ? AND change_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id).Bind(2, change_id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return rest::NotFoundError("CHANGE_NOT_FOUND", "change '" + change_id + "' not found");
  Change c;
  c.id = change_id;
  c.commit_oid = stmt->Text(0);
  c.created_at_ms = stmt->Int(1);
  c.updated_at_ms = stmt->Int(2);
  c.is_conflicted = stmt->Int(3) != 0;
  auto info = git::ReadCommit(git, c.commit_oid);
  if (!info.ok()) return info.status();
  c.message = info->message;
  c.author = info->author;
  c.committer = info->committer;
  if (info->parent_oids.empty()) {
    c.parents.push_back(std::string(rest::kVirtualRootChangeId));
  }
  for (const auto& p : info->parent_oids) {
    auto lookup = db.Prepare("SELECT change_id FROM commits WHERE repo_id = ? AND commit_oid = ?");
    if (!lookup.ok()) return lookup.status();
    lookup->Bind(1, repo_id).Bind(2, p);
    auto prow = lookup->Step();
    if (!prow.ok()) return prow.status();
    if (*prow) {
      c.parents.push_back(lookup->Text(0));
    } else {
      auto pinfo = git::ReadCommit(git, p);
      if (!pinfo.ok()) return pinfo.status();
      c.parents.push_back(pinfo->change_id);
    }
  }
  return c;
}

absl::Status SyncRefs(git_repository* git, SqliteConnection& db, const std::string& repo_id) {
  std::map<std::string, std::string> wanted;  // ref name -> commit oid
  auto stmt = db.Prepare(
      "SELECT b.name, c.commit_oid FROM bookmarks b JOIN changes c "
      "ON c.repo_id = b.repo_id AND c.change_id = b.change_id WHERE b.repo_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id);
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    wanted["refs/heads/" + stmt->Text(0)] = stmt->Text(1);
  }
  std::map<std::string, std::string> existing;
  git_reference_iterator* it_raw = nullptr;
  if (git_reference_iterator_glob_new(&it_raw, git, "refs/heads/*") == 0) {
    git::ReferenceIteratorPtr it(it_raw);
    git_reference* ref = nullptr;
    while (git_reference_next(&ref, it.get()) == 0) {
      git::ReferencePtr owned(ref);
      const git_oid* target = git_reference_target(ref);
      if (target) existing[git_reference_name(ref)] = git::OidHex(*target);
    }
  }
  for (const auto& [name, oid_hex] : wanted) {
    auto found = existing.find(name);
    if (found != existing.end() && found->second == oid_hex) continue;
    git_oid oid;
    if (!git::ParseOid(oid_hex, &oid)) continue;
    git_reference* ref = nullptr;
    // A bookmark "a" and "a/b" cannot both be git refs; the later one stays SQLite-only.
    int rc = git_reference_create(&ref, git, name.c_str(), &oid, /*force=*/1, "mesa bookmark");
    if (rc == 0) git_reference_free(ref);
  }
  for (const auto& [name, oid] : existing) {
    if (!wanted.count(name)) git_reference_remove(git, name.c_str());
  }
  // HEAD names the default bookmark so that `git clone` checks it out.
  auto head = db.Prepare("SELECT default_bookmark FROM repos WHERE id = ?");
  if (!head.ok()) return head.status();
  head->Bind(1, repo_id);
  auto row = head->Step();
  if (!row.ok()) return row.status();
  if (*row) git_repository_set_head(git, ("refs/heads/" + head->Text(0)).c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::string> CommitTree(git_repository* git, const std::string& commit_oid) {
  if (commit_oid.empty()) return std::string();
  auto info = git::ReadCommit(git, commit_oid);
  if (!info.ok()) return info.status();
  return info->tree_oid;
}

absl::StatusOr<std::string> ApplyFileOps(git_repository* git, const std::string& base_tree,
                                         const std::vector<FileOp>& ops) {
  git_index* raw = nullptr;
  if (int rc = git_index_new(&raw); rc < 0) return git::Error(rc, "index new");
  git::IndexPtr index(raw);
  if (!base_tree.empty()) {
    auto tree = git::LookupTree(git, base_tree);
    if (!tree.ok()) return tree.status();
    if (int rc = git_index_read_tree(index.get(), tree->get()); rc < 0) return git::Error(rc, "read tree");
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    const FileOp& op = ops[i];
    std::string field = "files[" + std::to_string(i) + "].path";
    if (op.kind == FileOp::Kind::kDelete) {
      bool had_file = git_index_get_bypath(index.get(), op.path.c_str(), 0) != nullptr;
      if (had_file) {
        git_index_remove_bypath(index.get(), op.path.c_str());
      } else {
        size_t before = git_index_entrycount(index.get());
        git_index_remove_directory(index.get(), op.path.c_str(), 0);
        if (git_index_entrycount(index.get()) == before)
          return rest::ApiError(404, "PATH_NOT_FOUND", "cannot delete '" + op.path + "': no such path",
                                {{"field", field}});
      }
      continue;
    }
    // A file where a directory stands, or under a path that is a file, is a conflict the
    // caller must resolve by deleting first (ops apply in order).
    size_t pos = 0;
    while ((pos = op.path.find('/', pos)) != std::string::npos) {
      std::string prefix = op.path.substr(0, pos);
      if (git_index_get_bypath(index.get(), prefix.c_str(), 0))
        return rest::ApiError(400, "PATH_CONFLICT", "'" + prefix + "' is a file, not a directory",
                              {{"field", field}});
      ++pos;
    }
    size_t at = 0;
    if (git_index_find_prefix(&at, index.get(), (op.path + "/").c_str()) == 0)
      return rest::ApiError(400, "PATH_CONFLICT", "'" + op.path + "' is a directory", {{"field", field}});
    git_oid blob;
    if (int rc = git_blob_create_from_buffer(&blob, git, op.content.data(), op.content.size()); rc < 0)
      return git::Error(rc, "write blob");
    git_index_entry entry{};
    entry.mode = op.mode;
    entry.id = blob;
    entry.path = op.path.c_str();
    entry.file_size = static_cast<uint32_t>(std::min<size_t>(op.content.size(), UINT32_MAX));
    if (int rc = git_index_add(index.get(), &entry); rc < 0) return git::Error(rc, "index add " + op.path);
  }
  git_oid tree;
  if (int rc = git_index_write_tree_to(&tree, index.get(), git); rc < 0) return git::Error(rc, "write tree");
  return git::OidHex(tree);
}

absl::StatusOr<std::vector<FileConflict>> LoadConflicts(SqliteConnection& db,
                                                        const std::string& repo_id,
                                                        const std::string& commit_oid) {
  std::vector<FileConflict> out;
  if (commit_oid.empty()) return out;
  auto stmt = db.Prepare(
      "SELECT path, base_oid, target_oid, source_oid, mode FROM conflicts "
      "WHERE repo_id = ? AND commit_oid = ? ORDER BY path");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo_id).Bind(2, commit_oid);
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(FileConflict{stmt->Text(0), stmt->OptText(1), stmt->OptText(2), stmt->OptText(3),
                               static_cast<uint32_t>(stmt->Int(4))});
  }
  return out;
}

absl::Status SaveConflicts(SqliteConnection& db, const std::string& repo_id,
                           const std::string& commit_oid, const std::vector<FileConflict>& conflicts) {
  for (const auto& c : conflicts) {
    auto stmt = db.Prepare(
        "INSERT OR REPLACE INTO conflicts(repo_id, commit_oid, path, base_oid, target_oid, source_oid, mode) "
        "VALUES(?,?,?,?,?,?,?)");
    if (!stmt.ok()) return stmt.status();
    stmt->Bind(1, repo_id).Bind(2, commit_oid).Bind(3, c.path).Bind(4, c.base_oid)
        .Bind(5, c.target_oid).Bind(6, c.source_oid).Bind(7, static_cast<int64_t>(c.mode));
    if (auto st = stmt->Run(); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadBlob(git_repository* git, const std::string& oid_hex) {
  git_oid oid;
  if (!git::ParseOid(oid_hex, &oid)) return rest::InternalError("bad blob oid");
  git_blob* raw = nullptr;
  if (int rc = git_blob_lookup(&raw, git, &oid); rc < 0) return git::Error(rc, "blob lookup");
  git::BlobPtr blob(raw);
  return std::string(static_cast<const char*>(git_blob_rawcontent(raw)),
                     static_cast<size_t>(git_blob_rawsize(raw)));
}

}  // namespace store_detail
}  // namespace mesa::server
