#include "daemon/exec/sandbox.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "daemon/exec/etc_snapshot.h"
#include "daemon/log.h"
#include "rest/api_error.h"

namespace mesa::daemon {
namespace {

// The soft RLIMIT_NOFILE mesad started with; 0: unchanged (see RaiseNoFileLimit).
rlim_t g_child_nofile_soft = 0;

// The fds bwrap gets (see BwrapOptions and the shim's argv).
constexpr int kArgsFd = 3;
constexpr int kBwrapStatusFd = 4;
constexpr int kPasswdFd = 5;
constexpr int kGroupFd = 6;
constexpr int kShimFd = 7;
constexpr int kShimStatusFd = 8;
constexpr int kExecErrorFd = 9;  // close-on-exec: the child reports a failure before exec here
constexpr int kGoFd = 10;        // warm: the shim's end of the go socket (closed when cold)
constexpr int kLastFd = kGoFd;
constexpr int kFirstFreeFd = 11;
constexpr int kPidfdIdType = 3;  // P_PIDFD for waitid (Linux 5.4), not in every libc's headers

constexpr const char* kReserved[] = {"bin",  "sbin", "lib", "lib32", "lib64", "libx32", "usr",
                                     "etc",  "proc", "dev", "tmp",   "home",  "var",    "run"};

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string Errno(const std::string& what) { return what + ": " + strerror(errno); }

// A sealed-size-free memfd holding `data`, rewound.
int DataFd(const char* name, const std::string& data) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC));
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  lseek(fd, 0, SEEK_SET);
  return fd;
}

// Moves `fd` to a number >= kFirstFreeFd (close-on-exec), so that the child's dup2s to
// 0..kLastFd never overwrite a source; closes the original.
int High(int fd) {
  if (fd < 0 || fd >= kFirstFreeFd) return fd;
  int high = fcntl(fd, F_DUPFD_CLOEXEC, kFirstFreeFd);
  close(fd);
  return high;
}

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
  int Add(int fd) {
    fds.push_back(fd);
    return fd;
  }
};

// Child side, between fork and exec: only async-signal-safe calls (raw syscalls).
struct ChildPlan {
  int sources[kLastFd + 1];  // target fd -> source fd (>= kFirstFreeFd); -1: closed
  int cgroup_procs_fd;
  uid_t uid;
  gid_t gid;
  uint64_t rlimit_nproc;
  pid_t parent;
  const char* path;
  char* const* argv;
  char* const* envp;
};

[[noreturn]] void ChildFail(int step) {
  int report[2] = {step, errno};
  (void)!write(kExecErrorFd, report, sizeof report);
  _exit(127);
}

// Runs on its own stack in a CLONE_VM | CLONE_VFORK child: memory is the parent's (whose
// thread waits until the exec), so nothing here writes anything but the child's own stack and
// kernel state. Signal handlers are the child's own copy; every signal is blocked on entry.
int RunChild(void* arg) {
  const ChildPlan& p = *static_cast<const ChildPlan*>(arg);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int target = 0; target <= kLastFd; ++target) {
    if (p.sources[target] < 0) {
      close(target);
    } else if (dup2(p.sources[target], target) < 0) {
      _exit(127);
    }
  }
  fcntl(kExecErrorFd, F_SETFD, FD_CLOEXEC);
  if (setpgid(0, 0) != 0) ChildFail(1);
  if (p.cgroup_procs_fd >= 0 && write(p.cgroup_procs_fd, "0", 1) != 1) ChildFail(2);
  if (g_child_nofile_soft > 0) {
    struct rlimit lim {};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
      lim.rlim_cur = g_child_nofile_soft;
      setrlimit(RLIMIT_NOFILE, &lim);
    }
  }
  if (p.rlimit_nproc > 0) {
    // The user namespace bwrap creates takes this as the limit at its creator's level (all of
    // the uid's processes): none, when mesad may lift it (CAP_SYS_RESOURCE); else mesad's own.
    // The sandbox's count is capped inside, by the shim's RLIMIT_NPROC.
    struct rlimit lim = {RLIM_INFINITY, RLIM_INFINITY};
    setrlimit(RLIMIT_NPROC, &lim);
  }
  // Drop to the caller: no supplementary groups, then gid, then uid (raw syscalls: this
  // process has one thread; glibc's wrappers would try to signal the parent's threads).
  if (syscall(SYS_setgroups, 0, nullptr) != 0) ChildFail(4);
  if (syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) ChildFail(5);
  if (syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) ChildFail(6);
  // Credentials changes clear the parent-death signal, so it comes after them.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(7);
  if (getppid() != p.parent) _exit(127);
  syscall(SYS_close_range, kFirstFreeFd, ~0u, 0u);
  execve(p.path, p.argv, p.envp);
  ChildFail(8);
}

