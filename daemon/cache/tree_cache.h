// Directory listings by git tree sha (memory LRU backed by files under <dir>/trees), and the
// root tree of each commit (<dir>/commits). Listings are verified by recomputing their git
// tree id, on insert and on load, so a cached listing is exactly the tree the sha names.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace mesa::daemon {

struct TreeEntry {
  enum class Type { kFile, kDir, kSymlink };
  std::string name;
  Type type = Type::kFile;
  bool executable = false;
  std::string sha;
  uint64_t size = 0;  // files and symlinks
};

using TreeListing = std::vector<TreeEntry>;

std::string GitModeOf(const TreeEntry& e);
// The git tree id of a listing.
std::string TreeShaOf(const TreeListing& listing);

class TreeCache {
 public:
  static absl::StatusOr<std::shared_ptr<TreeCache>> Open(const std::string& dir, size_t max_entries_in_memory);

  // nullptr on a miss (memory, then disk).
  std::shared_ptr<const TreeListing> Get(const std::string& tree_sha);
  // Stores a listing after checking that it hashes to `tree_sha`; false (and nothing stored)
  // when it does not.
  bool Put(const std::string& tree_sha, TreeListing listing);

  std::optional<std::string> CommitTree(const std::string& commit_oid);
  void PutCommitTree(const std::string& commit_oid, const std::string& tree_sha);

  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  TreeCache(std::string dir, size_t max) : dir_(std::move(dir)), max_entries_(max) {}
  void RememberLocked(const std::string& sha, std::shared_ptr<const TreeListing> listing);

  std::string dir_;
  size_t max_entries_;
  std::mutex mu_;
  size_t entries_in_memory_ = 0;
  std::list<std::string> lru_;
  struct Slot {
    std::shared_ptr<const TreeListing> listing;
    std::list<std::string>::iterator lru;
  };
  std::unordered_map<std::string, Slot> map_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace mesa::daemon
