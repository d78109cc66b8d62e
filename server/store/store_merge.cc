// Bookmark merges and conflict handling (per-hunk detail, resolutions).
#include <cstring>
#include <map>
#include <set>

#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"
#include "server/webhooks/events.h"

namespace mesa::server {

using namespace store_detail;  // NOLINT(build/namespaces)

namespace {

constexpr size_t kMaxConflictFileBytes = 1 << 20;

bool LooksBinary(const std::string& data) {
  return std::memchr(data.data(), '\0', std::min<size_t>(data.size(), 8000)) != nullptr;
}

std::vector<std::string> SplitLines(const char* p, size_t n) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] == '\n') {
      lines.emplace_back(p + start, i + 1 - start);
      start = i + 1;
    }
  }
  if (start < n) lines.emplace_back(p + start, n - start);
  return lines;
}

bool IsMarker(const std::string& line, std::string_view marker) {
  if (!line.starts_with(marker)) return false;
  size_t rest = marker.size();
  return line.size() == rest || line[rest] == '\n' || line[rest] == ' ' || line[rest] == '\r';
}

std::string HunkId(const std::string& path, size_t index, const ConflictHunk& h) {
  std::string material = path + '\0' + std::to_string(index) + '\0' + h.target.value_or("") + '\0' +
                         h.base.value_or("") + '\0' + h.source.value_or("");
  return "h" + rest::HexEncode(rest::Sha256(material)).substr(0, 15);
}

nlohmann::json SideJson(const std::optional<std::string>& side) {
  if (!side) return nullptr;
  return {{"content", rest::Base64Encode(*side)}};
}

// Applies ops to an index without failing on deletes of absent paths.
absl::Status ApplyToIndex(git_repository* git, git_index* index, const std::vector<FileOp>& ops) {
  for (const auto& op : ops) {
    if (op.kind == FileOp::Kind::kDelete) {
      git_index_remove_bypath(index, op.path.c_str());
      continue;
    }
    git_oid blob;
    if (int rc = git_blob_create_from_buffer(&blob, git, op.content.data(), op.content.size()); rc < 0)
      return git::Error(rc, "write blob");
    git_index_entry entry{};
    entry.mode = op.mode;
    entry.id = blob;
    entry.path = op.path.c_str();
    if (int rc = git_index_add(index, &entry); rc < 0) return git::Error(rc, "index add");
  }
  return absl::OkStatus();
}

}  // namespace

nlohmann::json ConflictHunkJson(const ConflictHunk& h) {
  return {{"hunk_id", h.hunk_id},     {"old_start", h.old_start}, {"old_lines", h.old_lines},
          {"new_start", h.new_start}, {"new_lines", h.new_lines}, {"target", SideJson(h.target)},
          {"base", SideJson(h.base)}, {"source", SideJson(h.source)}};
}

