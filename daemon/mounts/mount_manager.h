// Every FUSE mount of the daemon: creation (resolve revisions, make the mount point, start the
// FUSE session), lookup by id or path for the owner, unmount, and the records under
// <state_dir>/mounts.json that let the next start clean up after a crash.
#pragma once

#include <sys/types.h>

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
  SessionManager* sessions = nullptr;
  FuseOptions fuse;
};

class MountManager {
 public:
  explicit MountManager(MountManagerOptions options) : options_(std::move(options)) {}
  ~MountManager();

  // Opens the shared caches and detaches mounts a previous (crashed) daemon left behind.
  absl::Status Start();

  absl::StatusOr<mesa::daemon::v1::MountInfo> Mount(const PeerCred& caller, const mesa::daemon::v1::MountRequest& req);
  absl::Status Unmount(uid_t uid, const std::string& id_or_path);
  std::vector<mesa::daemon::v1::MountInfo> List(uid_t uid, bool all_users);
  absl::StatusOr<mesa::daemon::v1::MountInfo> Get(uid_t uid, const std::string& id_or_path);
  // The filesystem of a mount the caller owns (file RPCs).
  absl::StatusOr<std::shared_ptr<fs::MountFs>> Filesystem(uid_t uid, const std::string& id_or_path);
  int Count(uid_t uid);
  void UnmountAll();

  std::shared_ptr<BlobCache> shared_blobs() const { return blobs_; }

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
  };

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
};

}  // namespace mesa::daemon
