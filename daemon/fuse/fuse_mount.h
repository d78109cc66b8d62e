// A libfuse3 low-level session serving a fs::MountFs at a mount point: a thin adapter (FUSE
// requests -> MountFs calls -> replies). Knows nothing of HTTP.
//
// Kernel caching: content is addressed by sha, so entries, attributes and negative lookups are
// cached for a day, files are opened without a daemon round trip (no_open => keep_cache),
// directories likewise (no_opendir => cache_dir), xattr calls are refused once for good, and
// reads are answered from the cache file's descriptor (spliced where the kernel allows).
//
// Per-file round trips by kind of mount (a warm open+read+close):
// - every repo ro: the kernel mount is MS_RDONLY (the kernel itself answers EROFS), so neither
//   OPEN nor FLUSH is needed: both are refused once with ENOSYS. Zero round trips.
// - every repo rw: no OPEN; FLUSH on close stays, as the flusher's "upload on close" hint.
// - mixed: OPEN is answered (EROFS for writes to ro repos); read-only opens get FOPEN_NOFLUSH.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/fs/mount_fs.h"

struct fuse_session;

namespace mesa::daemon {

struct FuseOptions {
  double entry_timeout_s = 86400;
  double attr_timeout_s = 86400;
  double negative_timeout_s = 86400;
  unsigned max_threads = 16;
  unsigned max_readahead = 1u << 20;
  // Written to the mount's /sys/class/bdi/<dev>/read_ahead_kb (the kernel's default is 128, and
  // a cold sequential read through FUSE is bound by it); 0 leaves the default.
  unsigned read_ahead_kb = 1024;
  std::string fsname = "mesad";
};

class FuseMount {
 public:
  static absl::StatusOr<std::unique_ptr<FuseMount>> Start(const std::string& mountpoint,
                                                          std::shared_ptr<fs::MountFs> fs, FuseOptions options);
  ~FuseMount();

  // Unmounts and waits for the session loop to end. Idempotent.
  void Stop();
  const std::string& mountpoint() const { return mountpoint_; }
  fs::MountFs* fs() { return fs_.get(); }

 private:
  FuseMount() = default;

  std::string mountpoint_;
  std::shared_ptr<fs::MountFs> fs_;
  FuseOptions options_;
  struct fuse_session* session_ = nullptr;
  std::string connection_;  // /sys/fs/fuse/connections/<minor>, to abort a stuck unmount
  std::thread loop_;
  bool stopped_ = false;
  fs::MountFs::RepoModes modes_ = fs::MountFs::RepoModes::kAllWritable;
  friend struct FuseOps;
};

// Lazily detaches a mount point left by a crashed daemon ("Transport endpoint is not connected").
bool DetachStaleMount(const std::string& mountpoint);

// FUSE mounts of this machine whose fsname starts with `fsname_prefix` (from /proc/self/mountinfo).
std::vector<std::string> FindFuseMounts(const std::string& fsname_prefix);

}  // namespace mesa::daemon
