#include "daemon/exec/pids_limit.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "daemon/log.h"
#include "rest/api_error.h"

namespace mesa::daemon {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 0 or errno.
int WriteText(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno;
  close(fd);
  return err;
}

bool HasWord(const std::string& text, const std::string& word, char sep) {
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(std::string(1, sep) + " \n"), absl::SkipEmpty())) {
    if (w == word) return true;
  }
  return false;
}

struct CgroupMount {
  std::string point;
  std::string fstype;
  std::string super_options;
};

std::vector<CgroupMount> CgroupMounts() {
  std::vector<CgroupMount> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root point options [optional...] - fstype source super_options
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 3 >= f.size()) continue;
    if (f[dash + 1] != "cgroup" && f[dash + 1] != "cgroup2") continue;
    out.push_back({f[4], f[dash + 1], f[dash + 3]});
  }
  return out;
}

// controller list ("" for v2) -> path, from /proc/self/cgroup.
std::vector<std::pair<std::string, std::string>> OwnCgroups() {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    out.emplace_back(line.substr(a + 1, b - a - 1), line.substr(b + 1));
  }
  return out;
}

std::string Join(const std::string& mount_point, const std::string& path) {
  if (path.empty() || path == "/") return mount_point;
  return mount_point + path;
}

bool MakeDir(const std::string& path) { return mkdir(path.c_str(), 0755) == 0 || errno == EEXIST; }

// Kills and removes the run cgroups a previous daemon left under `base`.
void Sweep(const std::string& base, bool v2) {
  DIR* d = opendir(base.c_str());
  if (!d) return;
  std::vector<std::string> dirs;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') dirs.push_back(base + "/" + e->d_name);
  }
  closedir(d);
  for (const auto& dir : dirs) {
    MESA_LOG(kInfo) << "exec: removing the cgroup of an earlier run, " << dir;
    RunCgroup leftover(dir, -1, v2);
  }
}

// Removes the empty base cgroups beside `base` that share its prefix (up to the last '-'):
// those of daemons that stopped (a live daemon's base with runs in it is not empty).
void SweepSiblings(const std::string& base) {
  size_t slash = base.rfind('/');
  size_t dash = base.rfind('-');
  if (slash == std::string::npos || dash == std::string::npos || dash < slash) return;
  std::string parent = base.substr(0, slash);
  std::string prefix = base.substr(slash + 1, dash - slash);
  DIR* d = opendir(parent.c_str());
  if (!d) return;
  std::vector<std::string> dirs;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (e->d_type == DT_DIR && n.rfind(prefix, 0) == 0 && parent + "/" + n != base) dirs.push_back(parent + "/" + n);
  }
  closedir(d);
  for (const auto& dir : dirs) rmdir(dir.c_str());
}

std::unique_ptr<PidsLimiter> TryV2(const std::string& name, uint64_t pids_max, std::string* why);
std::unique_ptr<PidsLimiter> TryV1(const std::string& name, uint64_t pids_max, std::string* why);

}  // namespace

RunCgroup::~RunCgroup() {
  if (procs_fd_ >= 0) close(procs_fd_);
  for (int i = 0; i < 200; ++i) {
    KillAll();
    if (rmdir(path_.c_str()) == 0 || errno == ENOENT) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  MESA_LOG(kWarning) << "exec: cannot remove cgroup " << path_ << ": " << strerror(errno)
                     << " (removed at the next start)";
}

std::vector<pid_t> RunCgroup::Pids() const {
  std::vector<pid_t> out;
  std::istringstream in(ReadText(path_ + "/cgroup.procs"));
  std::string line;
  while (std::getline(in, line)) {
    int pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) out.push_back(pid);
  }
  return out;
}

