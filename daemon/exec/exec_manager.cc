#include "daemon/exec/exec_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "daemon/exec/output_capture.h"
#include "daemon/log.h"
#include "daemon/rpc/mount_services.h"
#include "daemon/status_macros.h"
#include "rest/api_error.h"

namespace mesa::daemon {
namespace {

namespace dv1 = ::mesa::daemon::v1;

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kTickMs = 100;               // how often a run looks at its caller
constexpr int kDrainAfterExitMs = 2000;    // output still arriving after bwrap exited
constexpr size_t kMaxCommandBytes = 131071;  // the kernel's limit on one argument, less the NUL
constexpr size_t kMaxEnvBytes = 1 << 20;
constexpr size_t kDiagnosticBytes = 4096;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}


absl::Status Invalid(const std::string& message) {
  return rest::LocalError(absl::StatusCode::kInvalidArgument, "VALIDATION_ERROR", message);
}

// "/a//b/./c/../d" -> "/a/b/d"; empty when not absolute.
std::string NormalizePath(const std::string& path) {
  if (path.empty() || path.front() != '/') return "";
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(p);
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

bool ValidEnvName(const std::string& name) {
  if (name.empty() || name.size() > 1024) return false;
  return name.find('=') == std::string::npos && name.find('\0') == std::string::npos;
}

std::string UserName(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw {};
  passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found && found->pw_name &&
      !strpbrk(found->pw_name, ":\n")) {
    return found->pw_name;
  }
  return "user";
}

std::string GroupName(gid_t gid, const std::string& fallback) {
  std::vector<char> buf(16384);
  group gr {};
  group* found = nullptr;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found && found->gr_name &&
      !strpbrk(found->gr_name, ":\n")) {
    return found->gr_name;
  }
  return fallback;
}

// Sends `sig` to every process of the pid namespace whose pid 1 is `init_pid`, except it.
void SignalNamespace(pid_t init_pid, int sig) {
  std::string ns = ReadLinkText("/proc/" + std::to_string(init_pid) + "/ns/pid");
  if (ns.empty()) return;
  DIR* d = opendir("/proc");
  if (!d) return;
  while (dirent* e = readdir(d)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid == init_pid) continue;
    if (ReadLinkText("/proc/" + std::string(e->d_name) + "/ns/pid") == ns) kill(pid, sig);
  }
  closedir(d);
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// One command from start to reaped sandbox.
class RunLoop {
 public:
  RunLoop(const ExecOptions& options, SandboxProcess sp, uid_t uid, ExecSink* sink, int cancel_fd,
          const std::atomic<int>* reason, std::string stdin_data, int timeout_ms, RunCgroup* cgroup)
      : o_(options), sp_(sp), uid_(uid), sink_(sink), cancel_fd_(cancel_fd), reason_(reason),
        stdin_(std::move(stdin_data)), cgroup_(cgroup), out_(options.output_cap_bytes),
        err_(options.output_cap_bytes) {
    start_ = NowMs();
    deadline_ = start_ + timeout_ms;
    if (sp_.stdin_fd >= 0) {
      fcntl(sp_.stdin_fd, F_SETFL, fcntl(sp_.stdin_fd, F_GETFL) | O_NONBLOCK);
      if (stdin_.empty()) CloseFd(sp_.stdin_fd);
    }
  }
  ~RunLoop() {
    CloseFd(sp_.go_fd);
    CloseFd(sp_.stdin_fd);
    CloseFd(sp_.stdout_fd);
    CloseFd(sp_.stderr_fd);
    CloseFd(sp_.bwrap_status_fd);
    CloseFd(sp_.shim_status_fd);
    CloseFd(sp_.pidfd);
    CloseFd(init_pidfd_);
    if (!bwrap_exited_ && sp_.pid > 0) {
      kill(-sp_.pid, SIGKILL);
      kill(sp_.pid, SIGKILL);
      int status = 0;
      waitpid(sp_.pid, &status, 0);
    }
    ReapInit();
  }

  absl::StatusOr<dv1::ExecResult> Run();
  void set_cwd(const std::string& cwd) { cwd_ = cwd; }
  void set_warm(bool warm) { warm_ = warm; }

 private:
  void StartStopping(const std::string& reason);
  void KillTree();
  void ReadOutput(int& fd, bool is_stderr);
  void WriteStdin();
  void ReadStatus(int& fd, std::string& into);
  void CheckBwrap();
  void ReapInit();
  dv1::ExecResult Result();

