// Bookmarks and changes.
#include <set>

#include "absl/strings/numbers.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/time_format.h"
#include "rest/validate.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"
#include "server/webhooks/events.h"

namespace mesa::server {

using namespace store_detail;  // NOLINT(build/namespaces): this file implements them

namespace {

// Paths that differ between two trees ("" = empty tree), without reading blobs.
absl::StatusOr<std::vector<std::string>> TouchedPaths(git_repository* git, const std::string& old_tree,
                                                      const std::string& new_tree) {
  git::TreePtr a, b;
  if (!old_tree.empty()) {
    auto t = git::LookupTree(git, old_tree);
    if (!t.ok()) return t.status();
    a = std::move(*t);
  }
  if (!new_tree.empty()) {
    auto t = git::LookupTree(git, new_tree);
    if (!t.ok()) return t.status();
    b = std::move(*t);
  }
  git_diff* raw = nullptr;
  if (int rc = git_diff_tree_to_tree(&raw, git, a.get(), b.get(), nullptr); rc < 0)
    return git::Error(rc, "diff");
  git::DiffPtr diff(raw);
  std::vector<std::string> out;
  for (size_t i = 0; i < git_diff_num_deltas(raw); ++i) {
    const git_diff_delta* d = git_diff_get_delta(raw, i);
    out.push_back(d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path);
  }
  return out;
}

Signature Now(const Signature& who) {
  Signature s = who;
  s.time_s = rest::NowUnixMillis() / 1000;
  s.offset_minutes = 0;
  return s;
}

}  // namespace

// ---- bookmarks ----

absl::StatusOr<Page<Bookmark>> Store::ListBookmarks(const Repo& repo, std::optional<std::string> cursor,
                                                    int limit, std::optional<std::string> glob) {
  std::string after;
  if (cursor) {
    auto v = DecodeCursor(*cursor, 'b');
    if (!v) return rest::FieldError("cursor", "invalid cursor");
    after = *v;
  }
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "SELECT name, change_id FROM bookmarks WHERE repo_id = ? AND name > ? ORDER BY name");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo.id).Bind(2, after);
  Page<Bookmark> page;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Bookmark b{stmt->Text(0), stmt->Text(1), false};
    if (glob && !GlobMatch(*glob, b.name)) continue;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = EncodeCursor('b', page.items.back().name);
      break;
    }
    b.is_default = b.name == repo.default_bookmark;
    page.items.push_back(std::move(b));
  }
  return page;
}

absl::StatusOr<Bookmark> Store::GetBookmark(const Repo& repo, const std::string& name) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto change = BookmarkChange(**db, repo.id, name);
  if (!change.ok()) return change.status();
  return Bookmark{name, *change, name == repo.default_bookmark};
}

