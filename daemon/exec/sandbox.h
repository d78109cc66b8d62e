// Starting one command in a bubblewrap sandbox, as a given uid. Knows nothing of mounts or RPCs.
//
// The sandbox (bwrap, run unprivileged as the command's uid through a user namespace):
//   /<repo>            each repo's directory of the FUSE mount, --bind (--ro-bind if read-only)
//   /usr, /bin, /sbin, /lib*   read-only (symlinks where the host has merged /usr)
//   /etc               a few read-only files (ld.so, nsswitch, alternatives, ssl, ...; see
//                      etc_snapshot.h) and a passwd/group of root, the command's user and
//                      nobody; no shadow, no secrets
//   /tmp, /home/user   private tmpfs (size-capped); /var/tmp -> /tmp; /dev/shm tmpfs
//   /proc, /dev        a procfs of the sandbox's own pid namespace; null, zero, random, tty, pts
// New user, pid, ipc, uts and (unless `network`) net namespaces, no further user namespaces,
// a new session, --die-with-parent. The command runs as `/bin/bash -c COMMAND` under
// mesad-exec-shim (pid 2), which reports the exact exit status or signal.
//
// Warm (StartSandbox with `warm`): the same sandbox set up before the command is known; the
// shim waits on a socket (SandboxProcess::go_fd) until ActivateSandbox sends it the command,
// environment, cwd and stdin. Used for one command, like a cold one.
//
// Secrets stay off command lines: bwrap's options arrive through a memfd (--args), the
// environment through execve's envp (bwrap passes it on), so `ps` on the host shows neither.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mesa::daemon {

inline constexpr const char* kSandboxHome = "/home/user";
inline constexpr const char* kSandboxPath = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

// Top-level names the sandbox itself uses; a repo cannot be bound over them.
bool IsReservedSandboxName(const std::string& name);

struct RepoBind {
  std::string name;       // shown at /<name>
  std::string host_path;  // <mount point>/<name>
  bool read_only = false;
};

struct SandboxSpec {
  // What the sandbox is: a warm sandbox serves a command whose spec has the same
  // WarmFingerprint (everything here but command, env, cwd and has_stdin).
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user_name;   // for /etc/passwd
  std::string group_name;  // for /etc/group
  std::string command;
  std::vector<std::string> env;  // "KEY=VALUE", the command's whole environment
  std::string cwd = "/";
  std::vector<RepoBind> repos;
  bool network = false;
  bool disable_userns = true;    // --disable-userns (bwrap >= 0.8)
  std::string etc_dir;           // bound at /etc (EtcSnapshot); empty: host files one by one
  bool has_stdin = false;        // else stdin is /dev/null
  uint64_t tmpfs_max_bytes = 0;  // per tmpfs (/tmp, home, /dev/shm); 0: the kernel's default
  int cgroup_procs_fd = -1;      // the child joins this cgroup before dropping privileges
  // > 0: RLIMIT_NPROC inside the sandbox's user namespace, set by the shim (which counts the
  // sandbox's own processes only); bwrap itself runs with an unlimited RLIMIT_NPROC so that
  // the user's other processes do not count against the sandbox.
  uint64_t rlimit_nproc = 0;
};

struct SandboxTools {
  std::string bwrap;  // path of bwrap
  int shim_fd = -1;   // open fd of mesad-exec-shim (executed through /proc/self/fd)
};

// A started sandbox. The caller owns every fd (-1 when absent) and must reap `pid`.
struct SandboxProcess {
  pid_t pid = -1;  // bwrap, leader of its own process group
  uid_t uid = 0;   // the caller bwrap runs as
  int pidfd = -1;  // of bwrap: readable when it exits
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int bwrap_status_fd = -1;  // --json-status-fd: {"child-pid": N ...} then {"exit-code": N}
  int shim_status_fd = -1;   // mesad-exec-shim: "exit N" | "signal N" | "exec-error E" | "chdir-error E"
  int go_fd = -1;            // warm, not yet activated: mesad's end of the shim's go socket
};

// readlink(2) as a string; empty when it fails.
std::string ReadLinkText(const std::string& path);

// Whether `pid`, named by bwrap's status pipe (which bwrap, running as the caller, could be made
// to write anything to), is bwrap's pid 1: real uid `uid`, another pid namespace than mesad's,
// and a child of `bwrap` or of mesad. While bwrap lives unreaped no reused pid is its child; nor
// is one mesad's, as only bwrap's pid 1 is left to mesad (the subreaper, when bwrap exits with
// its pid 2, first) and only its run reaps it.
bool IsSandboxInit(pid_t pid, pid_t bwrap, uid_t uid);

// bwrap's options (everything before "--"), in order.
std::vector<std::string> BwrapOptions(const SandboxSpec& spec);

// Forks, drops to spec.uid/gid (no supplementary groups) and execs bwrap. Fails when the
// child could not exec bwrap; a sandbox that bwrap cannot build shows as a bwrap exit with no
// "exit-code" status, with bwrap's message on stderr.
//
// `warm`: spec's command, env, cwd and has_stdin are ignored; bwrap gets an empty environment
// and cwd /, stdin is /dev/null, and the shim waits on `go_fd` for ActivateSandbox.
absl::StatusOr<SandboxProcess> StartSandbox(const SandboxTools& tools, const SandboxSpec& spec, bool warm = false);

// Hands a warm sandbox its command: spec.command, spec.env, spec.cwd and, when spec.has_stdin,
// a new stdin pipe (its write end becomes sp.stdin_fd). Through a memfd passed over the go
// socket, never a command line. Closes sp.go_fd. Fails when the shim is gone.
absl::Status ActivateSandbox(SandboxProcess& sp, const SandboxSpec& spec);

// What decides whether a warm sandbox can serve `spec`: bwrap's options (binds, network, /etc
// generation, tmpfs size, ...), the identity and /etc/passwd+group, the process limit.
std::string WarmFingerprint(const SandboxSpec& spec, bool pids_cgroup);

// The integer after `"key": ` in bwrap's JSON status (--json-status-fd), or -1.
int64_t JsonStatusInt(const std::string& text, const std::string& key);

// Kills a sandbox that never ran a command (a warm one nobody took) and reaps it: bwrap, and
// bwrap's pid 1 (which its --die-with-parent takes down with the whole pid namespace, and
// which mesad, a subreaper, inherits). Closes every fd of `sp`. Blocks until all are gone.
void KillUnusedSandbox(SandboxProcess& sp);

// Raises this process's soft RLIMIT_NOFILE to its hard limit (a mount keeps a descriptor per
// file written and not yet dropped) and has sandboxed commands start with the original soft
// limit again (select()-based programs expect at most 1024).
void RaiseNoFileLimit();

}  // namespace mesa::daemon
