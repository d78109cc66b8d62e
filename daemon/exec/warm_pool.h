// Warm sandboxes: at most one per (uid, mount), set up ahead of the command (bwrap's
// namespaces, binds and tmpfs, mesad-exec-shim started with its limits set and waiting on its
// go socket; see sandbox.h), so that a command skips bwrap's set-up. Each is used for exactly
// one command, then gone, like a cold one; the pool makes the next one in the background.
//
// Lifecycle: Prepare() after a run asks for one (a no-op while the uid+mount has one, or one
// is being made). The pool's own thread starts it, so that its bwrap's parent-death signal is
// tied to a thread that lives as long as the pool. Take() hands it to a run when the run's
// sandbox fingerprint (sandbox.h WarmFingerprint: binds, network, /etc generation, tmpfs and
// pids limits, uid/gid) is the same; a different one is killed. Killed too: one not taken
// within the idle time, one whose processes ended on their own, every one of a mount at
// CancelMount (Unmount), all at Shutdown and when the idle time is set to 0. If mesad dies,
// bwrap's PR_SET_PDEATHSIG takes them down like running commands.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "daemon/exec/pids_limit.h"
#include "daemon/exec/sandbox.h"

namespace mesa::daemon {

struct WarmSandbox {
  uid_t uid = 0;
  std::string mount_id;
  std::string fingerprint;
  SandboxProcess sp;
  std::unique_ptr<RunCgroup> cgroup;  // exec_pids_cgroup: the cgroup bwrap joined
  int64_t started_ms = 0;
};

class WarmPool {
 public:
  // Starts one warm sandbox for `spec` (no command, env or cwd in it).
  using SpawnFn = std::function<absl::StatusOr<std::unique_ptr<WarmSandbox>>(const SandboxSpec& spec)>;
  // Whether the mount still exists for its uid (a sandbox made while it was being unmounted is
  // dropped).
  using MountAliveFn = std::function<bool(uid_t uid, const std::string& mount_id)>;

  WarmPool(SpawnFn spawn, MountAliveFn mount_alive, int idle_ms);
  ~WarmPool();  // Shutdown(), then the thread ends

  // The warm sandbox of (uid, mount) if its fingerprint is `fingerprint` and it is alive;
  // otherwise nullptr (and a mismatching or dead one is killed).
  std::unique_ptr<WarmSandbox> Take(uid_t uid, const std::string& mount_id, const std::string& fingerprint);
  // Asks for a warm sandbox of `spec` for (spec.uid, mount_id), in the background.
  void Prepare(const SandboxSpec& spec, const std::string& mount_id, const std::string& fingerprint);
  // Kills the mount's warm sandboxes (including one being made) and returns once they are gone.
  void CancelMount(const std::string& mount_id);
  // Kills all and makes no more. Returns once they are gone.
  void Shutdown();
  // 0: none any more (the existing ones are killed).
  void SetIdleMs(int idle_ms);

  // Kills a warm sandbox (synchronously).
  static void Kill(std::unique_ptr<WarmSandbox> w);

  struct Stats {
    int waiting = 0;       // warm sandboxes ready (or being set up) for a command
    uint64_t taken = 0;    // commands that ran in a warm sandbox
    uint64_t spawned = 0;  // warm sandboxes started
    uint64_t expired = 0;  // killed unused after the idle time
    uint64_t dropped = 0;  // killed unused otherwise (mismatch, unmount, died, shutdown)
  };
  Stats stats() const;

 private:
  using Key = std::pair<uid_t, std::string>;
  struct Request {
    SandboxSpec spec;
    std::string mount_id;
    std::string fingerprint;
    uint64_t epoch = 0;
  };

  void Loop();
  bool StillWantedLocked(const Request& r) const;

  SpawnFn spawn_;
  MountAliveFn mount_alive_;

  mutable std::mutex mu_;
  std::condition_variable wake_;     // the thread: work to do
  std::condition_variable settled_;  // CancelMount/Shutdown: a spawn in progress has ended
  int idle_ms_;
  bool stopping_ = false;
  bool quit_ = false;
  std::map<Key, std::unique_ptr<WarmSandbox>> warm_;
  std::deque<Request> queue_;
  std::set<Key> wanted_;  // queued or being made
  bool spawning_ = false;
  Key spawning_key_;
  // CancelMount: the epoch at which a mount's sandboxes were cancelled; a request made before
  // it is dropped. Cleared whenever nothing is queued or being made.
  uint64_t epoch_ = 0;
  std::map<std::string, uint64_t> cancelled_;
  Stats stats_;
  std::thread thread_;
};

}  // namespace mesa::daemon
