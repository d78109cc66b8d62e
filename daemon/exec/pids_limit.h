// The per-command process limit (fork bombs), exec_pids_max processes and threads per command.
//
// Default: RLIMIT_NPROC inside the sandbox's own user namespace (set by mesad-exec-shim). Since
// Linux 5.14 the kernel counts RLIMIT_NPROC per user namespace, so this caps exactly the
// command's sandbox, costs nothing, and needs no cgroup. (On older kernels it counts all of the
// uid's processes.) Root's commands are not limited: the kernel exempts root from RLIMIT_NPROC.
//
// Opt-in (exec_pids_cgroup: true): a cgroup with pids.max per command, under a base cgroup of
// this daemon, on whichever hierarchy has the pids controller (cgroup v2, or v1's pids
// hierarchy on hybrid systems). Moving the new process into its cgroup waits for an RCU grace
// period in the kernel: measured 5-15 ms per command here. cgroup v2 needs a hierarchy where
// mesad may create children: the root cgroup or a delegated one (systemd Delegate=yes); when
// mesad's own cgroup holds processes, mesad moves itself to a "daemon" leaf below it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mesa::daemon {

// Base cgroups are named <prefix>-<id> (one per daemon); Create() also removes the empty
// base cgroups of daemons that are gone, and NewRun() remakes its base if one of those sweeps
// took it while it was empty.

// One command's cgroup. Removed (after killing anything left) by the destructor.
class RunCgroup {
 public:
  RunCgroup(std::string path, int procs_fd, bool v2) : path_(std::move(path)), procs_fd_(procs_fd), v2_(v2) {}
  ~RunCgroup();
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  // cgroup.procs, open for writing: a child writes "0" to it to join before it execs.
  int procs_fd() const { return procs_fd_; }
  const std::string& path() const { return path_; }
  std::vector<pid_t> Pids() const;
  // SIGKILL to everything in the cgroup (cgroup.kill on v2; a pid loop on v1).
  void KillAll() const;

 private:
  std::string path_;
  int procs_fd_;
  bool v2_;
};

class PidsLimiter {
 public:
  // With `use_cgroups`, finds (and prepares) the base cgroup `name` for commands, killing and
  // removing any run cgroups a previous daemon left there; falls back to RLIMIT_NPROC when no
  // pids cgroup can be used. Without it, RLIMIT_NPROC.
  static std::unique_ptr<PidsLimiter> Create(const std::string& name, uint64_t pids_max, bool use_cgroups);

  // "cgroup-v2:/sys/fs/cgroup/...", "cgroup-v1:/sys/fs/cgroup/pids/...", "rlimit-nproc" or "none".
  std::string Describe() const;
  bool uses_cgroups() const { return !base_.empty(); }
  uint64_t pids_max() const { return pids_max_; }
  // A new cgroup for one command; nullptr in rlimit mode.
  absl::StatusOr<std::unique_ptr<RunCgroup>> NewRun(const std::string& run_name);
  // Removes the (empty) base cgroup at shutdown; NewRun would make it again.
  void RemoveBase();

  // Use Create(); `base` empty means rlimit mode.
  PidsLimiter(std::string base, bool v2, uint64_t pids_max) : base_(std::move(base)), v2_(v2), pids_max_(pids_max) {}

 private:
  std::string base_;  // empty: rlimit mode
  bool v2_ = false;
  uint64_t pids_max_;
};

}  // namespace mesa::daemon