namespace store_detail {

absl::StatusOr<ConflictAnalysis> AnalyzeConflict(git_repository* git, const FileConflict& c) {
  ConflictAnalysis out;
  std::optional<std::string> base, target, source;
  for (auto [oid, side] : {std::pair{&c.base_oid, &base}, {&c.target_oid, &target}, {&c.source_oid, &source}}) {
    if (!*oid) continue;
    auto data = ReadBlob(git, **oid);
    if (!data.ok()) return data.status();
    *side = std::move(*data);
  }
  for (const auto* side : {&base, &target, &source}) {
    if (*side) out.size_bytes = std::max<uint64_t>(out.size_bytes, (*side)->size());
  }
  if (!target || !source) {  // modify/delete: non-textual, whichever side has content stays
    out.materialized = target ? target : source;
    return out;
  }
  if (LooksBinary(*target) || LooksBinary(*source) || (base && LooksBinary(*base))) {
    out.omitted_reason = "binary";
    out.materialized = target;
    return out;
  }
  if (out.size_bytes > kMaxConflictFileBytes) {
    out.omitted_reason = "too_large";
    out.materialized = target;
    return out;
  }
  git_merge_file_input anc = GIT_MERGE_FILE_INPUT_INIT, ours = GIT_MERGE_FILE_INPUT_INIT,
                       theirs = GIT_MERGE_FILE_INPUT_INIT;
  if (base) {
    anc.ptr = base->data();
    anc.size = base->size();
  }
  anc.path = ours.path = theirs.path = c.path.c_str();
  anc.mode = ours.mode = theirs.mode = c.mode;
  ours.ptr = target->data();
  ours.size = target->size();
  theirs.ptr = source->data();
  theirs.size = source->size();
  git_merge_file_options opts = GIT_MERGE_FILE_OPTIONS_INIT;
  opts.ancestor_label = "base";
  opts.our_label = "target";
  opts.their_label = "source";
  opts.flags = GIT_MERGE_FILE_STYLE_DIFF3;
  git_merge_file_result result{};
  if (int rc = git_merge_file(&result, &anc, &ours, &theirs, &opts); rc < 0) return git::Error(rc, "merge file");
  std::string merged(result.ptr ? result.ptr : "", result.len);
  git_merge_file_result_free(&result);
  out.materialized = merged;

  enum { kStable, kTarget, kBase, kSource } state = kStable;
  ConflictHunk hunk;
  std::string stable;
  int target_line = 1, source_line = 1;
  auto count_lines = [](const std::string& s) {
    return static_cast<int>(SplitLines(s.data(), s.size()).size());
  };
  for (const auto& line : SplitLines(merged.data(), merged.size())) {
    switch (state) {
      case kStable:
        if (IsMarker(line, "<<<<<<<")) {
          if (!stable.empty()) {
            int n = count_lines(stable);
            target_line += n;
            source_line += n;
            out.segments.push_back({false, std::move(stable), 0});
            stable.clear();
          }
          hunk = ConflictHunk{};
          hunk.target = "";
          hunk.source = "";
          state = kTarget;
        } else {
          stable += line;
        }
        break;
      case kTarget:
        if (IsMarker(line, "|||||||")) { hunk.base = ""; state = kBase; }
        else if (IsMarker(line, "=======")) state = kSource;
        else *hunk.target += line;
        break;
      case kBase:
        if (IsMarker(line, "=======")) state = kSource;
        else *hunk.base += line;
        break;
      case kSource:
        if (IsMarker(line, ">>>>>>>")) {
          hunk.old_start = target_line;
          hunk.old_lines = count_lines(*hunk.target);
          hunk.new_start = source_line;
          hunk.new_lines = count_lines(*hunk.source);
          target_line += hunk.old_lines;
          source_line += hunk.new_lines;
          hunk.hunk_id = HunkId(c.path, out.hunks.size(), hunk);
          out.segments.push_back({true, "", out.hunks.size()});
          out.hunks.push_back(std::move(hunk));
          state = kStable;
        } else {
          *hunk.source += line;
        }
        break;
    }
  }
  if (!stable.empty()) out.segments.push_back({false, std::move(stable), 0});
  return out;
}

absl::StatusOr<std::vector<FileOp>> ApplyResolutions(git_repository* git,
                                                     std::vector<FileConflict>& conflicts,
                                                     const std::vector<Resolution>& resolutions) {
  std::vector<FileOp> ops;
  for (size_t i = 0; i < resolutions.size(); ++i) {
    const Resolution& r = resolutions[i];
    std::string field = "resolutions[" + std::to_string(i) + "]";
    auto it = std::find_if(conflicts.begin(), conflicts.end(),
                           [&](const FileConflict& c) { return c.path == r.path; });
    if (it == conflicts.end()) return rest::FieldError(field + ".path", "'" + r.path + "' is not conflicted");
    FileOp op;
    op.path = r.path;
    op.mode = it->mode == 0100755 ? 0100755 : 0100644;
    if (!r.hunks.empty()) {
      auto analysis = AnalyzeConflict(git, *it);
      if (!analysis.ok()) return analysis.status();
      if (analysis->hunks.empty())
        return rest::FieldError(field + ".hunks", "'" + r.path + "' has no textual hunks; resolve the whole file");
      std::map<std::string, const Resolution::Hunk*> chosen;
      for (const auto& h : r.hunks) chosen[h.hunk_id] = &h;
      std::string content;
      for (const auto& seg : analysis->segments) {
        if (!seg.conflict) {
          content += seg.text;
          continue;
        }
        const ConflictHunk& hunk = analysis->hunks[seg.hunk];
        auto pick = chosen.find(hunk.hunk_id);
        if (pick == chosen.end()) {
          return MergeConflictError(git, {*it}, "resolution for '" + r.path + "' does not cover hunk " + hunk.hunk_id);
        }
        const Resolution::Hunk& h = *pick->second;
        if (h.content) content += *h.content;
        else if (h.take == "target") content += hunk.target.value_or("");
        else content += hunk.source.value_or("");
        chosen.erase(pick);
      }
      if (!chosen.empty())
        return rest::FieldError(field + ".hunks", "unknown hunk_id '" + chosen.begin()->first + "'");
      op.content = std::move(content);
    } else if (r.content) {
      op.content = *r.content;
    } else {
      const auto& side = *r.take == "target" ? it->target_oid : it->source_oid;
      if (!side) {
        op.kind = FileOp::Kind::kDelete;
      } else {
        auto data = ReadBlob(git, *side);
        if (!data.ok()) return data.status();
        op.content = std::move(*data);
      }
    }
    ops.push_back(std::move(op));
    conflicts.erase(it);
  }
  return ops;
}

absl::Status MergeConflictError(git_repository* git, const std::vector<FileConflict>& conflicts,
                                std::string_view message) {
  nlohmann::json paths = nlohmann::json::array();
  nlohmann::json detail = nlohmann::json::array();
  for (const auto& c : conflicts) {
    paths.push_back(c.path);
    auto analysis = AnalyzeConflict(git, c);
    if (!analysis.ok()) return analysis.status();
    nlohmann::json hunks = nlohmann::json::array();
    for (const auto& h : analysis->hunks) hunks.push_back(ConflictHunkJson(h));
    nlohmann::json entry = {{"path", c.path}, {"hunks", hunks}, {"size_bytes", analysis->size_bytes}};
    entry["omitted_reason"] = analysis->omitted_reason ? nlohmann::json(*analysis->omitted_reason) : nullptr;
    detail.push_back(std::move(entry));
  }
  return rest::ConflictError("MERGE_CONFLICT", message, {{"conflict_paths", paths}, {"conflicts", detail}});
}

}  // namespace store_detail