const char* StepName(int step) {
  switch (step) {
    case 1: return "setpgid";
    case 2: return "joining the cgroup";
    case 4: return "setgroups";
    case 5: return "setresgid";
    case 6: return "setresuid";
    case 7: return "prctl(PR_SET_PDEATHSIG)";
    case 8: return "exec of bwrap";
    default: return "starting the sandbox";
  }
}

}  // namespace

bool IsReservedSandboxName(const std::string& name) {
  for (const char* r : kReserved) {
    if (name == r) return true;
  }
  return false;
}

std::vector<std::string> BwrapOptions(const SandboxSpec& spec) {
  std::vector<std::string> o = {"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                "--unshare-cgroup-try"};
  if (!spec.network) o.push_back("--unshare-net");
  if (spec.disable_userns) o.push_back("--disable-userns");
  o.insert(o.end(), {"--die-with-parent", "--new-session", "--hostname", "mesa",
                     "--json-status-fd", std::to_string(kBwrapStatusFd)});
  o.insert(o.end(), {"--ro-bind", "/usr", "/usr"});
  for (const char* dir : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string path = std::string("/") + dir;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      o.insert(o.end(), {"--symlink", std::string(target, static_cast<size_t>(n)), path});
    } else if (S_ISDIR(st.st_mode)) {
      o.insert(o.end(), {"--ro-bind", path, path});
    }
  }
  if (!spec.etc_dir.empty()) {
    o.insert(o.end(), {"--ro-bind", spec.etc_dir, "/etc"});
  } else {
    o.insert(o.end(), {"--perms", "0755", "--dir", "/etc"});
    for (const auto& f : SandboxEtcNames(spec.network)) {
      std::string path = "/etc/" + f;
      if (Exists(path)) o.insert(o.end(), {"--ro-bind", path, path});
    }
  }
  o.insert(o.end(), {"--perms", "0644", "--ro-bind-data", std::to_string(kPasswdFd), "/etc/passwd"});
  o.insert(o.end(), {"--perms", "0644", "--ro-bind-data", std::to_string(kGroupFd), "/etc/group"});
  o.insert(o.end(), {"--proc", "/proc", "--dev", "/dev"});
  auto tmpfs = [&](const char* perms, const char* where) {
    if (spec.tmpfs_max_bytes > 0) o.insert(o.end(), {"--size", std::to_string(spec.tmpfs_max_bytes)});
    o.insert(o.end(), {"--perms", perms, "--tmpfs", where});
  };
  tmpfs("01777", "/dev/shm");
  tmpfs("01777", "/tmp");
  tmpfs("0755", kSandboxHome);
  o.insert(o.end(), {"--perms", "0755", "--dir", "/var", "--symlink", "../tmp", "/var/tmp"});
  for (const auto& r : spec.repos) o.insert(o.end(), {r.read_only ? "--ro-bind" : "--bind", r.host_path, "/" + r.name});
  // The root (and the directories made in it) read-only; the tmpfs and binds keep their modes.
  o.insert(o.end(), {"--remount-ro", "/"});
  o.insert(o.end(), {"--chdir", spec.cwd.empty() ? "/" : spec.cwd});
  return o;
}

namespace {

bool PipePair(int* read_end, int* write_end) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  *read_end = High(p[0]);
  *write_end = High(p[1]);
  return *read_end >= 0 && *write_end >= 0;
}

// stdio pipes belong to the command's user, so that it may reopen them (/dev/stdout,
// /dev/stderr, /proc/self/fd/N); a root-owned 0600 pipe would answer EACCES.
bool UserPipe(const SandboxSpec& spec, int* read_end, int* write_end) {
  return PipePair(read_end, write_end) && fchown(*read_end, spec.uid, spec.gid) == 0;
}

std::string PasswdFile(const SandboxSpec& spec) {
  std::string passwd = "root:x:0:0:root:/root:/bin/bash\n";
  if (spec.uid != 0) passwd += spec.user_name + ":x:" + std::to_string(spec.uid) + ":" + std::to_string(spec.gid) + "::" + kSandboxHome + ":/bin/bash\n";
  passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  return passwd;
}

