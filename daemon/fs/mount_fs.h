// The filesystem of one mount, independent of FUSE: an inode table over the trees of the
// mounted repos. The root lists one directory per repo; /<repo>/... is that repo's tree at
// its resolved revision. Inode numbers are stable for the life of the mount (one per
// parent+name), listings and blobs come from the content-addressed caches, and a miss asks
// the backend (listings two levels at a time, so one level is always prefetched).
//
// Errors are errnos (ENOENT, ENOTDIR, EISDIR, EACCES, EROFS, EIO, ...).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/cache/blob_cache.h"
#include "daemon/cache/tree_cache.h"
#include "daemon/fs/backend.h"

namespace mesa::daemon::fs {

inline constexpr uint64_t kRootIno = 1;

// A value or an errno with a message.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  static Result Error(int err, std::string message = "") {
    Result r;
    r.err_ = err;
    r.message_ = std::move(message);
    return r;
  }
  bool ok() const { return err_ == 0; }
  int err() const { return err_; }
  const std::string& message() const { return message_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  Result() = default;
  std::optional<T> value_;
  int err_ = 0;
  std::string message_;
};

struct Attr {
  uint64_t ino = 0;
  mode_t mode = 0;  // type and permission bits
  uint64_t size = 0;
  uint32_t nlink = 1;
  uid_t uid = 0;
  gid_t gid = 0;
  int64_t mtime_s = 0;
};

struct DirEntry {
  std::string name;
  Attr attr;
};

struct RepoSpec {
  std::string name;
  bool read_only = false;
  std::string bookmark;   // at most one of bookmark / change_id
  std::string change_id;
};

struct RepoStatus {
  RepoSpec spec;
  Revision revision;
  std::string root_tree;
};

struct MountFsOptions {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<RepoSpec> repos;
  Backend* backend = nullptr;
  std::shared_ptr<BlobCache> blobs;
  std::shared_ptr<TreeCache> trees;
  int64_t mount_time_s = 0;
};

struct MountFsStats {
  uint64_t listings_fetched = 0;
  uint64_t blobs_opened = 0;
  uint64_t backend_errors = 0;
};

class MountFs {
 public:
  explicit MountFs(MountFsOptions options);

  // Resolves every repo's revision and root tree; a missing repo or pin fails the mount.
  absl::Status Init();

  bool Allowed(uid_t caller) const { return caller == options_.uid; }
  bool ReadOnly(uint64_t ino) const;

  Result<Attr> Lookup(uint64_t parent, const std::string& name);
  Result<Attr> GetAttr(uint64_t ino);
  Result<std::vector<DirEntry>> ReadDir(uint64_t ino);
  // The file's bytes as an open cache file (fetched on first use).
  Result<std::shared_ptr<BlobFile>> Open(uint64_t ino);
  Result<std::string> ReadLink(uint64_t ino);

  // "/repo/a/b" -> inode, without following a final symlink. "/" is the root.
  Result<uint64_t> Resolve(const std::string& path);

  std::vector<RepoStatus> Repos() const;
  MountFsStats Stats() const;
  uid_t uid() const { return options_.uid; }

 private:
  enum class Kind { kRoot, kDir, kFile, kSymlink };
  struct Node {
    uint64_t ino = 0;
    uint64_t parent = 0;
    std::string name;
    Kind kind = Kind::kDir;
    int repo = -1;       // index into repos_; -1 for the root
    std::string path;    // repo-relative ("" for a repo root)
    std::string sha;     // tree or blob id
    uint64_t size = 0;
    bool executable = false;
    bool listed = false;
    bool loading = false;
    std::map<std::string, uint64_t> children;
  };

  Attr AttrOf(const Node& n) const;
  // Makes sure `ino`'s children are known; callers hold no lock.
  Result<bool> EnsureListed(uint64_t ino);
  void AdoptListing(uint64_t ino, const TreeListing& listing);  // mu_ held
  uint64_t ChildInoLocked(uint64_t parent, const TreeEntry& entry);
  absl::Status FetchListing(const Node& dir);  // caches dir and its child dirs' listings
  Result<std::shared_ptr<BlobFile>> OpenBlob(const Node& n);

  MountFsOptions options_;
  std::vector<RepoStatus> repos_;
  mutable std::mutex mu_;
  std::condition_variable listed_cv_;
  std::deque<Node> nodes_;  // index = ino - 1; a deque keeps references stable on growth
  std::map<uint64_t, std::shared_ptr<BlobFile>> open_files_;  // small LRU-less cache of fds
  MountFsStats stats_;
};

// errno for a backend failure: 404 -> ENOENT, 401/403 -> EACCES, everything else EIO.
int ErrnoFor(const absl::Status& status);

}  // namespace mesa::daemon::fs