  const ExecOptions& o_;
  SandboxProcess sp_;
  uid_t uid_;
  ExecSink* sink_;
  int cancel_fd_;
  const std::atomic<int>* reason_;
  std::string stdin_;
  size_t stdin_done_ = 0;
  RunCgroup* cgroup_;
  OutputCapture out_;
  OutputCapture err_;
  uint64_t out_total_ = 0;
  uint64_t err_total_ = 0;
  std::string stderr_tail_;  // the last kDiagnosticBytes, for error messages
  std::string bwrap_status_;
  std::string shim_status_;
  pid_t init_pid_ = -1;
  int init_pidfd_ = -1;
  bool init_gone_ = false;
  bool init_reaped_ = false;
  bool bwrap_exited_ = false;
  int bwrap_wait_status_ = 0;
  int64_t start_ = 0;
  int64_t deadline_ = 0;
  int64_t end_ = 0;
  std::string stop_reason_;  // non-empty once stopping
  int64_t kill_at_ = -1;
  bool killed_ = false;
  int64_t drain_until_ = -1;
  std::string cwd_;  // for the error of a warm sandbox's shim that could not enter it
  bool warm_ = false;
};

// bwrap's pid 1 outlives bwrap when the command ends on its own: it is then a child of mesad
// (a subreaper), and reaping it here leaves not even a zombie behind.
void RunLoop::ReapInit() {
  if (init_pid_ <= 0 || init_reaped_) return;
  init_reaped_ = true;
  for (int i = 0; i < 200; ++i) {
    pid_t r = waitpid(init_pid_, nullptr, WNOHANG | __WALL);
    if (r != 0) {
      MESA_LOG(kDebug) << "exec: bwrap pid " << sp_.pid << "'s pid 1 " << init_pid_ << (r > 0 ? " reaped" : " reaped by bwrap");
      return;  // reaped, or not ours (bwrap reaped it)
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  MESA_LOG(kDebug) << "exec: bwrap pid " << sp_.pid << "'s pid 1 " << init_pid_ << " still running after 200 ms";
}

void RunLoop::StartStopping(const std::string& reason) {
  stop_reason_ = reason;
  if (o_.kill_grace_ms > 0 && init_pid_ > 0 && !init_gone_) {
    SignalNamespace(init_pid_, SIGTERM);
    kill_at_ = NowMs() + o_.kill_grace_ms;
  } else {
    kill_at_ = NowMs();
  }
}

void RunLoop::KillTree() {
  killed_ = true;
  // pid 1 of the namespace: the kernel kills everything else in it before pid 1 is gone.
  if (init_pidfd_ >= 0 && !init_gone_) syscall(SYS_pidfd_send_signal, init_pidfd_, SIGKILL, nullptr, 0);
  // bwrap (still setting up, or its monitor): its pid 1 dies with it (--die-with-parent).
  if (!bwrap_exited_) kill(-sp_.pid, SIGKILL);
  if (cgroup_) cgroup_->KillAll();
}

void RunLoop::ReadOutput(int& fd, bool is_stderr) {
  char buf[kReadChunk];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    CloseFd(fd);
    return;
  }
  std::string_view data(buf, static_cast<size_t>(n));
  (is_stderr ? err_total_ : out_total_) += data.size();
  if (is_stderr) {
    stderr_tail_.append(data.substr(data.size() > kDiagnosticBytes ? data.size() - kDiagnosticBytes : 0));
    if (stderr_tail_.size() > 2 * kDiagnosticBytes) stderr_tail_.erase(0, stderr_tail_.size() - kDiagnosticBytes);
  }
  if (sink_->streaming()) {
    sink_->Output(is_stderr, data);
  } else {
    (is_stderr ? err_ : out_).Append(data);
  }
}

void RunLoop::WriteStdin() {
  while (stdin_done_ < stdin_.size()) {
    ssize_t n = write(sp_.stdin_fd, stdin_.data() + stdin_done_, std::min<size_t>(stdin_.size() - stdin_done_, 1 << 16));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break;  // EPIPE: the command does not read its stdin (any more)
    stdin_done_ += static_cast<size_t>(n);
  }
  CloseFd(sp_.stdin_fd);
  stdin_.clear();
  stdin_.shrink_to_fit();
}

void RunLoop::ReadStatus(int& fd, std::string& into) {
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    CloseFd(fd);
    return;
  }
  if (into.size() < 16384) into.append(buf, static_cast<size_t>(n));
}

