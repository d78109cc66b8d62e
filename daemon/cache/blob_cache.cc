#include "daemon/cache/blob_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "daemon/cache/git_hash.h"
#include "daemon/log.h"
#include "rest/api_error.h"
#include "rest/encoding.h"

namespace mesa::daemon {

namespace fs = std::filesystem;

namespace {

bool IsSha(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool HashFile(int fd, uint64_t size, const std::string& sha) {
  GitBlobHasher hasher(size);
  std::vector<char> buf(1 << 20);
  uint64_t off = 0;
  while (off < size) {
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n <= 0) return false;
    hasher.Update(buf.data(), static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
  return hasher.HexDigest() == sha;
}

}  // namespace

BlobFile::~BlobFile() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::shared_ptr<BlobCache>> BlobCache::Open(const std::string& dir, uint64_t max_bytes) {
  std::error_code ec;
  for (const char* sub : {"blobs", "tmp"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return rest::InternalError("cannot create cache dir " + dir + ": " + ec.message());
  }
  chmod(dir.c_str(), 0700);
  auto cache = std::shared_ptr<BlobCache>(new BlobCache(dir, max_bytes));
  if (auto st = cache->Scan(); !st.ok()) return st;
  return cache;
}

std::string BlobCache::PathFor(const std::string& sha) const {
  return dir_ + "/blobs/" + sha.substr(0, 2) + "/" + sha;
}

absl::Status BlobCache::Scan() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "tmp", ec)) fs::remove(e.path(), ec);
  struct Found {
    std::string sha;
    uint64_t size;
    int64_t mtime;
  };
  std::vector<Found> found;
  for (const auto& shard : fs::directory_iterator(fs::path(dir_) / "blobs", ec)) {
    if (!shard.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(shard.path(), ec)) {
      std::string sha = f.path().filename().string();
      struct stat st {};
      if (!IsSha(sha) || stat(f.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        fs::remove(f.path(), ec);
        continue;
      }
      found.push_back({sha, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec});
    }
  }
  // Most recently used first: mtime is touched when an entry is used.
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime > b.mtime; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : found) {
    lru_.push_back(f.sha);
    entries_[f.sha] = Entry{f.size, false, std::prev(lru_.end())};
    bytes_ += f.size;
  }
  EvictLocked(0, "");
  MESA_LOG(kInfo) << "blob cache " << dir_ << ": " << entries_.size() << " blobs, " << bytes_ << " bytes (cap "
                  << max_bytes_ << ")";
  return absl::OkStatus();
}

std::shared_ptr<BlobFile> BlobCache::OpenVerifiedLocked(const std::string& sha, std::unique_lock<std::mutex>& lock) {
  auto it = entries_.find(sha);
  if (it == entries_.end()) return nullptr;
  std::string path = PathFor(sha);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    bytes_ -= it->second.size;
    lru_.erase(it->second.lru);
    entries_.erase(it);
    return nullptr;
  }
  uint64_t size = it->second.size;
  if (!it->second.verified) {
    // Found on disk at start: check it once before trusting it.
    lock.unlock();
    bool ok = HashFile(fd, size, sha);
    futimens(fd, nullptr);
    lock.lock();
    it = entries_.find(sha);
    if (!ok || it == entries_.end()) {
      close(fd);
      if (!ok) {
        ++stats_.corrupt;
        MESA_LOG(kWarning) << "blob cache: " << sha << " is corrupt; dropping it";
        unlink(path.c_str());
        if (it != entries_.end()) {
          bytes_ -= it->second.size;
          lru_.erase(it->second.lru);
          entries_.erase(it);
        }
      }
      return nullptr;
    }
    it->second.verified = true;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return std::make_shared<BlobFile>(fd, size);
}

std::shared_ptr<BlobFile> BlobCache::Peek(const std::string& sha) {
  std::unique_lock<std::mutex> lock(mu_);
  auto f = OpenVerifiedLocked(sha, lock);
  if (f) {
    ++stats_.hits;
    stats_.hit_bytes += f->size();
  }
  return f;
}

absl::StatusOr<std::shared_ptr<BlobFile>> BlobCache::Get(const std::string& sha, uint64_t size, const Fetcher& fetch) {
  if (!IsSha(sha)) return rest::InternalError("bad blob sha " + sha);
  std::unique_lock<std::mutex> lock(mu_);
  for (int round = 0; round < 3; ++round) {
    if (auto f = OpenVerifiedLocked(sha, lock)) {
      ++stats_.hits;
      stats_.hit_bytes += f->size();
      return f;
    }
    auto in = inflight_.find(sha);
    if (in != inflight_.end()) {
      auto flight = in->second;
      flight->cv.wait(lock, [&] { return flight->done; });
      if (!flight->status.ok()) return flight->status;
      continue;
    }
    ++stats_.misses;
    auto flight = std::make_shared<Inflight>();
    inflight_[sha] = flight;
    lock.unlock();
    absl::Status st = Fetch(sha, size, fetch);
    lock.lock();
    flight->done = true;
    flight->status = st;
    flight->cv.notify_all();
    inflight_.erase(sha);
    if (!st.ok()) return st;
  }
  return rest::LocalError(absl::StatusCode::kUnavailable, "CACHE_RACE", "blob " + sha + " vanished from the cache");
}

absl::Status BlobCache::Fetch(const std::string& sha, uint64_t size, const Fetcher& fetch) {
  std::string tmp = dir_ + "/tmp/" + sha + "." + rest::RandomAlphanumeric(8);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return rest::InternalError("cannot create " + tmp + ": " + strerror(errno));
  GitBlobHasher hasher(size);
  uint64_t written = 0;
  bool io_error = false;
  absl::Status st = fetch([&](const char* data, size_t n) {
    if (written + n > size) return false;  // more bytes than the listing said: stop early
    hasher.Update(data, n);
    while (n > 0) {
      ssize_t w = write(fd, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        io_error = true;
        return false;
      }
      data += w;
      n -= static_cast<size_t>(w);
      written += static_cast<uint64_t>(w);
    }
    return true;
  });
  close(fd);
  auto fail = [&](absl::Status s) {
    unlink(tmp.c_str());
    return s;
  };
  if (io_error) return fail(rest::LocalError(absl::StatusCode::kResourceExhausted, "CACHE_WRITE_FAILED",
                                             "cannot write the blob cache: " + std::string(strerror(errno))));
  if (!st.ok()) return fail(st);
  if (written != size || hasher.HexDigest() != sha) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.corrupt;
    return fail(rest::LocalError(absl::StatusCode::kDataLoss, "BLOB_MISMATCH",
                                 "fetched bytes for " + sha + " do not match their sha (" + std::to_string(written) +
                                     " of " + std::to_string(size) + " bytes)"));
  }
  std::error_code ec;
  fs::create_directories(fs::path(PathFor(sha)).parent_path(), ec);
  if (rename(tmp.c_str(), PathFor(sha).c_str()) != 0) return fail(rest::InternalError("cannot store blob " + sha));
  std::lock_guard<std::mutex> lock(mu_);
  stats_.fetched_bytes += size;
  InsertLocked(sha, size);
  return absl::OkStatus();
}

void BlobCache::InsertLocked(const std::string& sha, uint64_t size) {
  if (entries_.count(sha)) return;
  EvictLocked(size, sha);
  lru_.push_front(sha);
  entries_[sha] = Entry{size, true, lru_.begin()};
  bytes_ += size;
}

void BlobCache::EvictLocked(uint64_t incoming, const std::string& keep) {
  // Make room first: afterwards the total exceeds the cap only when one blob alone does.
  while (bytes_ + incoming > max_bytes_ && !lru_.empty()) {
    std::string victim = lru_.back();
    if (victim == keep) break;
    auto it = entries_.find(victim);
    unlink(PathFor(victim).c_str());  // open descriptors keep their data
    bytes_ -= it->second.size;
    lru_.pop_back();
    entries_.erase(it);
    ++stats_.evictions;
  }
}

void BlobCache::SetMaxBytes(uint64_t max_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  max_bytes_ = max_bytes;
  EvictLocked(0, "");
}

BlobCacheStats BlobCache::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  BlobCacheStats s = stats_;
  s.bytes = bytes_;
  s.entries = entries_.size();
  s.max_bytes = max_bytes_;
  return s;
}

}  // namespace mesa::daemon
