#include "daemon/exec/etc_snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>

#include "daemon/log.h"

namespace mesa::daemon {
namespace {

namespace fsys = std::filesystem;

void AppendTimes(const std::string& path, std::string* out) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    *out += path + ":-;";
    return;
  }
  *out += path + ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" +
          std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + ";";
  if (!S_ISDIR(st.st_mode)) return;
  DIR* d = opendir(path.c_str());
  if (!d) return;
  std::vector<std::string> dirs;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      dirs.push_back(path + "/" + e->d_name);
  }
  closedir(d);
  for (const auto& sub : dirs) AppendTimes(sub, out);
}

// Copies `from` to `to`: symlinks as symlinks, world-readable files, world-readable and
// searchable directories (recursively); nothing else (no private keys, no sockets).
bool CopyPublic(const std::string& from, const std::string& to) {
  struct stat st {};
  if (lstat(from.c_str(), &st) != 0) return true;  // gone meanwhile
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(from.c_str(), target, sizeof target - 1);
    return n > 0 && symlink(std::string(target, static_cast<size_t>(n)).c_str(), to.c_str()) == 0;
  }
  if (S_ISDIR(st.st_mode)) {
    if ((st.st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH)) return true;
    if (mkdir(to.c_str(), 0755) != 0) return false;
    DIR* d = opendir(from.c_str());
    if (!d) return false;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
    }
    closedir(d);
    for (const auto& n : names) {
      if (!CopyPublic(from + "/" + n, to + "/" + n)) return false;
    }
    return true;
  }
  if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IROTH)) return true;
  std::error_code ec;
  fsys::copy_file(from, to, ec);
  if (ec) return false;
  chmod(to.c_str(), 0644 | (st.st_mode & 0111));
  return true;
}

}  // namespace

const std::vector<std::string>& SandboxEtcNames(bool network) {
  static const std::vector<std::string> base = {
      "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "alternatives", "localtime", "timezone",
      "hosts", "host.conf", "gai.conf", "services", "protocols", "networks", "os-release", "debian_version",
      "lsb-release", "mime.types", "magic", "magic.mime", "ssl", "ca-certificates", "ca-certificates.conf",
      "gitconfig", "inputrc", "locale.alias", "perl", "python3", "papersize"};
  static const std::vector<std::string> with_network = [] {
    auto v = base;
    v.push_back("resolv.conf");
    return v;
  }();
  return network ? with_network : base;
}

std::string EtcSnapshot::Signature() const {
  std::string sig;
  for (const auto& n : SandboxEtcNames(network_)) AppendTimes("/etc/" + n, &sig);
  return sig;
}

bool EtcSnapshot::Build(const std::string& dir) const {
  std::error_code ec;
  fsys::remove_all(dir, ec);
  if (mkdir(dir.c_str(), 0755) != 0) return false;
  for (const auto& n : SandboxEtcNames(network_)) {
    std::string from = "/etc/" + n;
    struct stat st {};
    // resolv.conf is often a symlink into /run: copy what it points to.
    if (n == "resolv.conf" && stat(from.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH)) {
      fsys::copy_file(from, dir + "/" + n, ec);
      if (ec) return false;
      chmod((dir + "/" + n).c_str(), 0644);
      continue;
    }
    if (!CopyPublic(from, dir + "/" + n)) return false;
  }
  // Mount points for the per-command passwd and group.
  for (const char* f : {"passwd", "group"}) {
    int fd = open((dir + "/" + f).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    close(fd);
  }
  return true;
}

std::string EtcSnapshot::Current() {
  std::lock_guard<std::mutex> lock(mu_);
  // Looking costs a walk of a few directories: at most once a second.
  auto now = std::chrono::steady_clock::now();
  if (!current_.empty() && now - checked_ < std::chrono::seconds(1)) return current_;
  checked_ = now;
  std::string sig = Signature();
  if (!current_.empty() && sig == signature_) return current_;
  if (generation_ == 0) {
    // Generations of an earlier daemon.
    std::error_code ec;
    for (const auto& e : fsys::directory_iterator(parent_, ec)) {
      if (e.path().filename().string().rfind("etc.", 0) == 0) fsys::remove_all(e.path(), ec);
    }
  }
  std::string dir = parent_ + "/etc." + std::to_string(++generation_);
  if (!Build(dir)) {
    MESA_LOG(kWarning) << "exec: cannot prepare the sandbox's /etc in " << dir << "; binding host files one by one";
    std::error_code ec;
    fsys::remove_all(dir, ec);
    return "";
  }
  // Older generations stay until the next start: running sandboxes may still show them.
  if (!current_.empty()) MESA_LOG(kInfo) << "exec: host /etc changed; the sandbox's /etc is now " << dir;
  current_ = dir;
  signature_ = sig;
  return current_;
}

}  // namespace mesa::daemon
