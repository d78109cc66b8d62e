// Exec: runs `bash -c COMMAND` inside a mount, in a sandbox (sandbox.h), as the caller. Owns
// the limits (timeout, output caps, runs per uid and in all, processes per run), the registry
// of running commands (so that Unmount and shutdown can kill them), and the loop that feeds
// stdin, reads stdout/stderr, enforces the deadline and reaps the sandbox.
//
// Killing is exact: the command lives in its own pid namespace, whose pid 1 (bwrap's init) is
// SIGKILLed, and the kernel then kills every process of the namespace (setsid, nohup and
// double-fork escapees included) before that pid 1 is gone; the run ends only once it is. A
// stop (timeout, Unmount, shutdown, client gone) first sends SIGTERM to every process of the
// namespace and waits up to exec_kill_grace_ms. When the command exits on its own, whatever it
// left running in the background is killed the same way.
//
// Warm sandboxes (warm_pool.h, exec_warm_idle_ms): after a run, the next sandbox of the same
// uid and mount is set up in the background, its shim waiting for the command; a run whose
// sandbox would be the same takes it and only sends the command, env, cwd and stdin. Each
// sandbox still serves exactly one command.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "daemon/config/config.h"
#include "daemon/exec/etc_snapshot.h"
#include "daemon/exec/pids_limit.h"
#include "daemon/exec/sandbox.h"
#include "daemon/exec/warm_pool.h"
#include "daemon/mounts/mount_manager.h"
#include "daemon/rpc/peer.h"
#include "mesa/daemon/v1/exec.pb.h"

namespace mesa::daemon {

struct ExecOptions {
  std::string bwrap = "/usr/bin/bwrap";
  std::string shim;  // empty: mesad-exec-shim beside the mesad binary
  int timeout_default_ms = 30000;
  int timeout_max_ms = 600000;
  uint64_t output_cap_bytes = 10ull << 20;  // per stream, Exec (unary) results
  int max_per_uid = 8;
  int max_total = 32;
  bool network = false;
  uint64_t pids_max = 1024;  // 0: no limit
  bool pids_cgroup = false;  // a pids cgroup per command instead of RLIMIT_NPROC (pids_limit.h)
  int kill_grace_ms = 500;
  uint64_t tmpfs_max_bytes = 1ull << 30;
  std::string cgroup_name = "mesad-exec";  // base cgroup of this daemon's runs
  std::string work_dir;  // root-owned, traversable by all: the sandbox's /etc lives here
  int warm_idle_ms = 30000;  // a warm sandbox unused this long is killed; 0: no warm sandboxes
};

// The exec_* keys of mesad's config; the cgroup name is unique per state_dir.
ExecOptions ExecOptionsFromConfig(const DaemonConfig& config);

// Where a run's output goes while it runs, and how the run learns that its caller left.
class ExecSink {
 public:
  virtual ~ExecSink() = default;
  // false: the output is captured into the result (capped); true: it goes to Output().
  virtual bool streaming() const { return false; }
  // A chunk of output (streaming only). Called only while Writable(); must not block.
  virtual void Output(bool is_stderr, std::string_view data) {}
  // Streaming back-pressure: while false, the run stops reading the command's output (so the
  // command blocks on a full pipe) and waits for ready_fd() to turn readable.
  virtual bool Writable() { return true; }
  virtual int ready_fd() { return -1; }
  // The caller cancelled or went away: the run is killed.
  virtual bool Gone() = 0;
};

class ExecManager {
 public:
  ExecManager(ExecOptions options, MountManager* mounts);
  ~ExecManager();

  // Finds bwrap and the shim and sets up the pids limit. Never fatal: without bwrap, Exec
  // answers EXEC_UNAVAILABLE. Registers with `mounts` so that Unmount kills the mount's runs.
  void Start();
  std::string Describe() const;

  absl::StatusOr<mesa::daemon::v1::ExecResult> Run(const PeerCred& caller, const mesa::daemon::v1::ExecRequest& req,
                                                   ExecSink* sink);

  // Kills the runs inside mount `mount_id` and waits (bounded) until they have ended.
  void CancelMount(const std::string& mount_id);
  // Refuses new runs, kills every run and waits up to `timeout_ms` for them to end.
  void Shutdown(int timeout_ms);
  int running() const;

  // A reload: new timeouts, output cap, run limits and kill grace for runs that start later
  // (running ones keep theirs), and the warm sandboxes' idle time (0 kills them). The other
  // fields of `options` need a restart and are ignored.
  void SetLimits(const ExecOptions& options);
  ExecOptions options() const;

  // Warm sandboxes waiting, and how many commands started in a warm / a cold sandbox.
  struct SandboxStats {
    int warm_waiting = 0;
    uint64_t warm_starts = 0;
    uint64_t cold_starts = 0;
    uint64_t warm_expired = 0;
  };
  SandboxStats sandbox_stats() const;

 private:
  enum Reason : int { kNone = 0, kUnmount, kShutdown };
  struct Running {
    uint64_t seq = 0;
    uid_t uid = 0;
    std::string mount_id;
    int cancel_fd = -1;  // eventfd
    std::atomic<int> reason{kNone};
  };

  absl::StatusOr<std::shared_ptr<Running>> Register(uid_t uid, const std::string& mount_id);
  void Unregister(const std::shared_ptr<Running>& run);
  void Cancel(Running& run, Reason reason);
  bool WaitUntil(std::function<bool()> done, int timeout_ms);

  ExecOptions options_;
  MountManager* mounts_;
  SandboxTools tools_;
  bool disable_userns_ = true;
  std::string unavailable_;  // why exec cannot run; empty when it can
  std::unique_ptr<PidsLimiter> pids_;
  std::unique_ptr<EtcSnapshot> etc_;
  std::string bwrap_version_;
  std::unique_ptr<WarmPool> warm_;  // when exec is available
  std::atomic<uint64_t> cold_starts_{0};
  std::atomic<uint64_t> warm_seq_{0};

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<uint64_t, std::shared_ptr<Running>> running_;
  uint64_t next_seq_ = 1;
  bool shutting_down_ = false;
};

}  // namespace mesa::daemon
