// The filesystem of one mount, independent of FUSE: an inode table over the trees of the
// mounted repos, plus the local overlay of unconfirmed writes and the flusher that uploads
// them. The root lists one directory per repo; /<repo>/... is that repo's tree at its resolved
// revision with every local write applied on top.
//
// Reads: inode numbers are stable for the life of the mount (one per parent+name); listings
// and blobs come from the content-addressed caches; a miss asks the backend (listings two
// levels at a time, so one level is always prefetched).
//
// Writes (rw repos, SDK 0.38 semantics): the first write forks a new change on top of the
// pinned revision (lazily, by the flusher, so writes never wait for the network); later writes
// amend it. A write returns once it is in the overlay on local disk. The flusher uploads dirty
// paths after a short idle, at a size threshold, on fsync/close, on Flush, before a view switch
// and at unmount: PATCH .../changes/{id} with base_commit_oid, refetching and retrying on 409.
// While the backend is down it keeps retrying with backoff and keeps accepting writes up to the
// overlay cap (then ENOSPC). The view is always the base tree plus every unconfirmed write.
//
// Errors are errnos (ENOENT, ENOTDIR, EISDIR, EEXIST, ENOTEMPTY, EXDEV, EROFS, ENOSPC, EIO...).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "daemon/cache/blob_cache.h"
#include "daemon/cache/tree_cache.h"
#include "daemon/fs/backend.h"
#include "daemon/fs/overlay.h"

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
  int64_t mtime_ns = 0;
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
  Revision revision;          // what the view was resolved to (the pin, or the edited change)
  std::string root_tree;
  std::optional<Revision> working;  // the change writes go to, once it exists
  size_t pending_paths = 0;
  uint64_t pending_bytes = 0;
  std::string last_upload_error;
};

struct MountFsOptions {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<RepoSpec> repos;
  Backend* backend = nullptr;
  std::shared_ptr<BlobCache> blobs;
  std::shared_ptr<TreeCache> trees;
  std::string overlay_dir;         // <state>/overlays/<mount id>
  int64_t mount_time_s = 0;
  int flush_idle_ms = 200;
  uint64_t flush_threshold_bytes = 8u << 20;
  uint64_t overlay_max_bytes = 1ull << 30;
  uint64_t upload_batch_bytes = 32u << 20;
};

struct MountFsStats {
  uint64_t listings_fetched = 0;
  uint64_t blobs_opened = 0;
  uint64_t backend_errors = 0;
  uint64_t uploads = 0;
  uint64_t upload_conflicts = 0;
  uint64_t upload_failures = 0;
};

struct SetAttrRequest {
  std::optional<uint64_t> size;
  std::optional<mode_t> mode;
  std::optional<int64_t> mtime_ns;  // nanoseconds since the epoch
};

class MountFs {
 public:
  explicit MountFs(MountFsOptions options);
  ~MountFs();

  // Resolves every repo's revision and root tree (a missing repo or pin fails the mount),
  // restores unconfirmed writes a previous daemon left in the overlay, and starts the flusher.
  absl::Status Init();

  bool Allowed(uid_t caller) const { return caller == options_.uid; }
  bool ReadOnly(uint64_t ino) const;
  enum class RepoModes { kAllWritable, kAllReadOnly, kMixed };
  RepoModes Modes() const;

  // Called (outside any FUSE request) when a change made without the kernel must drop the
  // kernel's caches: a name under a directory, or an inode's data and attributes.
  void SetInvalidator(std::function<void(uint64_t parent, const std::string& name)> entry,
                      std::function<void(uint64_t ino)> inode);

  // ---- reads ----
  Result<Attr> Lookup(uint64_t parent, const std::string& name);
  Result<Attr> GetAttr(uint64_t ino);
  Result<std::vector<DirEntry>> ReadDir(uint64_t ino);
  // An open descriptor with the file's bytes (local overlay file or cache file) and its size.
  struct Content {
    int fd = -1;
    uint64_t size = 0;
    std::shared_ptr<BlobFile> hold;  // keeps a cache file open
  };
  Result<Content> OpenContent(uint64_t ino);
  Result<std::string> ReadLink(uint64_t ino);
  // "/repo/a/b" -> inode. Symlinks on the way are followed (targets are relative to the link's
  // directory; absolute ones to the mount root), the last one only with `follow`. "/" is the
  // root. More than 40 links: ELOOP.
  Result<uint64_t> Resolve(const std::string& path, bool follow = false);

