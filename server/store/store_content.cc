// Content reads and diffs.
#include <set>

#include "rest/api_error.h"
#include "rest/change_id.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"

namespace mesa::server {

using namespace store_detail;  // NOLINT(build/namespaces)

namespace {

std::string ModeString(git_filemode_t mode) {
  switch (mode) {
    case GIT_FILEMODE_BLOB_EXECUTABLE: return "100755";
    case GIT_FILEMODE_LINK: return "120000";
    case GIT_FILEMODE_TREE: return "";
    default: return "100644";
  }
}

std::string EntryType(git_filemode_t mode) {
  if (mode == GIT_FILEMODE_TREE) return "dir";
  if (mode == GIT_FILEMODE_LINK) return "symlink";
  return "file";
}

uint64_t BlobSize(git_odb* odb, const git_oid* oid) {
  size_t size = 0;
  git_object_t type;
  if (git_odb_read_header(&size, &type, odb, oid) < 0) return 0;
  return size;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

absl::Status ListTree(git_repository* git, git_odb* odb, const git_tree* tree, const std::string& prefix,
                      int depth, std::vector<ContentEntry>& out) {
  size_t n = git_tree_entrycount(tree);
  for (size_t i = 0; i < n; ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(tree, i);
    git_filemode_t mode = git_tree_entry_filemode(e);
    if (mode == GIT_FILEMODE_COMMIT) continue;  // submodules are not part of Mesa content
    ContentEntry entry;
    entry.type = EntryType(mode);
    entry.name = git_tree_entry_name(e);
    entry.path = prefix.empty() ? entry.name : prefix + "/" + entry.name;
    entry.sha = git::OidHex(*git_tree_entry_id(e));
    entry.mode = ModeString(mode);
    if (mode != GIT_FILEMODE_TREE) entry.size = BlobSize(odb, git_tree_entry_id(e));
    out.push_back(entry);
    if (mode == GIT_FILEMODE_TREE && depth > 1) {
      git_tree* sub = nullptr;
      if (int rc = git_tree_lookup(&sub, git, git_tree_entry_id(e)); rc < 0) return git::Error(rc, "tree lookup");
      git::TreePtr owned(sub);
      if (auto st = ListTree(git, odb, sub, entry.path, depth - 1, out); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveCommit(SqliteConnection& db, const Repo& repo,
                                          const std::optional<std::string>& change_id) {
  std::string change;
  if (change_id) {
    change = *change_id;
  } else {
    auto head = BookmarkChange(db, repo.id, repo.default_bookmark);
    if (!head.ok()) return head.status();
    change = *head;
  }
  return ChangeCommit(db, repo.id, change);
}

const char* DeltaStatus(git_delta_t status) {
  switch (status) {
    case GIT_DELTA_ADDED: return "added";
    case GIT_DELTA_DELETED: return "deleted";
    case GIT_DELTA_RENAMED: return "renamed";
    default: return "modified";
  }
}

struct DiffTrees {
  git::TreePtr base, head;
  git::DiffPtr diff;
};

absl::StatusOr<DiffTrees> MakeDiff(git_repository* git, const std::string& base_tree,
                                   const std::string& head_tree) {
  DiffTrees d;
  if (!base_tree.empty()) {
    auto t = git::LookupTree(git, base_tree);
    if (!t.ok()) return t.status();
    d.base = std::move(*t);
  }
  if (!head_tree.empty()) {
    auto t = git::LookupTree(git, head_tree);
    if (!t.ok()) return t.status();
    d.head = std::move(*t);
  }
  git_diff_options opts = GIT_DIFF_OPTIONS_INIT;
  opts.context_lines = 3;
  git_diff* raw = nullptr;
  if (int rc = git_diff_tree_to_tree(&raw, git, d.base.get(), d.head.get(), &opts); rc < 0)
    return git::Error(rc, "diff");
  d.diff.reset(raw);
  git_diff_find_options find = GIT_DIFF_FIND_OPTIONS_INIT;
  find.flags = GIT_DIFF_FIND_RENAMES;
  if (int rc = git_diff_find_similar(raw, &find); rc < 0) return git::Error(rc, "find renames");
  return d;
}

}  // namespace

absl::StatusOr<Content> Store::GetContent(const Repo& repo, const std::optional<std::string>& change_id,
                                          const std::string& path, int depth, bool with_data) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto commit = ResolveCommit(**db, repo, change_id);
  if (!commit.ok()) return commit.status();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  git_repository* g = git->get();
  auto tree_oid = CommitTree(g, *commit);
  if (!tree_oid.ok()) return tree_oid.status();
  std::string root_tree = *tree_oid;
  if (root_tree.empty()) {
    auto empty = git::EmptyTreeOid(g);
    if (!empty.ok()) return empty.status();
    root_tree = *empty;
  }
  auto tree = git::LookupTree(g, root_tree);
  if (!tree.ok()) return tree.status();
  git_odb* odb_raw = nullptr;
  if (int rc = git_repository_odb(&odb_raw, g); rc < 0) return git::Error(rc, "odb");
  git::OdbPtr odb(odb_raw);

  Content out;
  out.path = path;
  out.name = BaseName(path);
  git::TreePtr dir_holder;
  const git_tree* dir = nullptr;
  if (path.empty()) {
    dir = tree->get();
    out.sha = root_tree;
  } else {
    git_tree_entry* raw = nullptr;
    int rc = git_tree_entry_bypath(&raw, tree->get(), path.c_str());
    if (rc == GIT_ENOTFOUND)
      return rest::NotFoundError("PATH_NOT_FOUND", "path '" + path + "' not found");
    if (rc < 0) return git::Error(rc, "entry bypath");
    git::TreeEntryPtr entry(raw);
    git_filemode_t mode = git_tree_entry_filemode(raw);
    out.sha = git::OidHex(*git_tree_entry_id(raw));
    if (mode == GIT_FILEMODE_COMMIT) return rest::NotFoundError("PATH_NOT_FOUND", "path '" + path + "' not found");
    if (mode == GIT_FILEMODE_TREE) {
      git_tree* sub = nullptr;
      if (int lrc = git_tree_lookup(&sub, g, git_tree_entry_id(raw)); lrc < 0) return git::Error(lrc, "tree lookup");
      dir_holder.reset(sub);
      dir = sub;
    } else {
      out.type = EntryType(mode);
      out.mode = ModeString(mode);
      out.size = BlobSize(odb.get(), git_tree_entry_id(raw));
      if (with_data) {
        auto data = ReadBlob(g, out.sha);
        if (!data.ok()) return data.status();
        out.data = std::move(*data);
      }
      auto conflicts = LoadConflicts(**db, repo.id, *commit);
      if (!conflicts.ok()) return conflicts.status();
      for (const auto& c : *conflicts) {
        if (c.path == path) out.is_conflicted = true;
      }
      return out;
    }
  }
  out.type = "dir";
  out.child_count = git_tree_entrycount(dir);
  if (depth > 0) {
    if (auto st = ListTree(g, odb.get(), dir, path, depth, out.entries); !st.ok()) return st;
  }
  return out;
}

absl::StatusOr<Diff> Store::GetDiff(const Repo& repo, const std::string& base_change_id,
                                    const std::string& head_change_id, ConflictsMode mode) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto base_commit = ChangeCommit(**db, repo.id, base_change_id);
  if (!base_commit.ok()) return base_commit.status();
  auto head_commit = ChangeCommit(**db, repo.id, head_change_id);
  if (!head_commit.ok()) return head_commit.status();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  git_repository* g = git->get();
  auto base_tree = CommitTree(g, *base_commit);
  if (!base_tree.ok()) return base_tree.status();
  auto head_tree = CommitTree(g, *head_commit);
  if (!head_tree.ok()) return head_tree.status();
  auto d = MakeDiff(g, *base_tree, *head_tree);
  if (!d.ok()) return d.status();

  auto conflicts = LoadConflicts(**db, repo.id, *head_commit);
  if (!conflicts.ok()) return conflicts.status();
  std::set<std::string> conflicted;
  for (const auto& c : *conflicts) conflicted.insert(c.path);

  Diff out;
  out.base_change_id = base_change_id;
  out.head_change_id = head_change_id;
  git_diff* diff = d->diff.get();
  size_t n = git_diff_num_deltas(diff);
  size_t with_hunks = 0;
  if (mode != ConflictsMode::kOnly) {
    for (size_t i = 0; i < n; ++i) {
      const git_diff_delta* delta = git_diff_get_delta(diff, i);
      std::string path = delta->status == GIT_DELTA_DELETED ? delta->old_file.path : delta->new_file.path;
      if (conflicted.count(path)) continue;
      if (out.entries.size() >= options_.diff_max_entries) {
        out.truncated = true;
        break;
      }
      DiffEntry e;
      e.path = path;
      e.status = DeltaStatus(delta->status);
      if (delta->status == GIT_DELTA_RENAMED) e.old_path = delta->old_file.path;
      git_odb* odb = nullptr;
      git_repository_odb(&odb, g);
      git::OdbPtr odb_owned(odb);
      uint64_t old_size = git_oid_is_zero(&delta->old_file.id) ? 0 : BlobSize(odb, &delta->old_file.id);
      uint64_t new_size = git_oid_is_zero(&delta->new_file.id) ? 0 : BlobSize(odb, &delta->new_file.id);
      e.size_bytes = delta->status == GIT_DELTA_DELETED ? old_size : new_size;
      if (std::max(old_size, new_size) > options_.diff_max_file_bytes) {
        e.omitted_reason = "too_large";
      } else if (with_hunks >= options_.diff_max_files_with_hunks) {
        e.omitted_reason = "file_limit";
      } else {
        git_patch* praw = nullptr;
        if (int rc = git_patch_from_diff(&praw, diff, i); rc < 0) return git::Error(rc, "patch");
        git::PatchPtr patch(praw);
        const git_diff_delta* pd = git_patch_get_delta(praw);
        if (pd->flags & GIT_DIFF_FLAG_BINARY) {
          e.omitted_reason = "binary";
        } else {
          ++with_hunks;
          std::vector<DiffHunk> hunks;
          for (size_t h = 0; h < git_patch_num_hunks(praw); ++h) {
            const git_diff_hunk* gh = nullptr;
            size_t lines = 0;
            git_patch_get_hunk(&gh, &lines, praw, h);
            DiffHunk hunk{gh->old_start, gh->old_lines, gh->new_start, gh->new_lines, {}};
            for (size_t l = 0; l < lines; ++l) {
              const git_diff_line* line = nullptr;
              git_patch_get_line_in_hunk(&line, praw, h, l);
              std::string text(line->content, line->content_len);
              if (!text.empty() && text.back() == '\n') text.pop_back();
              switch (line->origin) {
                case GIT_DIFF_LINE_ADDITION: hunk.lines.push_back({"added", text}); ++out.additions; break;
                case GIT_DIFF_LINE_DELETION: hunk.lines.push_back({"deleted", text}); ++out.deletions; break;
                case GIT_DIFF_LINE_CONTEXT: hunk.lines.push_back({"context", text}); break;
                default: hunk.lines.push_back({"annotation", "\\ No newline at end of file"}); break;
              }
            }
            hunks.push_back(std::move(hunk));
          }
          e.hunks = std::move(hunks);
        }
      }
      out.entries.push_back(std::move(e));
    }
  }
  if (mode != ConflictsMode::kExclude) {
    for (const auto& c : *conflicts) {
      auto analysis = AnalyzeConflict(g, c);
      if (!analysis.ok()) return analysis.status();
      ConflictedEntry ce;
      ce.path = c.path;
      ce.hunks = analysis->hunks;
      ce.size_bytes = analysis->size_bytes;
      ce.omitted_reason = analysis->omitted_reason;
      out.conflicted_hunks += static_cast<int>(ce.hunks.size());
      out.conflicted_entries.push_back(std::move(ce));
    }
  }
  return out;
}

absl::StatusOr<std::string> Store::GetUnifiedDiff(const Repo& repo, const std::string& base_change_id,
                                                  const std::string& head_change_id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto base_commit = ChangeCommit(**db, repo.id, base_change_id);
  if (!base_commit.ok()) return base_commit.status();
  auto head_commit = ChangeCommit(**db, repo.id, head_change_id);
  if (!head_commit.ok()) return head_commit.status();
  auto git = Git(repo.id);
  if (!git.ok()) return git.status();
  auto base_tree = CommitTree(git->get(), *base_commit);
  if (!base_tree.ok()) return base_tree.status();
  auto head_tree = CommitTree(git->get(), *head_commit);
  if (!head_tree.ok()) return head_tree.status();
  auto d = MakeDiff(git->get(), *base_tree, *head_tree);
  if (!d.ok()) return d.status();
  // Conflicted files are stored with their markers, so they appear inline in the patch.
  git::Buf buf;
  if (int rc = git_diff_to_buf(&buf.buf, d->diff.get(), GIT_DIFF_FORMAT_PATCH); rc < 0)
    return git::Error(rc, "diff to buf");
  return buf.str();
}

}  // namespace mesa::server