absl::StatusOr<Bookmark> Store::CreateBookmark(const Repo& repo, const std::string& name,
                                               const std::string& change_id) {
  if (!rest::IsValidBookmarkName(name)) return rest::FieldError("name", "is not a valid bookmark name");
  if (!rest::IsValidChangeId(change_id)) return rest::FieldError("change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto commit = ChangeCommit(**db, repo.id, change_id);
  if (!commit.ok()) return commit.status();
  auto stmt = (*db)->Prepare("INSERT OR IGNORE INTO bookmarks(repo_id, name, change_id) VALUES(?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo.id).Bind(2, name).Bind(3, change_id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0)
    return rest::ConflictError("BOOKMARK_ALREADY_EXISTS", "bookmark '" + name + "' already exists");
  bool is_default = name == repo.default_bookmark;
  std::vector<Event> events = {
      {"bookmark.created", {{"bookmark", webhooks::BookmarkInfo(name, is_default, change_id, *commit)}}}};
  if (auto push = webhooks::PushPayload({{name, "", *commit}})) events.push_back({"push", std::move(*push)});
  if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  KickOutbox();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  if (auto st = SyncRefs(git->get(), **db, repo.id); !st.ok()) return st;
  return Bookmark{name, change_id, is_default};
}

absl::StatusOr<MoveResult> Store::MoveBookmark(const Repo& repo, const std::string& name,
                                               const std::string& change_id) {
  if (!rest::IsValidChangeId(change_id)) return rest::FieldError("change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto from = BookmarkChange(**db, repo.id, name);
  if (!from.ok()) return from.status();
  auto commit = ChangeCommit(**db, repo.id, change_id);
  if (!commit.ok()) return commit.status();
  std::string from_commit = CommitOrEmpty(**db, repo.id, *from);
  auto stmt = (*db)->Prepare("UPDATE bookmarks SET change_id = ? WHERE repo_id = ? AND name = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, change_id).Bind(2, repo.id).Bind(3, name);
  if (auto st = stmt->Run(); !st.ok()) return st;
  std::vector<Event> events;
  if (*from != change_id) {
    events.push_back({"bookmark.moved",
                      {{"bookmark", webhooks::BookmarkInfo(name, name == repo.default_bookmark, change_id, *commit)},
                       {"from", {{"change_id", *from},
                                 {"commit_oid", from_commit.empty() ? std::string(webhooks::kNullCommitOid) : from_commit}}}}});
  }
  if (auto push = webhooks::PushPayload({{name, from_commit, *commit}})) events.push_back({"push", std::move(*push)});
  if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  if (!events.empty()) KickOutbox();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  if (auto st = SyncRefs(git->get(), **db, repo.id); !st.ok()) return st;
  return MoveResult{Bookmark{name, change_id, name == repo.default_bookmark}, *from};
}

absl::Status Store::DeleteBookmark(const Repo& repo, const std::string& name) {
  if (name == repo.default_bookmark)
    return rest::ConflictError("DEFAULT_BOOKMARK", "the default bookmark '" + name + "' cannot be deleted");
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto change = BookmarkChange(**db, repo.id, name);
  if (!change.ok()) return change.status();
  std::string commit = CommitOrEmpty(**db, repo.id, *change);
  auto stmt = (*db)->Prepare("DELETE FROM bookmarks WHERE repo_id = ? AND name = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, repo.id).Bind(2, name);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0) return rest::NotFoundError("BOOKMARK_NOT_FOUND", "bookmark '" + name + "' not found");
  std::vector<Event> events = {{"bookmark.deleted", {{"bookmark", webhooks::BookmarkInfo(name, false, *change, commit)}}}};
  if (auto push = webhooks::PushPayload({{name, commit, ""}})) events.push_back({"push", std::move(*push)});
  if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  KickOutbox();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  return SyncRefs(git->get(), **db, repo.id);
}

// ---- changes ----

absl::StatusOr<Page<Change>> Store::ListChanges(const Repo& repo, std::optional<std::string> bookmark,
                                                std::optional<std::string> cursor, int limit) {
  int64_t offset = 0;
  if (cursor) {
    auto v = DecodeCursor(*cursor, 'c');
    if (!v || !absl::SimpleAtoi(*v, &offset) || offset < 0) return rest::FieldError("cursor", "invalid cursor");
  }
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto tip_change = BookmarkChange(**db, repo.id, bookmark.value_or(repo.default_bookmark));
  if (!tip_change.ok()) return tip_change.status();
  auto tip = ChangeCommit(**db, repo.id, *tip_change);
  if (!tip.ok()) return tip.status();
  Page<Change> page;
  if (tip->empty()) return page;

  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  git_revwalk* raw = nullptr;
  if (int rc = git_revwalk_new(&raw, git->get()); rc < 0) return git::Error(rc, "revwalk");
  git::RevwalkPtr walk(raw);
  git_revwalk_sorting(raw, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
  git_oid start;
  git::ParseOid(*tip, &start);
  if (int rc = git_revwalk_push(raw, &start); rc < 0) return git::Error(rc, "revwalk push");

  auto lookup = (*db)->Prepare("SELECT change_id FROM commits WHERE repo_id = ? AND commit_oid = ?");
  if (!lookup.ok()) return lookup.status();
  std::set<std::string> seen;
  int64_t index = 0;
  git_oid oid;
  while (git_revwalk_next(&oid, raw) == 0) {
    lookup->Reset();
    lookup->Bind(1, repo.id).Bind(2, git::OidHex(oid));
    auto row = lookup->Step();
    if (!row.ok()) return row.status();
    if (!*row) continue;  // not a commit this store made (never happens through the API)
    std::string change_id = lookup->Text(0);
    if (!seen.insert(change_id).second) continue;
    if (index++ < offset) continue;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = EncodeCursor('c', std::to_string(offset + limit));
      break;
    }
    auto change = LoadChange(git->get(), **db, repo.id, change_id);
    if (!change.ok()) return change.status();
    page.items.push_back(std::move(*change));
  }
  return page;
}

absl::StatusOr<Change> Store::GetChange(const Repo& repo, const std::string& change_id) {
  if (!rest::IsValidChangeId(change_id)) return rest::FieldError("change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  auto change = LoadChange(git->get(), **db, repo.id, change_id);
  if (!change.ok() || change_id == rest::kVirtualRootChangeId) return change;
  auto info = git::ReadCommit(git->get(), change->commit_oid);
  if (!info.ok()) return info.status();
  std::string parent_tree;
  if (!info->parent_oids.empty()) {
    auto t = CommitTree(git->get(), info->parent_oids.front());
    if (!t.ok()) return t.status();
    parent_tree = *t;
  }
  auto files = TouchedPaths(git->get(), parent_tree, info->tree_oid);
  if (!files.ok()) return files.status();
  change->files = std::move(*files);
  auto conflicts = LoadConflicts(**db, repo.id, change->commit_oid);
  if (!conflicts.ok()) return conflicts.status();
  for (const auto& c : *conflicts) change->conflicts.push_back(c.path);
  return change;
}

absl::StatusOr<Change> Store::CreateChange(const Repo& repo, const CreateChangeParams& p,
                                           const Signature& default_identity) {
  if (!rest::IsValidChangeId(p.base_change_id))
    return rest::FieldError("base_change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto base_commit = ChangeCommit(**db, repo.id, p.base_change_id);
  if (!base_commit.ok()) return base_commit.status();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  auto base_tree = CommitTree(git->get(), *base_commit);
  if (!base_tree.ok()) return base_tree.status();
  auto tree = ApplyFileOps(git->get(), *base_tree, p.files);
  if (!tree.ok()) return tree.status();

  // Unresolved conflicts of the base carry over to the child unless it rewrites the path.
  auto conflicts = LoadConflicts(**db, repo.id, *base_commit);
  if (!conflicts.ok()) return conflicts.status();
  std::set<std::string> touched;
  for (const auto& op : p.files) touched.insert(op.path);
  std::vector<FileConflict> inherited;
  for (auto& c : *conflicts) {
    if (!touched.count(c.path)) inherited.push_back(std::move(c));
  }

  Signature author = p.author.value_or(Now(default_identity));
  Signature committer = p.committer.value_or(Now(author));
  std::string change_id = rest::NewChangeId();
  std::vector<std::string> parents;
  if (!base_commit->empty()) parents.push_back(*base_commit);
  auto oid = git::WriteCommit(git->get(), *tree, parents, author, committer, change_id,
                              p.message.value_or(""));
  if (!oid.ok()) return oid.status();

  int64_t now = rest::NowUnixMillis();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto ins = (*db)->Prepare(
      "INSERT INTO changes(repo_id, change_id, commit_oid, created_at, updated_at) VALUES(?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  ins->Bind(1, repo.id).Bind(2, change_id).Bind(3, *oid).Bind(4, now).Bind(5, now);
  if (auto st = ins->Run(); !st.ok()) return st;
  auto log = (*db)->Prepare(
      "INSERT OR IGNORE INTO commits(repo_id, commit_oid, change_id, created_at) VALUES(?,?,?,?)");
  if (!log.ok()) return log.status();
  log->Bind(1, repo.id).Bind(2, *oid).Bind(3, change_id).Bind(4, now);
  if (auto st = log->Run(); !st.ok()) return st;
  if (auto st = SaveConflicts(**db, repo.id, *oid, inherited); !st.ok()) return st;
  auto change = LoadChange(git->get(), **db, repo.id, change_id);
  if (!change.ok()) return change.status();
  std::vector<Event> events = {{"change.created", {{"change", webhooks::ChangeInfo(*change)}}}};
  if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  KickOutbox();
  return change;
}

absl::StatusOr<Change> Store::UpdateChange(const Repo& repo, const std::string& change_id,
                                           const UpdateChangeParams& p) {
  if (!rest::IsValidChangeId(change_id)) return rest::FieldError("change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
  if (change_id == rest::kVirtualRootChangeId)
    return rest::ApiError(400, "IMMUTABLE_CHANGE", "the virtual root change cannot be modified");
  if (!p.files.empty() && !p.resolutions.empty())
    return rest::FieldError("resolutions", "files and resolutions are mutually exclusive");
  // Concurrent PATCHes of one change serialize here; with base_commit_oid the loser gets 409.
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto current = ChangeCommit(**db, repo.id, change_id);
  if (!current.ok()) return current.status();
  if (p.base_commit_oid && *p.base_commit_oid != *current) {
    return rest::ConflictError("STALE_BASE_COMMIT",
                               "change '" + change_id + "' is at commit " + *current + ", not " + *p.base_commit_oid,
                               {{"current_commit_oid", *current}, {"base_commit_oid", *p.base_commit_oid}});
  }
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  auto info = git::ReadCommit(git->get(), *current);
  if (!info.ok()) return info.status();
  auto conflicts = LoadConflicts(**db, repo.id, *current);
  if (!conflicts.ok()) return conflicts.status();

  std::vector<FileOp> ops = p.files;
  if (!conflicts->empty() && p.resolutions.empty()) {
    return MergeConflictError(git->get(), *conflicts,
                              "change '" + change_id + "' is conflicted; resolve its conflicts first");
  }
  if (!p.resolutions.empty()) {
    if (conflicts->empty())
      return rest::FieldError("resolutions", "change '" + change_id + "' has no conflicts");
    auto resolved = ApplyResolutions(git->get(), *conflicts, p.resolutions);
    if (!resolved.ok()) return resolved.status();
    ops = std::move(*resolved);
  }
  auto tree = ApplyFileOps(git->get(), info->tree_oid, ops);
  if (!tree.ok()) return tree.status();

  Signature author = p.author.value_or(info->author);
  Signature committer = p.committer.value_or(Now(info->committer));
  auto oid = git::WriteCommit(git->get(), *tree, info->parent_oids, author, committer, change_id,
                              p.message.value_or(info->message));
  if (!oid.ok()) return oid.status();

  int64_t now = rest::NowUnixMillis();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto upd = (*db)->Prepare(
      "UPDATE changes SET commit_oid = ?, updated_at = ? WHERE repo_id = ? AND change_id = ?");
  if (!upd.ok()) return upd.status();
  upd->Bind(1, *oid).Bind(2, now).Bind(3, repo.id).Bind(4, change_id);
  if (auto st = upd->Run(); !st.ok()) return st;
  auto log = (*db)->Prepare(
      "INSERT OR IGNORE INTO commits(repo_id, commit_oid, change_id, created_at) VALUES(?,?,?,?)");
  if (!log.ok()) return log.status();
  log->Bind(1, repo.id).Bind(2, *oid).Bind(3, change_id).Bind(4, now);
  if (auto st = log->Run(); !st.ok()) return st;
  if (auto st = SaveConflicts(**db, repo.id, *oid, *conflicts); !st.ok()) return st;
  auto change = LoadChange(git->get(), **db, repo.id, change_id);
  if (!change.ok()) return change.status();
  std::vector<Event> events;
  if (*oid != *current) {
    events.push_back({"change.evolved",
                      {{"change", webhooks::ChangeInfo(*change)}, {"previous_current_commit_oid", *current}}});
    // Bookmarks name changes, so the refs of those on this change move to the new commit.
    auto on = (*db)->Prepare("SELECT name FROM bookmarks WHERE repo_id = ? AND change_id = ? ORDER BY name");
    if (!on.ok()) return on.status();
    on->Bind(1, repo.id).Bind(2, change_id);
    std::vector<webhooks::RefUpdate> updates;
    while (true) {
      auto row = on->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      updates.push_back({on->Text(0), *current, *oid});
    }
    if (auto push = webhooks::PushPayload(updates)) events.push_back({"push", std::move(*push)});
  }
  if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  if (!events.empty()) KickOutbox();
  if (auto st = SyncRefs(git->get(), **db, repo.id); !st.ok()) return st;
  return change;
}

}  // namespace mesa::server