void RunLoop::CheckBwrap() {
  if (bwrap_exited_) return;
  int status = 0;
  pid_t r = waitpid(sp_.pid, &status, WNOHANG);
  if (r == sp_.pid) {
    bwrap_exited_ = true;
    bwrap_wait_status_ = status;
    end_ = NowMs();
  }
}

absl::StatusOr<dv1::ExecResult> RunLoop::Run() {
  while (true) {
    int64_t now = NowMs();
    if (init_pid_ < 0 && !bwrap_status_.empty()) {
      int64_t pid = JsonStatusInt(bwrap_status_, "child-pid");
      if (pid > 0) {
        init_pid_ = static_cast<pid_t>(pid);
        init_pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, init_pid_, 0));
        // The status pipe is written by bwrap, which runs as the caller (who could make it
        // write anything): trust the pid only if it is bwrap's child, runs as the caller and
        // lives in a pid namespace other than mesad's. A stale (reaped, reused) pid fails too.
        if (init_pidfd_ >= 0 && !IsSandboxInit(init_pid_, sp_.pid, uid_)) CloseFd(init_pidfd_);
        init_gone_ = init_pidfd_ < 0;
      }
    }
    if (stop_reason_.empty() && !bwrap_exited_) {
      if (now >= deadline_) {
        StartStopping("timeout");
      } else if (int r = reason_->load(); r != 0) {
        StartStopping(r == 1 ? "unmount" : "shutdown");
      } else if (sink_->Gone()) {
        StartStopping("client");
      }
    }
    if (!stop_reason_.empty() && !killed_ && now >= kill_at_) KillTree();
    if (bwrap_exited_ && drain_until_ < 0) drain_until_ = now + kDrainAfterExitMs;
    bool outputs_open = sp_.stdout_fd >= 0 || sp_.stderr_fd >= 0;
    if (bwrap_exited_ && !outputs_open && (init_pidfd_ < 0 || init_gone_)) break;
    if (bwrap_exited_ && now >= drain_until_) {
      // Something still holds the pipes (or pid 1 lingers): end it, and stop waiting.
      if (!killed_) KillTree();
      MESA_LOG(kWarning) << "exec: sandbox of pid " << sp_.pid << " still had output open after it ended";
      break;
    }

    std::vector<pollfd> fds;
    enum Kind { kCancel, kBwrap, kInit, kOut, kErr, kIn, kReady, kBwrapStatus, kShimStatus };
    std::vector<Kind> kinds;
    auto add = [&](int fd, short events, Kind kind) {
      if (fd < 0) return;
      fds.push_back({fd, events, 0});
      kinds.push_back(kind);
    };
    add(cancel_fd_, POLLIN, kCancel);
    if (!bwrap_exited_) add(sp_.pidfd, POLLIN, kBwrap);
    if (!init_gone_) add(init_pidfd_, POLLIN, kInit);
    bool writable = sink_->Writable();
    if (writable) {
      add(sp_.stdout_fd, POLLIN, kOut);
      add(sp_.stderr_fd, POLLIN, kErr);
    } else {
      add(sink_->ready_fd(), POLLIN, kReady);
    }
    add(sp_.stdin_fd, POLLOUT, kIn);
    add(sp_.bwrap_status_fd, POLLIN, kBwrapStatus);
    add(sp_.shim_status_fd, POLLIN, kShimStatus);

    int64_t wait = kTickMs;
    if (stop_reason_.empty() && !bwrap_exited_) wait = std::min(wait, deadline_ - now);
    if (!stop_reason_.empty() && !killed_) wait = std::min(wait, kill_at_ - now);
    if (drain_until_ >= 0) wait = std::min(wait, drain_until_ - now);
    if (sp_.pidfd < 0 && !bwrap_exited_) wait = std::min<int64_t>(wait, 10);
    if (!writable && sink_->ready_fd() < 0) wait = std::min<int64_t>(wait, 10);
    int n = poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wait, 0)));
    if (n < 0 && errno != EINTR) return rest::InternalError(std::string("exec: poll: ") + strerror(errno));
    if (sp_.pidfd < 0) CheckBwrap();
    for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      switch (kinds[i]) {
        case kCancel: {
          uint64_t v;
          (void)!read(cancel_fd_, &v, sizeof v);
          break;
        }
        case kBwrap: CheckBwrap(); break;
        case kInit: init_gone_ = true; break;
        case kOut: ReadOutput(sp_.stdout_fd, false); break;
        case kErr: ReadOutput(sp_.stderr_fd, true); break;
        case kIn: WriteStdin(); break;
        case kReady: break;
        case kBwrapStatus: ReadStatus(sp_.bwrap_status_fd, bwrap_status_); break;
        case kShimStatus: ReadStatus(sp_.shim_status_fd, shim_status_); break;
      }
    }
  }
  ReapInit();
  // Status lines written just before the end.
  while (sp_.shim_status_fd >= 0) ReadStatus(sp_.shim_status_fd, shim_status_);
  while (sp_.bwrap_status_fd >= 0) ReadStatus(sp_.bwrap_status_fd, bwrap_status_);
  if (cgroup_) cgroup_->KillAll();

  if (shim_status_.rfind("chdir-error ", 0) == 0 && stop_reason_.empty()) {
    // A warm sandbox's shim could not enter the cwd (removed since it was checked).
    int err = atoi(shim_status_.c_str() + 12);
    return ErrnoStatus(err > 0 ? err : ENOENT, "cwd " + cwd_);
  }
  bool started = JsonStatusInt(bwrap_status_, "exit-code") >= 0 || !shim_status_.empty();
  if (!started && stop_reason_.empty()) {
    // bwrap could not build the sandbox; its reason is on stderr.
    std::string why = stderr_tail_;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    if (why.empty()) why = "bwrap ended with status " + std::to_string(bwrap_wait_status_);
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "EXEC_UNAVAILABLE",
                            "the sandbox could not be set up: " + why);
  }
  return Result();
}

