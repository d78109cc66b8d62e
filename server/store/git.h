// RAII handles and commit I/O over libgit2.
#pragma once

#include <git2.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/types.h"

namespace mesa::server::git {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};

using RepositoryPtr = std::unique_ptr<git_repository, Deleter<git_repository, git_repository_free>>;
using CommitPtr = std::unique_ptr<git_commit, Deleter<git_commit, git_commit_free>>;
using TreePtr = std::unique_ptr<git_tree, Deleter<git_tree, git_tree_free>>;
using TreeEntryPtr = std::unique_ptr<git_tree_entry, Deleter<git_tree_entry, git_tree_entry_free>>;
using BlobPtr = std::unique_ptr<git_blob, Deleter<git_blob, git_blob_free>>;
using IndexPtr = std::unique_ptr<git_index, Deleter<git_index, git_index_free>>;
using DiffPtr = std::unique_ptr<git_diff, Deleter<git_diff, git_diff_free>>;
using PatchPtr = std::unique_ptr<git_patch, Deleter<git_patch, git_patch_free>>;
using ReferencePtr = std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;
using RevwalkPtr = std::unique_ptr<git_revwalk, Deleter<git_revwalk, git_revwalk_free>>;
using OdbPtr = std::unique_ptr<git_odb, Deleter<git_odb, git_odb_free>>;
using ReferenceIteratorPtr =
    std::unique_ptr<git_reference_iterator, Deleter<git_reference_iterator, git_reference_iterator_free>>;

// Frees a git_buf on scope exit.
struct Buf {
  git_buf buf = GIT_BUF_INIT;
  ~Buf() { git_buf_dispose(&buf); }
  std::string str() const { return buf.ptr ? std::string(buf.ptr, buf.size) : std::string(); }
};

void GlobalInit();

// Maps a libgit2 return code (and git_error_last) to an internal error.
absl::Status Error(int rc, std::string_view what);

std::string OidHex(const git_oid& oid);
bool ParseOid(std::string_view hex, git_oid* out);

absl::StatusOr<RepositoryPtr> InitBare(const std::string& path);
absl::StatusOr<RepositoryPtr> OpenBare(const std::string& path);

struct CommitInfo {
  std::string oid;
  std::string tree_oid;
  std::vector<std::string> parent_oids;
  std::string change_id;  // from the change-id header, else jj's synthetic id
  std::string message;
  Signature author;
  Signature committer;
};

absl::StatusOr<CommitInfo> ReadCommit(git_repository* repo, std::string_view oid_hex);

// Writes a commit object carrying a `change-id` header after `committer`, as jj does.
// An empty tree_oid means the empty tree.
absl::StatusOr<std::string> WriteCommit(git_repository* repo, std::string_view tree_oid,
                                        const std::vector<std::string>& parent_oids,
                                        const Signature& author, const Signature& committer,
                                        std::string_view change_id, std::string_view message);

absl::StatusOr<std::string> EmptyTreeOid(git_repository* repo);

absl::StatusOr<TreePtr> LookupTree(git_repository* repo, std::string_view tree_oid);

}  // namespace mesa::server::git
