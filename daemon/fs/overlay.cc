#include "daemon/fs/overlay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "rest/api_error.h"
#include "rest/encoding.h"

namespace mesa::daemon::fs {

namespace fsys = std::filesystem;

OverlayStore::~OverlayStore() {
  for (auto& [k, fd] : fds_) close(fd);
  for (auto& [k, fd] : journals_) close(fd);
}

absl::Status OverlayStore::Append(const std::string& repo, const nlohmann::json& record) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = journals_.find(repo);
  if (it == journals_.end()) {
    std::error_code ec;
    fsys::create_directories(dir_ + "/" + repo, ec);
    int fd = open((dir_ + "/" + repo + "/journal").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return rest::LocalError(absl::StatusCode::kResourceExhausted, "ENOSPC", "cannot open the overlay journal");
    it = journals_.emplace(repo, fd).first;
  }
  std::string line = record.dump() + "\n";
  if (write(it->second, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return rest::LocalError(absl::StatusCode::kResourceExhausted, "ENOSPC", "cannot append to the overlay journal");
  return absl::OkStatus();
}

absl::Status OverlayStore::SyncJournal(const std::string& repo) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = journals_.find(repo);
  if (it != journals_.end() && fsync(it->second) != 0)
    return rest::LocalError(absl::StatusCode::kUnavailable, "EIO", "fsync of the overlay journal failed");
  return absl::OkStatus();
}

std::vector<nlohmann::json> OverlayStore::LoadJournal(const std::string& repo) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir_ + "/" + repo + "/journal");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));  // a torn last line is skipped
  }
  return out;
}

absl::Status OverlayStore::Init() {
  std::error_code ec;
  fsys::create_directories(dir_, ec);
  if (ec) return rest::InternalError("cannot create overlay " + dir_ + ": " + ec.message());
  chmod(dir_.c_str(), 0700);
  return absl::OkStatus();
}

std::string OverlayStore::FilePath(const std::string& repo, const std::string& id) const {
  return dir_ + "/" + repo + "/files/" + id;
}

absl::StatusOr<std::string> OverlayStore::CreateFile(const std::string& repo) {
  std::error_code ec;
  fsys::create_directories(dir_ + "/" + repo + "/files", ec);
  std::string id = rest::RandomAlphanumeric(16);
  int fd = open(FilePath(repo, id).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return rest::LocalError(absl::StatusCode::kResourceExhausted, "ENOSPC", "cannot create an overlay file");
  std::lock_guard<std::mutex> lock(mu_);
  fds_[repo + "/" + id] = fd;
  return id;
}

absl::StatusOr<int> OverlayStore::Fd(const std::string& repo, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = fds_.find(repo + "/" + id);
  if (it != fds_.end()) return it->second;
  int fd = open(FilePath(repo, id).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return rest::LocalError(absl::StatusCode::kDataLoss, "EIO", "overlay file " + id + " is missing");
  fds_[repo + "/" + id] = fd;
  return fd;
}

void OverlayStore::RemoveFile(const std::string& repo, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = fds_.find(repo + "/" + id);
  if (it != fds_.end()) {
    close(it->second);
    fds_.erase(it);
  }
  unlink(FilePath(repo, id).c_str());
}

absl::Status OverlayStore::SyncFile(const std::string& repo, const std::string& id) {
  auto fd = Fd(repo, id);
  if (!fd.ok()) return fd.status();
  if (fsync(*fd) != 0) return rest::LocalError(absl::StatusCode::kUnavailable, "EIO", "fsync failed");
  return absl::OkStatus();
}

absl::Status OverlayStore::SaveState(const std::string& repo, const nlohmann::json& state, bool durable) {
  std::error_code ec;
  fsys::create_directories(dir_ + "/" + repo, ec);
  std::string path = dir_ + "/" + repo + "/state.json";
  std::string tmp = path + ".tmp";
  std::string data = state.dump();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return rest::LocalError(absl::StatusCode::kResourceExhausted, "ENOSPC", "cannot write overlay state");
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  if (ok && durable) ok = fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0)
    return rest::LocalError(absl::StatusCode::kResourceExhausted, "ENOSPC", "cannot write overlay state");
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = journals_.find(repo);
    if (it != journals_.end()) {
      if (ftruncate(it->second, 0) != 0) return rest::InternalError("cannot truncate the overlay journal");
    } else {
      truncate((dir_ + "/" + repo + "/journal").c_str(), 0);
    }
  }
  if (durable) {
    int dfd = open((dir_ + "/" + repo).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  return absl::OkStatus();
}

std::optional<nlohmann::json> OverlayStore::LoadState(const std::string& repo) {
  std::ifstream in(dir_ + "/" + repo + "/state.json");
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

void OverlayStore::Clear(const std::string& repo) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto j = journals_.find(repo);
    if (j != journals_.end()) {
      close(j->second);
      journals_.erase(j);
    }
    for (auto it = fds_.begin(); it != fds_.end();) {
      if (it->first.rfind(repo + "/", 0) == 0) {
        close(it->second);
        it = fds_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::error_code ec;
  fsys::remove_all(dir_ + "/" + repo, ec);
}

void OverlayStore::RemoveAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, fd] : fds_) close(fd);
    fds_.clear();
    for (auto& [k, fd] : journals_) close(fd);
    journals_.clear();
  }
  std::error_code ec;
  fsys::remove_all(dir_, ec);
}

}  // namespace mesa::daemon::fs