dv1::ExecResult RunLoop::Result() {
  dv1::ExecResult r;
  int exit_code = -1;
  int sig = 0;
  std::string what;
  int value = 0;
  std::istringstream status(shim_status_);
  if (status >> what >> value) {
    if (what == "exit") {
      exit_code = value;
    } else if (what == "signal") {
      sig = value;
      exit_code = 128 + value;
    } else {
      // bash could not be started at all.
      std::string note = "mesad: cannot run /bin/bash: " + std::string(strerror(value)) + "\n";
      err_.Append(note);
      err_total_ += note.size();
      exit_code = 127;
    }
  } else if (int64_t code = JsonStatusInt(bwrap_status_, "exit-code"); code >= 0 && stop_reason_.empty()) {
    // The shim itself was killed (by the command): bwrap reports it shell-style.
    exit_code = static_cast<int>(code);
    if (code > 128 && code < 128 + 65) sig = static_cast<int>(code - 128);
  } else {
    exit_code = 128 + SIGKILL;
    sig = SIGKILL;
  }
  if (!stop_reason_.empty()) {
    r.set_cancelled(true);
    r.set_cancel_reason(stop_reason_);
    if (stop_reason_ == "timeout") {
      r.set_timed_out(true);
      exit_code = 124;
      if (sig == 0) sig = SIGKILL;
    }
  }
  r.set_exit_code(exit_code);
  r.set_signal(sig);
  r.set_duration_ms((end_ > 0 ? end_ : NowMs()) - start_);
  r.set_stdout_bytes(out_total_);
  r.set_stderr_bytes(err_total_);
  r.set_warm_sandbox(warm_);
  if (!sink_->streaming()) {
    r.set_truncated(out_.truncated() || err_.truncated());
    r.set_stdout(out_.Take());
    r.set_stderr(err_.Take());
  }
  return r;
}

}  // namespace

