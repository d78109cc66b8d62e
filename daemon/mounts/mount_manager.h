// Every FUSE mount of the daemon: creation (resolve revisions, make the mount point, start the
// FUSE session), lookup by id or path for the owner, unmount, and the records under
// <state_dir>/mounts.json that let the next start clean up after a crash.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/cache/blob_cache.h"
#include "daemon/cache/tree_cache.h"
#include "daemon/fs/mount_fs.h"
#include "daemon/fuse/fuse_mount.h"
#include "daemon/mounts/rest_backend.h"
#include "daemon/rpc/peer.h"
#include "daemon/session/session_manager.h"
#include "mesa/daemon/v1/mounts.pb.h"

namespace mesa::daemon {

struct MountManagerOptions {
  std::string runtime_dir = "/run/mesad/mounts";
  std::string state_dir;
  std::string cache_dir;
  uint64_t cache_max_bytes = 10ull << 30;
  int backend_timeout_ms = 20000;
  int flush_idle_ms = 200;
  uint64_t overlay_max_bytes = 1ull << 30;
  int unmount_flush_timeout_ms = 30000;
  SessionManager* sessions = nullptr;
  FuseOptions fuse;
};

class MountManager {
 public:
  explicit MountManager(MountManagerOptions options) : options_(std::move(options)) {}
  ~MountManager();

  // Opens the shared caches, detaches mounts a previous (crashed) daemon left behind, and
  // restores every recorded mount with its unconfirmed writes.
  absl::Status Start();

  absl::StatusOr<mesa::daemon::v1::MountInfo> Mount(const PeerCred& caller, const mesa::daemon::v1::MountRequest& req);
  // Uploads pending writes first; refuses (UNAVAILABLE) when they cannot be uploaded.
  absl::Status Unmount(uid_t uid, const std::string& id_or_path);
  std::vector<mesa::daemon::v1::MountInfo> List(uid_t uid, bool all_users);
  absl::StatusOr<mesa::daemon::v1::MountInfo> Get(uid_t uid, const std::string& id_or_path);
  // The filesystem of a mount the caller owns (file RPCs).
  absl::StatusOr<std::shared_ptr<fs::MountFs>> Filesystem(uid_t uid, const std::string& id_or_path);
  // The filesystem and the mount's REST backend (its session and org), for workspace calls.
  struct Access {
    std::shared_ptr<fs::MountFs> fs;
    std::shared_ptr<RestBackend> backend;
  };
  absl::StatusOr<Access> Handle(uid_t uid, const std::string& id_or_path);
  int Count(uid_t uid);

  // What Status reports of a mount. Records that could not be restored at start appear with
  // state "unrestored".
  struct Summary {
    std::string id;
    std::string path;
    uid_t uid = 0;
    std::string state;  // mounted | unrestored
    uint64_t pending_paths = 0;
    uint64_t pending_bytes = 0;
    std::string last_upload_error;
    uint64_t backend_errors = 0;
  };
  // The caller's mounts (every mount for root).
  std::vector<Summary> Summaries(uid_t uid);

  // Uploads the pending writes of every mount, all mounts at once, for up to `timeout_ms`;
  // returns how many mounts still have writes pending.
  int FlushAll(int timeout_ms);
  // Daemon shutdown: uploads pending writes for up to `flush_timeout_ms` (FlushAll), unmounts
  // everything (later writes fail), gives writes that arrived meanwhile what is left of the
  // time, and keeps the records (and any overlay not uploaded) so the next start restores the
  // mounts with their writes.
  void UnmountAll(int flush_timeout_ms = 10000);

  // Live settings (SIGHUP). The cap applies to the shared cache and to mounts' own caches that
  // use the default cap, and evicts down to it at once; the timeout to later backend calls.
  void SetCacheMaxBytes(uint64_t max_bytes);
  void SetBackendTimeoutMs(int timeout_ms);
  // Every distinct blob cache in use (the shared one first).
  std::vector<std::shared_ptr<BlobCache>> Caches();

  std::shared_ptr<BlobCache> shared_blobs() const { return blobs_; }
  // Called with a mount's id when an Unmount starts, before the flush (exec kills the mount's
  // commands). Register before serving.
  void OnUnmount(std::function<void(const std::string& mount_id)> fn) { unmount_listeners_.push_back(std::move(fn)); }

 private:
  struct Active {
    std::string id;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string path;
    bool created_dir = false;
    std::string session_id;
    std::string org;
    int64_t created_at_ms = 0;
    std::unique_ptr<RestBackend> backend;
    std::shared_ptr<BlobCache> blobs;
    std::shared_ptr<fs::MountFs> fs;
    std::unique_ptr<FuseMount> fuse;
    std::vector<fs::RepoSpec> specs;
    uint64_t cache_max_bytes = 0;
    std::string overlay_dir;
  };

  struct Spec {
    std::string id;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<fs::RepoSpec> repos;
    std::string session_id;
    std::string org;
    std::string path;  // fixed (restore) or requested
    bool created_dir = false;
    std::string cache_dir;
    uint64_t cache_max_bytes = 0;
  };
  absl::StatusOr<std::shared_ptr<Active>> MountSpec(const PeerCred& caller, Spec spec, bool restoring);
  absl::StatusOr<std::string> PrepareMountPoint(const PeerCred& caller, const std::string& id,
                                                const std::string& requested, bool* created);
  std::shared_ptr<Active> FindLocked(uid_t uid, const std::string& id_or_path);
  mesa::daemon::v1::MountInfo InfoOf(const Active& a) const;
  void SaveRecordsLocked();
  void StopMount(Active& a);

  MountManagerOptions options_;
  std::shared_ptr<BlobCache> blobs_;
  std::shared_ptr<TreeCache> trees_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Active>> mounts_;
  std::vector<std::function<void(const std::string&)>> unmount_listeners_;
  // Records of mounts that could not be restored yet (kept so that nothing is forgotten).
  std::vector<nlohmann::json> unrestored_;
  bool shutting_down_ = false;
};

}  // namespace mesa::daemon