  // ---- writes (`kernel`: the request came through FUSE, whose caches are already right) ----
  Result<Attr> Create(uint64_t parent, const std::string& name, mode_t mode, bool kernel);
  Result<size_t> Write(uint64_t ino, const char* data, size_t size, uint64_t offset, bool kernel);
  Result<Attr> SetAttr(uint64_t ino, const SetAttrRequest& req, bool kernel);
  Result<Attr> Mkdir(uint64_t parent, const std::string& name, bool kernel);
  Result<bool> Unlink(uint64_t parent, const std::string& name, bool kernel);
  Result<bool> Rmdir(uint64_t parent, const std::string& name, bool kernel);
  // flags: RENAME_NOREPLACE honoured; RENAME_EXCHANGE is EINVAL.
  Result<bool> Rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                      unsigned flags, bool kernel);
  // fsync: the file's bytes and the overlay state reach the disk.
  Result<bool> Fsync(uint64_t ino);
  // close(): ask the flusher to upload soon.
  void Released(uint64_t ino);

  // ---- flushing and the working change ----
  // Uploads every pending write of `repo` (all repos when empty); waits up to `timeout_ms`.
  absl::Status Flush(const std::string& repo, int timeout_ms);
  // The repo's current change: the working change once writes exist (flushed first), else
  // the revision the view shows.
  absl::StatusOr<Revision> Current(const std::string& repo, int timeout_ms);
  // Flushes, then points the repo's view at `revision` (its tree, no local writes) and makes
  // that change the one later writes amend (edit in place). Kernel caches are invalidated.
  absl::Status SwitchView(const std::string& repo, const Revision& revision, int timeout_ms);
  // Stops the flusher after a final flush attempt; returns true when nothing is pending.
  bool Shutdown(int timeout_ms);

  std::vector<RepoStatus> Repos() const;
  MountFsStats Stats() const;
  uid_t uid() const { return options_.uid; }
  int RepoIndex(const std::string& name) const;

 private:
  enum class Kind { kRoot, kDir, kFile, kSymlink };
  struct Node {
    uint64_t ino = 0;
    uint64_t parent = 0;
    std::string name;
    Kind kind = Kind::kDir;
    int repo = -1;           // index into repos_; -1 for the root
    std::string path;        // current repo-relative path ("" for a repo root)
    std::string base_path;   // where `sha` lives in the base revision
    std::string sha;         // tree or blob id in the base revision ("" for local-only)
    uint64_t size = 0;
    bool executable = false;
    bool listed = false;
    bool loading = false;
    bool local_dir = false;  // children are authoritative here (created or modified locally)
    bool removed = false;
    std::string local;       // overlay content file id (file bytes live locally)
    int64_t mtime_ns = 0;    // 0: the repo's revision time
    std::map<std::string, uint64_t> children;
  };
  static constexpr size_t kMaxUploadOps = 4096;         // files per PATCH
  static constexpr int64_t kCloseUploadGapMs = 50;      // see FlusherLoop
  static constexpr size_t kRecountPendingMax = 2048;    // see Upload
  static constexpr uint64_t kJournalSlack = 4096;       // records beyond 2x pending before a snapshot
  struct Pending {
    uint64_t seq = 0;
    // What the journal last said about this path (a change of either is journaled again).
    std::string journaled_local;
    bool journaled_exec = false;
    bool journaled = false;
  };
  struct RepoView {
    RepoSpec spec;
    Revision revision;          // the view's base revision
    std::string fetch_change;   // change id to read base content with
    std::string root_tree;
    uint64_t root_ino = 0;
    std::optional<Revision> working;
    std::map<std::string, Pending> pending;  // dirty paths -> last mutation
    std::set<std::string> local_dirs;        // mkdir'ed paths (git cannot store empty dirs)
    std::set<std::string> confirmed_upserts, confirmed_deletes;  // relative to the base tree
    std::set<std::string> inflight_upserts;  // being uploaded right now: may be on the server
    uint64_t seq = 0;
    uint64_t uploaded_seq = 0;  // every mutation <= this is on the server
    // Bytes of files not yet confirmed by the server (the overlay cap applies to these);
    // recomputed after every successful upload.
    uint64_t overlay_bytes = 0;
    uint64_t journal_records = 0;  // appended since the last snapshot
    // Bytes written since the last upload started: the flusher's size threshold.
    uint64_t dirty_bytes = 0;
    int64_t last_write_ms = 0;
    bool flush_requested = false;  // fsync, Flush, a view switch, the rest of a partial batch
    bool close_requested = false;  // a close() of a file of this repo
    uint64_t batch_cap_bytes = 0;  // 0: options' upload_batch_bytes; halved on HTTP 413
    std::map<std::string, uint64_t> too_large;  // path -> the seq the server refused (413)
    int64_t last_upload_start_ms = 0;
    int failures = 0;
    int64_t retry_at_ms = 0;
    std::string last_error;
    uint64_t attempts = 0;  // finished upload attempts (waiters watch it)
  };

  Attr AttrOf(const Node& n) const;
  Result<bool> EnsureListed(uint64_t ino);
  void AdoptListingLocked(uint64_t ino, const TreeListing& listing);
  uint64_t AddChildLocked(uint64_t parent, const TreeEntry& entry);
  uint64_t NewNodeLocked(uint64_t parent, const std::string& name, Kind kind);
  absl::Status FetchListing(const Node& dir);
  Result<std::shared_ptr<BlobFile>> OpenBlob(const Node& n);
  uint64_t MakeRepoRootLocked(size_t repo_index);

  // Write-path helpers (mu_ held unless noted).
  int CheckWritableLocked(uint64_t ino) const;
  Result<bool> MaterializeLocked(std::unique_lock<std::mutex>& lock, uint64_t ino);
  void MarkDirtyLocked(int repo, const std::string& path);
  void MarkRemovedLocked(int repo, const std::string& path);
  bool ServerHasLocked(int repo, const std::string& path);
  bool BaseHasLocked(int repo, const std::string& path);
  void SaveStateLocked(int repo, bool durable);  // a full snapshot; empties the journal
  void JournalLocked(int repo, const nlohmann::json& record);
  void RepathLocked(uint64_t ino, const std::string& path);
  void CollectFilesLocked(uint64_t ino, std::vector<uint64_t>* out);
  Result<bool> ListSubtree(uint64_t ino);
  std::optional<uint64_t> FindLocked(int repo, const std::string& path);
  void Invalidate(uint64_t parent, const std::string& name, bool kernel);
  void InvalidateInode(uint64_t ino, bool kernel);
  absl::Status RestoreLocked(std::unique_lock<std::mutex>& lock, size_t repo_index, const nlohmann::json& state);

  // Flusher.
  void FlusherLoop();
  void Upload(std::unique_lock<std::mutex>& lock, size_t repo_index);
  absl::Status WaitUploaded(std::unique_lock<std::mutex>& lock, const std::vector<size_t>& repos, int timeout_ms);

  MountFsOptions options_;
  std::unique_ptr<OverlayStore> overlay_;
  mutable std::mutex mu_;
  std::condition_variable listed_cv_;
  std::condition_variable flush_cv_;     // wakes the flusher
  std::condition_variable uploaded_cv_;  // wakes Flush() waiters
  std::vector<RepoView> repos_;
  std::deque<Node> nodes_;  // index = ino - 1; a deque keeps references stable on growth
  std::map<uint64_t, std::shared_ptr<BlobFile>> open_files_;
  MountFsStats stats_;
  std::function<void(uint64_t, const std::string&)> inval_entry_;
  std::function<void(uint64_t)> inval_inode_;
  bool stop_ = false;
  std::thread flusher_;
};

// errno for a backend failure: 404 -> ENOENT, 401/403 -> EACCES, everything else EIO.
int ErrnoFor(const absl::Status& status);

}  // namespace mesa::daemon::fs