ExecOptions ExecOptionsFromConfig(const DaemonConfig& c) {
  ExecOptions o;
  o.bwrap = c.exec_bwrap;
  o.shim = c.exec_shim;
  o.timeout_default_ms = c.exec_timeout_default_ms;
  o.timeout_max_ms = c.exec_timeout_max_ms;
  o.output_cap_bytes = c.exec_output_cap_bytes;
  o.max_per_uid = c.exec_max_per_uid;
  o.max_total = c.exec_max_total;
  o.network = c.exec_network;
  o.pids_max = c.exec_pids_max;
  o.pids_cgroup = c.exec_pids_cgroup;
  o.kill_grace_ms = c.exec_kill_grace_ms;
  o.tmpfs_max_bytes = c.exec_tmpfs_max_bytes;
  o.warm_idle_ms = c.exec_warm_idle_ms;
  o.work_dir = c.runtime_dir + "/.exec";
  // FNV-1a of the state dir: two daemons never share (or sweep) each other's cgroups.
  uint32_t h = 2166136261u;
  for (unsigned char ch : c.state_dir) h = (h ^ ch) * 16777619u;
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", h);
  o.cgroup_name = std::string("mesad-exec-") + hex;
  return o;
}

ExecManager::ExecManager(ExecOptions options, MountManager* mounts) : options_(std::move(options)), mounts_(mounts) {}

ExecManager::~ExecManager() {
  Shutdown(0);
  warm_.reset();  // its thread is the parent of the sandboxes it started
  if (tools_.shim_fd >= 0) close(tools_.shim_fd);
}

void ExecManager::Start() {
  if (mounts_) mounts_->OnUnmount([this](const std::string& id) { CancelMount(id); });
  // A sandbox's pid 1 is orphaned when bwrap exits first; as a subreaper mesad inherits and
  // reaps it (RunLoop), instead of leaving the zombie to the system's init.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) MESA_LOG(kWarning) << "exec: PR_SET_CHILD_SUBREAPER: " << strerror(errno);
  if (access(options_.bwrap.c_str(), X_OK) != 0) {
    unavailable_ = "bwrap not found at " + options_.bwrap + " (config exec_bwrap; Debian package bubblewrap)";
  } else {
    std::string out;
    if (FILE* p = popen((options_.bwrap + " --version 2>/dev/null").c_str(), "r")) {
      char buf[128];
      while (fgets(buf, sizeof buf, p)) out += buf;
      pclose(p);
    }
    // "bubblewrap 0.8.0"
    size_t sp = out.find(' ');
    bwrap_version_ = sp == std::string::npos ? "" : out.substr(sp + 1);
    while (!bwrap_version_.empty() && isspace(static_cast<unsigned char>(bwrap_version_.back()))) bwrap_version_.pop_back();
    std::vector<int> v;
    for (absl::string_view part : absl::StrSplit(bwrap_version_, '.')) {
      int n = 0;
      v.push_back(absl::SimpleAtoi(part, &n) ? n : 0);
    }
    while (v.size() < 2) v.push_back(0);
    if (v[0] == 0 && v[1] < 5) unavailable_ = "bwrap " + bwrap_version_ + " is too old (0.5 or later is needed)";
    disable_userns_ = v[0] > 0 || v[1] >= 8;
  }
  tools_.bwrap = options_.bwrap;
  std::string shim = options_.shim;
  if (shim.empty()) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string exe = n > 0 ? std::string(self, static_cast<size_t>(n)) : "";
    shim = exe.substr(0, exe.rfind('/') + 1) + "mesad-exec-shim";
  }
  tools_.shim_fd = open(shim.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (tools_.shim_fd < 0 || fstat(tools_.shim_fd, &st) != 0 || !(st.st_mode & S_IXOTH)) {
    if (unavailable_.empty()) unavailable_ = "mesad-exec-shim not found (or not executable by all) at " + shim;
  }
  pids_ = PidsLimiter::Create(options_.cgroup_name, options_.pids_max, options_.pids_cgroup);
  if (!options_.work_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.work_dir, ec);
    chmod(options_.work_dir.c_str(), 0755);
    etc_ = std::make_unique<EtcSnapshot>(options_.work_dir, options_.network);
    etc_->Current();
  }
  if (unavailable_.empty()) {
    warm_ = std::make_unique<WarmPool>(
        [this](const SandboxSpec& spec) -> absl::StatusOr<std::unique_ptr<WarmSandbox>> {
          auto w = std::make_unique<WarmSandbox>();
          SandboxSpec s = spec;
          MESA_ASSIGN_OR_RETURN(w->cgroup, pids_->NewRun("warm-" + std::to_string(getpid()) + "-" + std::to_string(++warm_seq_)));
          if (w->cgroup) s.cgroup_procs_fd = w->cgroup->procs_fd();
          MESA_ASSIGN_OR_RETURN(w->sp, StartSandbox(tools_, s, /*warm=*/true));
          return w;
        },
        [this](uid_t uid, const std::string& mount_id) { return !mounts_ || mounts_->Get(uid, mount_id).ok(); },
        options_.warm_idle_ms);
  }
  if (!unavailable_.empty()) {
    MESA_LOG(kWarning) << "exec disabled: " << unavailable_;
  } else {
    MESA_LOG(kInfo) << "exec: " << Describe();
  }
}