std::string GroupFile(const SandboxSpec& spec) {
  std::string group = "root:x:0:\n";
  if (spec.gid != 0) group += spec.group_name + ":x:" + std::to_string(spec.gid) + ":\n";
  group += "nogroup:x:65534:\n";
  return group;
}

// bwrap's options as one NUL-separated string; a warm sandbox starts in / (the shim chdirs).
std::string JoinedOptions(const SandboxSpec& spec, bool warm) {
  std::string args;
  SandboxSpec s = spec;
  if (warm) s.cwd = "/";
  for (const auto& a : BwrapOptions(s)) {
    args += a;
    args.push_back('\0');
  }
  return args;
}

}  // namespace

std::string WarmFingerprint(const SandboxSpec& spec, bool pids_cgroup) {
  std::string f = JoinedOptions(spec, true);
  f += "\n" + std::to_string(spec.uid) + ":" + std::to_string(spec.gid) + "\n" + PasswdFile(spec) + GroupFile(spec);
  f += "nproc=" + std::to_string(spec.rlimit_nproc) + " cgroup=" + (pids_cgroup ? "1" : "0") +
       " nofile=" + std::to_string(g_child_nofile_soft);
  return f;
}

absl::Status ActivateSandbox(SandboxProcess& sp, const SandboxSpec& spec) {
  if (sp.go_fd < 0) return rest::InternalError("not a warm sandbox");
  std::string message = (spec.cwd.empty() ? "/" : spec.cwd);
  message.push_back('\0');
  message += spec.command;
  message.push_back('\0');
  for (const auto& e : spec.env) {
    message += e;
    message.push_back('\0');
  }
  Fds fds;
  int data = fds.Add(DataFd("exec-go", message));
  message.assign(message.size(), '\0');  // the environment may hold secrets
  if (data < 0) return rest::InternalError(Errno("memfd"));
  int fd_list[2] = {data, -1};
  int nfds = 1;
  int stdin_write = -1;
  if (spec.has_stdin) {
    int stdin_read = -1;
    if (!UserPipe(spec, &stdin_read, &stdin_write)) {
      if (stdin_read >= 0) close(stdin_read);
      if (stdin_write >= 0) close(stdin_write);
      return rest::InternalError(Errno("pipe"));
    }
    fds.Add(stdin_read);
    fd_list[nfds++] = stdin_read;
  }
  char byte = 'g';
  iovec iov{&byte, 1};
  union {
    cmsghdr align;
    char buf[CMSG_SPACE(sizeof fd_list)];
  } control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<size_t>(nfds));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<size_t>(nfds));
  memcpy(CMSG_DATA(c), fd_list, sizeof(int) * static_cast<size_t>(nfds));
  ssize_t n;
  do {
    n = sendmsg(sp.go_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  int send_errno = errno;
  close(sp.go_fd);
  sp.go_fd = -1;
  if (n != 1) {
    if (stdin_write >= 0) close(stdin_write);
    errno = send_errno;
    return rest::InternalError(Errno("the warm sandbox is gone: sendmsg"));
  }
  sp.stdin_fd = stdin_write;
  return absl::OkStatus();
}

absl::StatusOr<SandboxProcess> StartSandbox(const SandboxTools& tools, const SandboxSpec& spec, bool warm) {
  Fds parent_side;  // closed on failure; released to the result on success
  Fds child_side;   // always closed in the parent after the fork

  std::string args = JoinedOptions(spec, warm);
  std::string passwd = PasswdFile(spec);
  std::string group = GroupFile(spec);

  int sources[kLastFd + 1];
  auto pipe_pair = PipePair;
  auto user_pipe = [&](int* read_end, int* write_end) -> bool { return UserPipe(spec, read_end, write_end); };
  SandboxProcess out;
  int w = -1;
  if (spec.has_stdin && !warm) {
    int r = -1;
    if (!user_pipe(&r, &w)) return rest::InternalError(Errno("pipe"));
    out.stdin_fd = parent_side.Add(w);
    sources[0] = child_side.Add(r);
  } else {
    sources[0] = child_side.Add(High(open("/dev/null", O_RDONLY | O_CLOEXEC)));
  }
  int r = -1;
  if (!user_pipe(&r, &w)) return rest::InternalError(Errno("pipe"));
  out.stdout_fd = parent_side.Add(r);
  sources[1] = child_side.Add(w);
  if (!user_pipe(&r, &w)) return rest::InternalError(Errno("pipe"));
  out.stderr_fd = parent_side.Add(r);
  sources[2] = child_side.Add(w);
  sources[kArgsFd] = child_side.Add(High(DataFd("bwrap-args", args)));
  if (!pipe_pair(&r, &w)) return rest::InternalError(Errno("pipe"));
  out.bwrap_status_fd = parent_side.Add(r);
  sources[kBwrapStatusFd] = child_side.Add(w);
  sources[kPasswdFd] = child_side.Add(High(DataFd("passwd", passwd)));
  sources[kGroupFd] = child_side.Add(High(DataFd("group", group)));
  sources[kShimFd] = child_side.Add(fcntl(tools.shim_fd, F_DUPFD_CLOEXEC, kFirstFreeFd));
  if (!pipe_pair(&r, &w)) return rest::InternalError(Errno("pipe"));
  out.shim_status_fd = parent_side.Add(r);
  sources[kShimStatusFd] = child_side.Add(w);
  int exec_error_read = -1;
  if (!pipe_pair(&exec_error_read, &w)) return rest::InternalError(Errno("pipe"));
  Fds error_pipe;
  error_pipe.Add(exec_error_read);
  sources[kExecErrorFd] = child_side.Add(w);
  sources[kGoFd] = -1;
  if (warm) {
    // SEQPACKET: the one go message arrives whole, with its descriptors.
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return rest::InternalError(Errno("socketpair"));
    out.go_fd = parent_side.Add(High(sv[0]));
    sources[kGoFd] = child_side.Add(High(sv[1]));
    if (sources[kGoFd] < kFirstFreeFd) return rest::InternalError(Errno("preparing the sandbox's descriptors"));
  }
  for (int i = 0; i <= kExecErrorFd; ++i) {
    if (sources[i] < kFirstFreeFd) return rest::InternalError(Errno("preparing the sandbox's descriptors"));
  }

  std::vector<std::string> argv_s = {tools.bwrap, "--args", std::to_string(kArgsFd), "--",
                                     "/proc/self/fd/" + std::to_string(kShimFd), std::to_string(kShimStatusFd),
                                     std::to_string(spec.rlimit_nproc)};
  if (warm) {
    argv_s.insert(argv_s.end(), {"--warm", std::to_string(kGoFd)});
  } else {
    argv_s.insert(argv_s.end(), {"/bin/bash", "bash", "-c", spec.command});
  }
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Warm: bwrap and the waiting shim get no environment; the command's comes with the go.
  std::vector<std::string> env_s = warm ? std::vector<std::string>() : spec.env;
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  ChildPlan plan{};
  for (int i = 0; i <= kLastFd; ++i) plan.sources[i] = sources[i];
  plan.cgroup_procs_fd = spec.cgroup_procs_fd;
  plan.uid = spec.uid;
  plan.gid = spec.gid;
  plan.rlimit_nproc = spec.rlimit_nproc;
  plan.parent = getpid();
  plan.path = tools.bwrap.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();

  // posix_spawn-style: clone(CLONE_VM | CLONE_VFORK) copies no page tables (mesad is large and
  // threaded; a fork costs milliseconds), runs no atfork handlers, and returns once the child
  // has exec'd or failed. All signals are blocked around it so no handler runs in the child.
  constexpr size_t kStackBytes = 256 * 1024;
  void* stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return rest::InternalError(Errno("mmap"));
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = clone(RunChild, static_cast<char*>(stack) + kStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, kStackBytes);
  if (pid < 0) return rest::InternalError("clone: " + std::string(strerror(clone_errno)));

  for (int& fd : child_side.fds) {
    close(fd);
    fd = -1;
  }
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = read(exec_error_read, report, sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "EXEC_UNAVAILABLE",
                            std::string("cannot start the sandbox: ") + StepName(report[0]) + " failed: " +
                                strerror(report[1]) + (report[0] == 8 ? " (" + tools.bwrap + ")" : ""));
  }
  out.pid = pid;
  out.uid = spec.uid;
  out.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  for (int& fd : parent_side.fds) fd = -1;  // owned by `out` now
  return out;
}

