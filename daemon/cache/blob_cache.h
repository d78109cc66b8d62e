// The content-addressed blob cache: one file per git blob sha under <dir>/blobs/ab/<sha>,
// LRU by bytes under a cap that is exceeded by at most one blob, shared by every mount that
// uses the same directory, surviving restarts. Every blob is verified against its sha when it
// is inserted, and an entry found on disk at start is verified again the first time it is
// used, so a corrupt entry is a miss. Concurrent fetches of one sha are deduplicated.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"

namespace mesa::daemon {

// An open, verified cache file. The descriptor stays valid after eviction.
class BlobFile {
 public:
  BlobFile(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~BlobFile();
  BlobFile(const BlobFile&) = delete;
  BlobFile& operator=(const BlobFile&) = delete;
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_;
  uint64_t size_;
};

struct BlobCacheStats {
  uint64_t bytes = 0;
  uint64_t entries = 0;
  uint64_t max_bytes = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t fetched_bytes = 0;  // bytes of misses, fetched from the backend
  uint64_t hit_bytes = 0;      // bytes of the blobs served from the cache
  uint64_t evictions = 0;
  uint64_t corrupt = 0;
};

class BlobCache {
 public:
  // Writes a blob's bytes through `sink`; returns OK when the whole body was delivered.
  using Fetcher = std::function<absl::Status(const std::function<bool(const char*, size_t)>& sink)>;

  static absl::StatusOr<std::shared_ptr<BlobCache>> Open(const std::string& dir, uint64_t max_bytes);

  // The blob `sha` of `size` bytes: from disk, or fetched once (concurrent callers wait for
  // the same fetch) and verified before it is inserted.
  absl::StatusOr<std::shared_ptr<BlobFile>> Get(const std::string& sha, uint64_t size, const Fetcher& fetch);

  // Only from disk; nullptr on a miss.
  std::shared_ptr<BlobFile> Peek(const std::string& sha);

  void SetMaxBytes(uint64_t max_bytes);
  BlobCacheStats Stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    uint64_t size = 0;
    bool verified = false;
    std::list<std::string>::iterator lru;
  };
  struct Inflight {
    bool done = false;
    absl::Status status;
    std::condition_variable cv;
  };

  BlobCache(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  absl::Status Scan();
  std::string PathFor(const std::string& sha) const;
  std::shared_ptr<BlobFile> OpenVerifiedLocked(const std::string& sha, std::unique_lock<std::mutex>& lock);
  absl::Status Fetch(const std::string& sha, uint64_t size, const Fetcher& fetch);
  void InsertLocked(const std::string& sha, uint64_t size);
  void EvictLocked(uint64_t incoming, const std::string& keep);

  std::string dir_;
  mutable std::mutex mu_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  std::list<std::string> lru_;  // front = most recently used
  std::unordered_map<std::string, Entry> entries_;
  std::map<std::string, std::shared_ptr<Inflight>> inflight_;
  BlobCacheStats stats_;
};

}  // namespace mesa::daemon