std::string ExecManager::Describe() const {
  if (!unavailable_.empty()) return "unavailable (" + unavailable_ + ")";
  const ExecOptions o = options();
  return "bwrap " + bwrap_version_ + ", network " + (o.network ? "shared" : "none") + ", pids limit " +
         std::to_string(o.pids_max) + " via " + (pids_ ? pids_->Describe() : "none") + ", timeout max " +
         std::to_string(o.timeout_max_ms) + " ms, output cap " + std::to_string(o.output_cap_bytes) +
         " bytes per stream, " + std::to_string(o.max_per_uid) + " per uid / " +
         std::to_string(o.max_total) + " in all, " +
         (o.warm_idle_ms > 0 ? "warm sandboxes (idle " + std::to_string(o.warm_idle_ms) + " ms)" : "no warm sandboxes");
}

absl::StatusOr<std::shared_ptr<ExecManager::Running>> ExecManager::Register(uid_t uid, const std::string& mount_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return rest::LocalError(absl::StatusCode::kUnavailable, "SHUTTING_DOWN", "mesad is stopping");
  int mine = 0;
  for (const auto& [seq, r] : running_) mine += r->uid == uid;
  if (mine >= options_.max_per_uid) {
    return rest::LocalError(absl::StatusCode::kResourceExhausted, "EXEC_LIMIT",
                            "uid " + std::to_string(uid) + " already runs " + std::to_string(mine) +
                                " commands (exec_max_per_uid)");
  }
  if (static_cast<int>(running_.size()) >= options_.max_total) {
    return rest::LocalError(absl::StatusCode::kResourceExhausted, "EXEC_LIMIT",
                            "mesad already runs " + std::to_string(running_.size()) + " commands (exec_max_total)");
  }
  auto run = std::make_shared<Running>();
  run->seq = next_seq_++;
  run->uid = uid;
  run->mount_id = mount_id;
  run->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (run->cancel_fd < 0) return rest::InternalError(std::string("eventfd: ") + strerror(errno));
  running_[run->seq] = run;
  return run;
}

void ExecManager::Unregister(const std::shared_ptr<Running>& run) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(run->seq);
    CloseFd(run->cancel_fd);
  }
  changed_.notify_all();
}

void ExecManager::Cancel(Running& run, Reason reason) {
  int expected = kNone;
  run.reason.compare_exchange_strong(expected, reason);
  uint64_t one = 1;
  if (run.cancel_fd >= 0) (void)!write(run.cancel_fd, &one, sizeof one);
}

bool ExecManager::WaitUntil(std::function<bool()> done, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, std::chrono::milliseconds(std::max(timeout_ms, 0)), done);
}

void ExecManager::CancelMount(const std::string& mount_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [seq, r] : running_) {
      if (r->mount_id == mount_id) Cancel(*r, kUnmount);
    }
  }
  WaitUntil(
      [&] {
        for (const auto& [seq, r] : running_) {
          if (r->mount_id == mount_id) return false;
        }
        return true;
      },
      options().kill_grace_ms + 3000);
  // After the runs: none of them asks for another one now.
  if (warm_) warm_->CancelMount(mount_id);
}

void ExecManager::Shutdown(int timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
    for (auto& [seq, r] : running_) Cancel(*r, kShutdown);
  }
  if (warm_) warm_->Shutdown();
  if (WaitUntil([&] { return running_.empty(); }, timeout_ms) && pids_) pids_->RemoveBase();
}

ExecOptions ExecManager::options() const {
  std::lock_guard<std::mutex> lock(mu_);
  return options_;
}

void ExecManager::SetLimits(const ExecOptions& o) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.timeout_default_ms = o.timeout_default_ms;
  options_.timeout_max_ms = o.timeout_max_ms;
  options_.output_cap_bytes = o.output_cap_bytes;
  options_.max_per_uid = o.max_per_uid;
  options_.max_total = o.max_total;
  options_.kill_grace_ms = o.kill_grace_ms;
  options_.warm_idle_ms = o.warm_idle_ms;
  if (warm_) warm_->SetIdleMs(o.warm_idle_ms);
}