void RunCgroup::KillAll() const {
  if (v2_ && WriteText(path_ + "/cgroup.kill", "1") == 0) return;
  for (int i = 0; i < 100; ++i) {
    auto pids = Pids();
    if (pids.empty()) return;
    for (pid_t p : pids) kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

namespace {

std::unique_ptr<PidsLimiter> TryV2(const std::string& name, uint64_t pids_max, std::string* why) {
  std::string mount;
  for (const auto& m : CgroupMounts()) {
    if (m.fstype == "cgroup2") {
      mount = m.point;
      break;
    }
  }
  std::string own_path;
  bool found = false;
  for (const auto& [controllers, path] : OwnCgroups()) {
    if (controllers.empty()) {
      own_path = path;
      found = true;
    }
  }
  if (mount.empty() || !found) {
    *why = "no cgroup v2 hierarchy";
    return nullptr;
  }
  std::string own = Join(mount, own_path);
  if (!HasWord(ReadText(own + "/cgroup.controllers"), "pids", ' ')) {
    *why = "cgroup v2 at " + own + " has no pids controller";
    return nullptr;
  }
  int err = WriteText(own + "/cgroup.subtree_control", "+pids");
  if (err == EBUSY) {
    // "No internal processes": mesad's cgroup may enable controllers for its children only
    // once mesad itself lives in a leaf.
    std::string leaf = own + "/daemon";
    if (!MakeDir(leaf) || WriteText(leaf + "/cgroup.procs", std::to_string(getpid())) != 0) {
      *why = "cannot move mesad into " + leaf + ": " + strerror(errno);
      return nullptr;
    }
    err = WriteText(own + "/cgroup.subtree_control", "+pids");
  }
  if (err != 0) {
    *why = "cannot enable pids in " + own + ": " + strerror(err);
    return nullptr;
  }
  std::string base = own + "/" + name;
  if (!MakeDir(base)) {
    *why = "cannot create " + base + ": " + strerror(errno);
    return nullptr;
  }
  Sweep(base, true);
  SweepSiblings(base);
  if ((err = WriteText(base + "/cgroup.subtree_control", "+pids")) != 0) {
    *why = "cannot enable pids in " + base + ": " + strerror(err);
    return nullptr;
  }
  return std::unique_ptr<PidsLimiter>(new PidsLimiter(base, true, pids_max));
}

std::unique_ptr<PidsLimiter> TryV1(const std::string& name, uint64_t pids_max, std::string* why) {
  std::string mount;
  for (const auto& m : CgroupMounts()) {
    if (m.fstype == "cgroup" && HasWord(m.super_options, "pids", ',')) {
      mount = m.point;
      break;
    }
  }
  std::string own_path;
  bool found = false;
  for (const auto& [controllers, path] : OwnCgroups()) {
    if (HasWord(controllers, "pids", ',')) {
      own_path = path;
      found = true;
    }
  }
  if (mount.empty() || !found) {
    *why = "no cgroup v1 pids hierarchy";
    return nullptr;
  }
  std::string base = Join(mount, own_path) + "/" + name;
  if (!MakeDir(base)) {
    *why = "cannot create " + base + ": " + strerror(errno);
    return nullptr;
  }
  Sweep(base, false);
  SweepSiblings(base);
  return std::unique_ptr<PidsLimiter>(new PidsLimiter(base, false, pids_max));
}

}  // namespace

std::unique_ptr<PidsLimiter> PidsLimiter::Create(const std::string& name, uint64_t pids_max, bool use_cgroups) {
  if (pids_max > 0 && use_cgroups && geteuid() == 0) {
    std::string why_v2, why_v1;
    if (auto v2 = TryV2(name, pids_max, &why_v2)) return v2;
    if (auto v1 = TryV1(name, pids_max, &why_v1)) return v1;
    MESA_LOG(kWarning) << "exec: no usable pids cgroup (" << why_v2 << "; " << why_v1
                       << "): the process limit falls back to RLIMIT_NPROC in the sandbox's user namespace";
  }
  return std::unique_ptr<PidsLimiter>(new PidsLimiter("", false, pids_max));
}

void PidsLimiter::RemoveBase() {
  if (!base_.empty()) rmdir(base_.c_str());
}

std::string PidsLimiter::Describe() const {
  if (pids_max_ == 0) return "none";
  if (base_.empty()) return "rlimit-nproc";
  return std::string(v2_ ? "cgroup-v2:" : "cgroup-v1:") + base_;
}

absl::StatusOr<std::unique_ptr<RunCgroup>> PidsLimiter::NewRun(const std::string& run_name) {
  if (base_.empty()) return std::unique_ptr<RunCgroup>();
  std::string dir = base_ + "/" + run_name;
  int made = mkdir(dir.c_str(), 0755);
  if (made != 0 && errno == ENOENT && MakeDir(base_)) {
    // Swept by another daemon while empty: make it again.
    if (v2_) WriteText(base_ + "/cgroup.subtree_control", "+pids");
    made = mkdir(dir.c_str(), 0755);
  }
  if (made != 0) return rest::InternalError("cannot create cgroup " + dir + ": " + strerror(errno));
  int procs = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  auto run = std::make_unique<RunCgroup>(dir, procs, v2_);
  if (procs < 0) return rest::InternalError("cannot open " + dir + "/cgroup.procs: " + strerror(errno));
  if (int err = WriteText(dir + "/pids.max", std::to_string(pids_max_)); err != 0)
    return rest::InternalError("cannot set " + dir + "/pids.max: " + strerror(err));
  return run;
}

}  // namespace mesa::daemon