absl::StatusOr<MergeResult> Store::MergeBookmarks(const Repo& repo, const MergeParams& p) {
  auto lock = RepoMutex(repo.id);
  std::lock_guard<std::mutex> guard(*lock);
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto target_change = BookmarkChange(**db, repo.id, p.target);
  if (!target_change.ok()) return target_change.status();
  auto source_change = BookmarkChange(**db, repo.id, p.source);
  if (!source_change.ok()) return source_change.status();
  if (p.delete_source && p.source == repo.default_bookmark)
    return rest::ConflictError("DEFAULT_BOOKMARK", "the default bookmark '" + p.source + "' cannot be deleted");
  if (p.target == p.source) return rest::FieldError("source", "must differ from target");
  auto tc = ChangeCommit(**db, repo.id, *target_change);
  if (!tc.ok()) return tc.status();
  auto sc = ChangeCommit(**db, repo.id, *source_change);
  if (!sc.ok()) return sc.status();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  git_repository* g = git->get();

  MergeResult result;
  result.target = p.target;
  result.source = p.source;

  auto delete_source = [&]() -> absl::Status {
    if (!p.delete_source) return absl::OkStatus();
    auto del = (*db)->Prepare("DELETE FROM bookmarks WHERE repo_id = ? AND name = ?");
    if (!del.ok()) return del.status();
    del->Bind(1, repo.id).Bind(2, p.source);
    if (auto st = del->Run(); !st.ok()) return st;
    result.source_deleted = true;
    return absl::OkStatus();
  };

  // Events when the source bookmark is deleted by the merge.
  auto source_deleted_events = [&](std::vector<Event>& events, std::vector<webhooks::RefUpdate>& updates) {
    if (!result.source_deleted) return;
    events.push_back({"bookmark.deleted", {{"bookmark", webhooks::BookmarkInfo(p.source, false, *source_change, *sc)}}});
    updates.push_back({p.source, *sc, ""});
  };

  if (*tc == *sc) {
    result.merge_type = "no_op";
    result.commit_oid = tc->empty() ? std::string(40, '0') : *tc;
    result.change_id = *target_change;
    auto conflicts = LoadConflicts(**db, repo.id, *tc);
    if (!conflicts.ok()) return conflicts.status();
    result.is_conflicted = !conflicts->empty();
    Transaction txn(**db);
    if (auto st = txn.Begin(); !st.ok()) return st;
    if (auto st = delete_source(); !st.ok()) return st;
    std::vector<Event> events;
    std::vector<webhooks::RefUpdate> updates;
    source_deleted_events(events, updates);
    if (auto push = webhooks::PushPayload(updates)) events.push_back({"push", std::move(*push)});
    if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
    if (auto st = txn.Commit(); !st.ok()) return st;
    if (!events.empty()) KickOutbox();
    if (auto st = SyncRefs(g, **db, repo.id); !st.ok()) return st;
    return result;
  }

  // Three-way merge of trees; a missing side (virtual root) is the empty tree.
  std::string base_commit;
  if (!tc->empty() && !sc->empty()) {
    git_oid a, b, base;
    git::ParseOid(*tc, &a);
    git::ParseOid(*sc, &b);
    int rc = git_merge_base(&base, g, &a, &b);
    if (rc == 0) base_commit = git::OidHex(base);
    else if (rc != GIT_ENOTFOUND) return git::Error(rc, "merge base");
  }
  auto tree_of = [&](const std::string& commit) -> absl::StatusOr<git::TreePtr> {
    auto oid = CommitTree(g, commit);
    if (!oid.ok()) return oid.status();
    if (oid->empty()) return git::TreePtr();
    return git::LookupTree(g, *oid);
  };
  auto ancestor = tree_of(base_commit);
  if (!ancestor.ok()) return ancestor.status();
  auto ours = tree_of(*tc);
  if (!ours.ok()) return ours.status();
  auto theirs = tree_of(*sc);
  if (!theirs.ok()) return theirs.status();
  git_merge_options mopts = GIT_MERGE_OPTIONS_INIT;
  git_index* iraw = nullptr;
  if (int rc = git_merge_trees(&iraw, g, ancestor->get(), ours->get(), theirs->get(), &mopts); rc < 0)
    return git::Error(rc, "merge trees");
  git::IndexPtr index(iraw);

  std::vector<FileConflict> conflicts;
  if (git_index_has_conflicts(iraw)) {
    git_index_conflict_iterator* it = nullptr;
    if (int rc = git_index_conflict_iterator_new(&it, iraw); rc < 0) return git::Error(rc, "conflicts");
    const git_index_entry *anc, *our, *their;
    while (git_index_conflict_next(&anc, &our, &their, it) == 0) {
      FileConflict c;
      c.path = our ? our->path : their ? their->path : anc->path;
      if (anc) c.base_oid = git::OidHex(anc->id);
      if (our) c.target_oid = git::OidHex(our->id);
      if (their) c.source_oid = git::OidHex(their->id);
      c.mode = our ? our->mode : their ? their->mode : anc->mode;
      conflicts.push_back(std::move(c));
    }
    git_index_conflict_iterator_free(it);
    for (const auto& c : conflicts) git_index_conflict_remove(iraw, c.path.c_str());
  }

  auto ops = ApplyResolutions(g, conflicts, p.resolutions);
  if (!ops.ok()) return ops.status();
  if (!conflicts.empty() && !p.allow_conflicted) {
    return MergeConflictError(g, conflicts,
                              "merging '" + p.source + "' into '" + p.target + "' conflicts in " +
                                  std::to_string(conflicts.size()) + " path(s)");
  }
  // Unresolved conflicts are written with their markers (or the surviving side).
  std::vector<FileOp> materialized;
  for (const auto& c : conflicts) {
    auto analysis = AnalyzeConflict(g, c);
    if (!analysis.ok()) return analysis.status();
    FileOp op;
    op.path = c.path;
    op.mode = c.mode == 0100755 ? 0100755 : 0100644;
    if (analysis->materialized) op.content = *analysis->materialized;
    else op.kind = FileOp::Kind::kDelete;
    materialized.push_back(std::move(op));
  }
  if (auto st = ApplyToIndex(g, iraw, materialized); !st.ok()) return st;
  if (auto st = ApplyToIndex(g, iraw, *ops); !st.ok()) return st;
  git_oid tree;
  if (int rc = git_index_write_tree_to(&tree, iraw, g); rc < 0) return git::Error(rc, "write tree");

  std::vector<std::string> parents;
  if (!tc->empty()) parents.push_back(*tc);
  if (!sc->empty()) parents.push_back(*sc);
  Signature who = p.identity;
  who.time_s = rest::NowUnixMillis() / 1000;
  std::string change_id = rest::NewChangeId();
  std::string message = p.message.value_or("Merge bookmark '" + p.source + "' into '" + p.target + "'");
  auto oid = git::WriteCommit(g, git::OidHex(tree), parents, who, who, change_id, message);
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
  if (auto st = SaveConflicts(**db, repo.id, *oid, conflicts); !st.ok()) return st;
  auto move = (*db)->Prepare("UPDATE bookmarks SET change_id = ? WHERE repo_id = ? AND name = ?");
  if (!move.ok()) return move.status();
  move->Bind(1, change_id).Bind(2, repo.id).Bind(3, p.target);
  if (auto st = move->Run(); !st.ok()) return st;
  if (auto st = delete_source(); !st.ok()) return st;
  auto merged = LoadChange(g, **db, repo.id, change_id);
  if (!merged.ok()) return merged.status();
  std::vector<Event> events = {
      {"change.created", {{"change", webhooks::ChangeInfo(*merged)}}},
      {"bookmark.merged",
       {{"bookmark", webhooks::BookmarkInfo(p.target, p.target == repo.default_bookmark, change_id, *oid)}}}};
  std::vector<webhooks::RefUpdate> updates = {{p.target, *tc, *oid}};
  source_deleted_events(events, updates);
  if (auto push = webhooks::PushPayload(updates)) events.push_back({"push", std::move(*push)});
  if (auto st = EnqueueEvents(**db, repo.org_id, &repo, events); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  KickOutbox();
  if (auto st = SyncRefs(g, **db, repo.id); !st.ok()) return st;

  result.merge_type = "merge_commit";
  result.is_conflicted = !conflicts.empty();
  result.commit_oid = *oid;
  result.change_id = change_id;
  return result;
}

}  // namespace mesa::server