ExecManager::SandboxStats ExecManager::sandbox_stats() const {
  SandboxStats s;
  s.cold_starts = cold_starts_.load();
  if (warm_) {
    WarmPool::Stats w = warm_->stats();
    s.warm_waiting = w.waiting;
    s.warm_starts = w.taken;
    s.warm_expired = w.expired;
  }
  return s;
}

int ExecManager::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(running_.size());
}

absl::StatusOr<dv1::ExecResult> ExecManager::Run(const PeerCred& caller, const dv1::ExecRequest& req, ExecSink* sink) {
  if (!unavailable_.empty()) {
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "EXEC_UNAVAILABLE", "exec is unavailable: " + unavailable_);
  }
  // The request.
  if (req.command().empty()) return Invalid("command is empty");
  if (req.command().size() > kMaxCommandBytes)
    return Invalid("command is longer than " + std::to_string(kMaxCommandBytes) + " bytes (pass data on stdin instead)");
  if (req.command().find('\0') != std::string::npos) return Invalid("command contains a NUL byte");
  std::map<std::string, std::string> env = {{"PATH", kSandboxPath}, {"HOME", kSandboxHome}, {"LANG", "C.UTF-8"}};
  size_t env_bytes = 0;
  for (const auto& [k, v] : req.env()) {
    if (!ValidEnvName(k)) return Invalid("invalid environment variable name '" + k + "'");
    if (v.find('\0') != std::string::npos) return Invalid("environment variable " + k + " contains a NUL byte");
    if (v.size() > kMaxCommandBytes - k.size() - 1) return Invalid("environment variable " + k + " is too long");
    env_bytes += k.size() + v.size() + 2;
    env[k] = v;
  }
  if (env_bytes > kMaxEnvBytes) return Invalid("the environment is larger than 1 MiB");
  const ExecOptions o = options();  // this run's limits (a reload may change them)
  int timeout_ms = static_cast<int>(std::min<uint32_t>(req.timeout_ms(), INT_MAX));
  if (timeout_ms == 0) timeout_ms = std::min(o.timeout_default_ms, o.timeout_max_ms);
  if (timeout_ms > o.timeout_max_ms)
    return Invalid("timeout_ms " + std::to_string(req.timeout_ms()) + " is above the maximum " +
                   std::to_string(o.timeout_max_ms) + " (config exec_timeout_max_ms)");
  std::string cwd = req.cwd().empty() ? "/" : NormalizePath(req.cwd());
  if (cwd.empty()) return Invalid("cwd must be an absolute path inside the sandbox, like /my-repo/src");

  // The mount, and the cwd inside it.
  MESA_ASSIGN_OR_RETURN(dv1::MountInfo info, mounts_->Get(caller.uid, req.mount()));
  SandboxSpec spec;
  for (const auto& r : info.repos()) {
    if (IsReservedSandboxName(r.name())) {
      return rest::LocalError(absl::StatusCode::kFailedPrecondition, "RESERVED_REPO_NAME",
                              "repo '" + r.name() + "' would hide /" + r.name() + " of the sandbox; mount it under another name to run commands");
    }
    spec.repos.push_back({r.name(), info.path() + "/" + r.name(), r.mode() == "ro"});
  }
  std::string first = cwd == "/" ? "" : cwd.substr(1, cwd.find('/', 1) - 1);
  bool in_repo = std::any_of(spec.repos.begin(), spec.repos.end(), [&](const RepoBind& b) { return b.name == first; });
  if (in_repo) {
    MESA_ASSIGN_OR_RETURN(auto fs, mounts_->Filesystem(caller.uid, info.id()));
    auto ino = fs->Resolve(cwd);
    if (!ino.ok()) return ErrnoStatus(ino.err(), "cwd " + cwd + (ino.message().empty() ? "" : ": " + ino.message()));
    auto attr = fs->GetAttr(*ino);
    if (!attr.ok()) return ErrnoStatus(attr.err(), "cwd " + cwd);
    if (!S_ISDIR(attr->mode) && !S_ISLNK(attr->mode)) return ErrnoStatus(ENOTDIR, "cwd " + cwd + " is not a directory");
  } else if (cwd != "/" && cwd != "/tmp" && cwd != kSandboxHome) {
    // The read-only system view: a directory of the host's /usr (or /bin, /lib... into it).
    struct stat st {};
    bool system = first == "usr" || first == "bin" || first == "sbin" || first.rfind("lib", 0) == 0;
    if (!system || stat(cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return ErrnoStatus(ENOENT, "cwd " + cwd + " is not a directory of the sandbox (repos are at /<repo>)");
  }

  MESA_ASSIGN_OR_RETURN(auto run, Register(caller.uid, info.id()));
  struct Unregisterer {
    ExecManager* m;
    std::shared_ptr<Running> r;
    ~Unregisterer() { m->Unregister(r); }
  } unregister{this, run};

  spec.uid = caller.uid;
  spec.gid = caller.gid;
  spec.user_name = UserName(caller.uid);
  spec.group_name = GroupName(caller.gid, spec.user_name);
  spec.command = req.command();
  for (const auto& [k, v] : env) spec.env.push_back(k + "=" + v);
  spec.cwd = cwd;
  spec.network = o.network;
  spec.disable_userns = disable_userns_;
  if (etc_) spec.etc_dir = etc_->Current();
  spec.has_stdin = req.has_stdin();
  spec.tmpfs_max_bytes = o.tmpfs_max_bytes;
  const bool pids_cgroup = pids_->uses_cgroups();
  if (!pids_cgroup) spec.rlimit_nproc = o.pids_max;
  if (run->reason.load() != kNone) {
    return rest::LocalError(absl::StatusCode::kUnavailable, run->reason.load() == kUnmount ? "MOUNT_NOT_FOUND" : "SHUTTING_DOWN",
                            "the mount is being unmounted or mesad is stopping");
  }

  // A warm sandbox of this uid and mount, made for exactly this sandbox, else a cold start.
  const bool use_warm = warm_ && o.warm_idle_ms > 0;
  const std::string fingerprint = use_warm ? WarmFingerprint(spec, pids_cgroup) : "";
  SandboxProcess sp;
  std::unique_ptr<RunCgroup> cgroup;
  bool warm = false;
  if (use_warm) {
    if (auto w = warm_->Take(caller.uid, info.id(), fingerprint)) {
      if (auto st = ActivateSandbox(w->sp, spec); st.ok()) {
        sp = w->sp;
        w->sp = SandboxProcess();
        cgroup = std::move(w->cgroup);
        warm = true;
      } else {
        MESA_LOG(kWarning) << "exec: " << st.message() << "; starting a new sandbox";
        WarmPool::Kill(std::move(w));
      }
    }
  }
  if (!warm) {
    MESA_ASSIGN_OR_RETURN(cgroup, pids_->NewRun("run-" + std::to_string(getpid()) + "-" + std::to_string(run->seq)));
    if (cgroup) spec.cgroup_procs_fd = cgroup->procs_fd();
    MESA_ASSIGN_OR_RETURN(sp, StartSandbox(tools_, spec));
    ++cold_starts_;
  }
  // The next command of this uid and mount finds its sandbox ready.
  if (use_warm) warm_->Prepare(spec, info.id(), fingerprint);
  MESA_LOG(kDebug) << "exec: uid " << caller.uid << " in " << info.id() << " (bwrap pid " << sp.pid
                   << (warm ? ", warm" : ", cold") << "): " << req.command().substr(0, 200);
  RunLoop loop(o, sp, caller.uid, sink, run->cancel_fd, &run->reason, req.stdin(), timeout_ms, cgroup.get());
  loop.set_cwd(cwd);
  loop.set_warm(warm);
  auto result = loop.Run();
  if (result.ok()) {
    MESA_LOG(kDebug) << "exec: bwrap pid " << sp.pid << " ended: exit " << result->exit_code() << ", signal "
                     << result->signal() << (result->cancelled() ? ", stopped (" + result->cancel_reason() + ")" : "")
                     << ", " << result->duration_ms() << " ms";
  }
  // After a long command the one made at its start may have expired: make it again (a no-op
  // while it waits). Not when the mount goes away or mesad stops.
  if (use_warm && run->reason.load() == kNone) warm_->Prepare(spec, info.id(), fingerprint);
  return result;
}

}  // namespace mesa::daemon