int64_t JsonStatusInt(const std::string& text, const std::string& key) {
  size_t at = text.find("\"" + key + "\"");
  if (at == std::string::npos) return -1;
  at = text.find(':', at);
  if (at == std::string::npos) return -1;
  ++at;
  while (at < text.size() && text[at] == ' ') ++at;
  size_t end = at;
  while (end < text.size() && (isdigit(static_cast<unsigned char>(text[end])) || text[end] == '-')) ++end;
  if (end == at || end == text.size()) return -1;  // the number may not be complete yet
  int64_t v = -1;
  return absl::SimpleAtoi(text.substr(at, end - at), &v) ? v : -1;
}

std::string ReadLinkText(const std::string& path) {
  char buf[128];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

bool IsSandboxInit(pid_t pid, pid_t bwrap, uid_t uid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  bool parent_ok = false, uid_ok = false;
  while (std::getline(status, line)) {
    if (line.rfind("PPid:", 0) == 0) {
      pid_t parent = static_cast<pid_t>(strtol(line.c_str() + 5, nullptr, 10));
      parent_ok = parent == bwrap || parent == getpid();
    }
    if (line.rfind("Uid:", 0) == 0) uid_ok = strtoul(line.c_str() + 4, nullptr, 10) == uid;
  }
  return parent_ok && uid_ok &&
         ReadLinkText("/proc/" + std::to_string(pid) + "/ns/pid") != ReadLinkText("/proc/self/ns/pid");
}

void KillUnusedSandbox(SandboxProcess& sp) {
  auto close_fd = [](int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  };
  // The go socket stays open until the end: on its end-of-file a waiting shim exits, and bwrap
  // exits as soon as its pid 2 has, before its pid 1 and without reaping it.
  auto close_all = [&] {
    for (int* fd : {&sp.go_fd, &sp.stdin_fd, &sp.stdout_fd, &sp.stderr_fd, &sp.shim_status_fd, &sp.bwrap_status_fd,
                    &sp.pidfd}) {
      close_fd(*fd);
    }
  };
  if (sp.pid <= 0) {
    close_all();
    return;
  }
  // bwrap's pid 1: bwrap reports it right after cloning it. Until then (a sandbox still being
  // set up) wait for the report or for bwrap's end, so that no pid 1 goes unreaped.
  std::string status;
  pid_t init = -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (init < 0 && sp.bwrap_status_fd >= 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd fds[2] = {{sp.bwrap_status_fd, POLLIN, 0}, {sp.pidfd, POLLIN, 0}};
    int n = poll(fds, sp.pidfd >= 0 ? 2 : 1, 50);
    if (n > 0 && fds[0].revents) {
      char buf[512];
      ssize_t r = read(sp.bwrap_status_fd, buf, sizeof buf);
      if (r <= 0) break;
      status.append(buf, static_cast<size_t>(r));
      init = static_cast<pid_t>(JsonStatusInt(status, "child-pid"));
    } else if (n > 0 && fds[1].revents) {
      break;  // bwrap is gone (and has reaped whatever it had started)
    }
  }
  // The pidfd pins the process before it is checked (see IsSandboxInit).
  int init_pidfd = -1;
  if (init > 0) {
    init_pidfd = static_cast<int>(syscall(SYS_pidfd_open, init, 0));
    if (init_pidfd >= 0 && !IsSandboxInit(init, sp.pid, sp.uid)) close_fd(init_pidfd);
  }
  // pid 1 is killed first, not left to follow bwrap: until bwrap has written its id maps, pid 1
  // waits for it on an eventfd with no death signal set yet, and would wait forever once bwrap
  // is gone. Killing pid 1 kills everything of the namespace; once bwrap is reaped pid 1 is
  // mesad's child (a subreaper): reap it through its pidfd.
  if (init_pidfd >= 0) syscall(SYS_pidfd_send_signal, init_pidfd, SIGKILL, nullptr, 0);
  kill(sp.pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(sp.pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (init_pidfd >= 0) {
    siginfo_t info{};
    while (waitid(static_cast<idtype_t>(kPidfdIdType), static_cast<id_t>(init_pidfd), &info, WEXITED | __WALL) < 0 &&
           errno == EINTR) {
    }
  }
  MESA_LOG(kDebug) << "exec: killed an unused sandbox: bwrap pid " << sp.pid << " (wait status " << wstatus
                   << "), its pid 1 " << init << (init_pidfd >= 0 ? " reaped" : " unknown or not ours");
  close_fd(init_pidfd);
  close_all();
  sp.pid = -1;
}

void RaiseNoFileLimit() {
  struct rlimit lim {};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  rlim_t original = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &lim) == 0) g_child_nofile_soft = original;
}

}  // namespace mesa::daemon
