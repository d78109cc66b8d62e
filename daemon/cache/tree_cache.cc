#include "daemon/cache/tree_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/cache/git_hash.h"
#include "rest/api_error.h"
#include "rest/encoding.h"

namespace mesa::daemon {

namespace fs = std::filesystem;

namespace {

bool WriteAtomically(const std::string& path, const std::string& data) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::string tmp = path + ".tmp." + rest::RandomAlphanumeric(6);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// type \0 exec \0 sha \0 size \0 name \0 per entry: names may hold any byte but NUL and '/'.
std::string Serialize(const TreeListing& listing) {
  std::string out;
  for (const auto& e : listing) {
    out += std::to_string(static_cast<int>(e.type));
    out.push_back('\0');
    out += e.executable ? "1" : "0";
    out.push_back('\0');
    out += e.sha;
    out.push_back('\0');
    out += std::to_string(e.size);
    out.push_back('\0');
    out += e.name;
    out.push_back('\0');
  }
  return out;
}

std::optional<TreeListing> Parse(const std::string& data) {
  TreeListing out;
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] != '\0') continue;
    fields.push_back(data.substr(start, i - start));
    start = i + 1;
  }
  if (fields.size() % 5 != 0) return std::nullopt;
  for (size_t i = 0; i < fields.size(); i += 5) {
    TreeEntry e;
    int type = fields[i].empty() ? -1 : fields[i][0] - '0';
    if (type < 0 || type > 2) return std::nullopt;
    e.type = static_cast<TreeEntry::Type>(type);
    e.executable = fields[i + 1] == "1";
    e.sha = fields[i + 2];
    try {
      e.size = std::stoull(fields[i + 3]);
    } catch (...) {
      return std::nullopt;
    }
    e.name = fields[i + 4];
    out.push_back(std::move(e));
  }
  return out;
}

size_t Weight(const TreeListing& l) { return l.size() + 1; }

}  // namespace

std::string GitModeOf(const TreeEntry& e) {
  switch (e.type) {
    case TreeEntry::Type::kDir: return "40000";
    case TreeEntry::Type::kSymlink: return "120000";
    default: return e.executable ? "100755" : "100644";
  }
}

std::string TreeShaOf(const TreeListing& listing) {
  std::vector<GitTreeEntry> entries;
  entries.reserve(listing.size());
  for (const auto& e : listing) entries.push_back({e.name, GitModeOf(e), e.sha});
  return GitTreeSha(std::move(entries));
}

absl::StatusOr<std::shared_ptr<TreeCache>> TreeCache::Open(const std::string& dir, size_t max_entries) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "trees", ec);
  fs::create_directories(fs::path(dir) / "commits", ec);
  if (ec) return rest::InternalError("cannot create " + dir + ": " + ec.message());
  chmod(dir.c_str(), 0700);
  return std::shared_ptr<TreeCache>(new TreeCache(dir, max_entries));
}

void TreeCache::RememberLocked(const std::string& sha, std::shared_ptr<const TreeListing> listing) {
  if (map_.count(sha)) return;
  lru_.push_front(sha);
  entries_in_memory_ += Weight(*listing);
  map_[sha] = Slot{std::move(listing), lru_.begin()};
  while (entries_in_memory_ > max_entries_ && lru_.size() > 1) {
    auto it = map_.find(lru_.back());
    entries_in_memory_ -= Weight(*it->second.listing);
    map_.erase(it);
    lru_.pop_back();
  }
}

std::shared_ptr<const TreeListing> TreeCache::Get(const std::string& sha) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(sha);
    if (it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      ++hits_;
      return it->second.listing;
    }
  }
  if (sha.size() != 40) return nullptr;
  auto data = ReadFile(dir_ + "/trees/" + sha.substr(0, 2) + "/" + sha);
  std::optional<TreeListing> listing = data ? Parse(*data) : std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  if (!listing || TreeShaOf(*listing) != sha) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  auto shared = std::make_shared<const TreeListing>(std::move(*listing));
  RememberLocked(sha, shared);
  return shared;
}

bool TreeCache::Put(const std::string& sha, TreeListing listing) {
  if (TreeShaOf(listing) != sha) return false;
  WriteAtomically(dir_ + "/trees/" + sha.substr(0, 2) + "/" + sha, Serialize(listing));
  std::lock_guard<std::mutex> lock(mu_);
  RememberLocked(sha, std::make_shared<const TreeListing>(std::move(listing)));
  return true;
}

std::optional<std::string> TreeCache::CommitTree(const std::string& commit_oid) {
  if (commit_oid.size() != 40) return std::nullopt;
  auto data = ReadFile(dir_ + "/commits/" + commit_oid);
  if (!data || data->size() != 40) return std::nullopt;
  return data;
}

void TreeCache::PutCommitTree(const std::string& commit_oid, const std::string& tree_sha) {
  if (commit_oid.size() != 40 || tree_sha.size() != 40) return;
  WriteAtomically(dir_ + "/commits/" + commit_oid, tree_sha);
}

}  // namespace mesa::daemon
