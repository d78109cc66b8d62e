#include "daemon/fs/mount_fs.h"

#include <unistd.h>

#include <cerrno>
#include <deque>

#include "daemon/log.h"
#include "rest/api_error.h"
#include "rest/change_id.h"

namespace mesa::daemon::fs {

namespace {

constexpr const char* kEmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

TreeEntry EntryFrom(const mesa::v1::ContentEntry& e) {
  TreeEntry t;
  t.name = e.name();
  t.sha = e.sha();
  t.size = static_cast<uint64_t>(e.size());
  if (e.type() == "dir") t.type = TreeEntry::Type::kDir;
  else if (e.type() == "symlink") t.type = TreeEntry::Type::kSymlink;
  else t.type = TreeEntry::Type::kFile;
  t.executable = e.mode() == "100755";
  return t;
}

}  // namespace

int ErrnoFor(const absl::Status& status) {
  rest::ApiErrorInfo info = rest::ErrorInfoFromStatus(status);
  if (info.http_status == 404) return ENOENT;
  if (info.http_status == 401 || info.http_status == 403) return EACCES;
  return EIO;
}

MountFs::MountFs(MountFsOptions options) : options_(std::move(options)) {}

absl::Status MountFs::Init() {
  std::lock_guard<std::mutex> guard(mu_);  // nothing else runs yet; keeps the analysis simple
  nodes_.clear();
  Node root;
  root.ino = kRootIno;
  root.kind = Kind::kRoot;
  root.listed = true;
  nodes_.push_back(root);
  for (size_t i = 0; i < options_.repos.size(); ++i) {
    const RepoSpec& spec = options_.repos[i];
    absl::StatusOr<Revision> rev = spec.change_id.empty()
                                       ? options_.backend->ResolveBookmark(spec.name, spec.bookmark)
                                       : options_.backend->ResolveChange(spec.name, spec.change_id);
    if (!rev.ok()) return rev.status();
    RepoStatus status{spec, *rev, ""};
    if (rev->commit_oid.empty()) {
      status.root_tree = kEmptyTree;
      options_.trees->Put(kEmptyTree, {});
    } else if (auto cached = options_.trees->CommitTree(rev->commit_oid)) {
      status.root_tree = *cached;
    } else {
      auto listing = options_.backend->ListDir(spec.name, rev->change_id, "", 2);
      if (!listing.ok()) return listing.status();
      status.root_tree = listing->sha();
      options_.trees->PutCommitTree(rev->commit_oid, listing->sha());
      ++stats_.listings_fetched;
      // Keep what we fetched: the root and its subdirectories' listings.
      std::map<std::string, TreeListing> by_parent;
      for (const auto& e : listing->entries()) by_parent[ParentOf(e.path())].push_back(EntryFrom(e));
      options_.trees->Put(listing->sha(), by_parent[""]);
      for (const auto& e : listing->entries()) {
        if (e.type() == "dir" && e.path().find('/') == std::string::npos) options_.trees->Put(e.sha(), by_parent[e.path()]);
      }
    }
    repos_.push_back(status);
    Node repo_root;
    repo_root.ino = nodes_.size() + 1;
    repo_root.parent = kRootIno;
    repo_root.name = spec.name;
    repo_root.kind = Kind::kDir;
    repo_root.repo = static_cast<int>(i);
    repo_root.sha = status.root_tree;
    nodes_.push_back(repo_root);
    nodes_[0].children[spec.name] = repo_root.ino;
  }
  return absl::OkStatus();
}

bool MountFs::ReadOnly(uint64_t ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size()) return true;
  const Node& n = nodes_[ino - 1];
  return n.repo < 0 || repos_[static_cast<size_t>(n.repo)].spec.read_only;
}

Attr MountFs::AttrOf(const Node& n) const {
  Attr a;
  a.ino = n.ino;
  a.uid = options_.uid;
  a.gid = options_.gid;
  a.mtime_s = n.repo < 0 ? options_.mount_time_s : repos_[static_cast<size_t>(n.repo)].revision.time_s;
  switch (n.kind) {
    case Kind::kRoot:
      // Owner-only: every path of the mount goes through here, so with default_permissions
      // the kernel refuses other users even for cached entries.
      a.mode = S_IFDIR | 0700;
      a.nlink = 2;
      a.size = 4096;
      break;
    case Kind::kDir:
      a.mode = S_IFDIR | 0755;
      a.nlink = 2;
      a.size = 4096;
      break;
    case Kind::kFile:
      a.mode = S_IFREG | (n.executable ? 0755 : 0644);
      a.size = n.size;
      break;
    case Kind::kSymlink:
      a.mode = S_IFLNK | 0777;
      a.size = n.size;
      break;
  }
  return a;
}

uint64_t MountFs::ChildInoLocked(uint64_t parent, const TreeEntry& entry) {
  auto& children = nodes_[parent - 1].children;
  auto it = children.find(entry.name);
  if (it != children.end()) return it->second;
  const Node& p = nodes_[parent - 1];
  Node n;
  n.ino = nodes_.size() + 1;
  n.parent = parent;
  n.name = entry.name;
  n.repo = p.repo;
  n.path = p.path.empty() ? entry.name : p.path + "/" + entry.name;
  n.sha = entry.sha;
  n.size = entry.size;
  n.executable = entry.executable;
  n.kind = entry.type == TreeEntry::Type::kDir ? Kind::kDir
           : entry.type == TreeEntry::Type::kSymlink ? Kind::kSymlink : Kind::kFile;
  nodes_.push_back(std::move(n));
  uint64_t ino = nodes_.size();
  nodes_[parent - 1].children[entry.name] = ino;
  return ino;
}

void MountFs::AdoptListing(uint64_t ino, const TreeListing& listing) {
  for (const auto& e : listing) ChildInoLocked(ino, e);
  nodes_[ino - 1].listed = true;
}

absl::Status MountFs::FetchListing(const Node& dir) {
  const RepoStatus& repo = repos_[static_cast<size_t>(dir.repo)];
  auto content = options_.backend->ListDir(repo.spec.name, repo.revision.change_id, dir.path, 2);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.listings_fetched;
    if (!content.ok()) ++stats_.backend_errors;
  }
  if (!content.ok()) return content.status();
  if (content->type() != "dir" || content->sha() != dir.sha) {
    // The change moved on the server since this mount resolved it: its trees are no longer
    // reachable through the content API, so this view cannot be completed.
    MESA_LOG(kWarning) << "mount of " << repo.spec.name << ": /" << dir.path << " is " << content->sha()
                       << " on the server, expected " << dir.sha << " (the change was rewritten)";
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "STALE_VIEW", "the mounted change was rewritten");
  }
  std::map<std::string, TreeListing> by_parent;
  for (const auto& e : content->entries()) by_parent[ParentOf(e.path())].push_back(EntryFrom(e));
  if (!options_.trees->Put(dir.sha, by_parent[dir.path]))
    return rest::LocalError(absl::StatusCode::kDataLoss, "TREE_MISMATCH", "listing of /" + dir.path + " does not match its sha");
  for (const auto& e : content->entries()) {
    if (e.type() == "dir" && ParentOf(e.path()) == dir.path) options_.trees->Put(e.sha(), by_parent[e.path()]);
  }
  return absl::OkStatus();
}

Result<bool> MountFs::EnsureListed(uint64_t ino) {
  std::unique_lock<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size()) return Result<bool>::Error(ENOENT);
  if (nodes_[ino - 1].kind == Kind::kFile || nodes_[ino - 1].kind == Kind::kSymlink) return Result<bool>::Error(ENOTDIR);
  listed_cv_.wait(lock, [&] { return !nodes_[ino - 1].loading; });
  if (nodes_[ino - 1].listed) return true;
  nodes_[ino - 1].loading = true;
  Node snapshot = nodes_[ino - 1];
  lock.unlock();
  auto listing = options_.trees->Get(snapshot.sha);
  absl::Status status;
  if (!listing) {
    status = FetchListing(snapshot);
    if (status.ok()) listing = options_.trees->Get(snapshot.sha);
  }
  lock.lock();
  nodes_[ino - 1].loading = false;
  if (listing) AdoptListing(ino, *listing);
  listed_cv_.notify_all();
  if (!listing) {
    MESA_LOG(kWarning) << "listing /" << snapshot.path << " failed: " << status.message();
    return Result<bool>::Error(status.ok() ? EIO : ErrnoFor(status), std::string(status.message()));
  }
  return true;
}

Result<Attr> MountFs::Lookup(uint64_t parent, const std::string& name) {
  auto listed = EnsureListed(parent);
  if (!listed.ok()) return Result<Attr>::Error(listed.err(), listed.message());
  std::lock_guard<std::mutex> lock(mu_);
  const auto& children = nodes_[parent - 1].children;
  auto it = children.find(name);
  if (it == children.end()) return Result<Attr>::Error(ENOENT);
  return AttrOf(nodes_[it->second - 1]);
}

Result<Attr> MountFs::GetAttr(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size()) return Result<Attr>::Error(ENOENT);
  return AttrOf(nodes_[ino - 1]);
}

Result<std::vector<DirEntry>> MountFs::ReadDir(uint64_t ino) {
  auto listed = EnsureListed(ino);
  if (!listed.ok()) return Result<std::vector<DirEntry>>::Error(listed.err(), listed.message());
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DirEntry> out;
  const Node& dir = nodes_[ino - 1];
  out.reserve(dir.children.size());
  if (dir.kind == Kind::kRoot) {
    // Repos in mount order, not by name.
    for (const auto& r : repos_) {
      uint64_t child = dir.children.at(r.spec.name);
      out.push_back({r.spec.name, AttrOf(nodes_[child - 1])});
    }
    return out;
  }
  // Tree order, as git (and the listing) has it.
  auto listing = options_.trees->Get(dir.sha);
  if (listing) {
    for (const auto& e : *listing) out.push_back({e.name, AttrOf(nodes_[dir.children.at(e.name) - 1])});
  } else {
    for (const auto& [name, child] : dir.children) out.push_back({name, AttrOf(nodes_[child - 1])});
  }
  return out;
}

Result<std::shared_ptr<BlobFile>> MountFs::OpenBlob(const Node& n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_files_.find(n.ino);
    if (it != open_files_.end()) return it->second;
  }
  const RepoStatus& repo = repos_[static_cast<size_t>(n.repo)];
  Backend* backend = options_.backend;
  auto file = options_.blobs->Get(n.sha, n.size, [&](const std::function<bool(const char*, size_t)>& sink) {
    return backend->FetchFile(repo.spec.name, repo.revision.change_id, n.path, sink);
  });
  std::lock_guard<std::mutex> lock(mu_);
  if (!file.ok()) {
    ++stats_.backend_errors;
    MESA_LOG(kWarning) << "reading /" << repo.spec.name << "/" << n.path << " failed: " << file.status().message();
    return Result<std::shared_ptr<BlobFile>>::Error(ErrnoFor(file.status()), std::string(file.status().message()));
  }
  ++stats_.blobs_opened;
  if (open_files_.size() >= 1024) open_files_.clear();
  open_files_[n.ino] = *file;
  return *file;
}

Result<std::shared_ptr<BlobFile>> MountFs::Open(uint64_t ino) {
  Node n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ino == 0 || ino > nodes_.size()) return Result<std::shared_ptr<BlobFile>>::Error(ENOENT);
    n = nodes_[ino - 1];
  }
  if (n.kind == Kind::kDir || n.kind == Kind::kRoot) return Result<std::shared_ptr<BlobFile>>::Error(EISDIR);
  return OpenBlob(n);
}

Result<std::string> MountFs::ReadLink(uint64_t ino) {
  Node n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ino == 0 || ino > nodes_.size()) return Result<std::string>::Error(ENOENT);
    n = nodes_[ino - 1];
  }
  if (n.kind != Kind::kSymlink) return Result<std::string>::Error(EINVAL);
  auto file = OpenBlob(n);
  if (!file.ok()) return Result<std::string>::Error(file.err(), file.message());
  std::string target((*file)->size(), '\0');
  if (pread((*file)->fd(), target.data(), target.size(), 0) != static_cast<ssize_t>(target.size()))
    return Result<std::string>::Error(EIO);
  return target;
}

Result<uint64_t> MountFs::Resolve(const std::string& path) {
  uint64_t ino = kRootIno;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string comp = path.substr(start, end - start);
    start = end + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      std::lock_guard<std::mutex> lock(mu_);
      if (ino != kRootIno) ino = nodes_[ino - 1].parent;
      continue;
    }
    auto attr = Lookup(ino, comp);
    if (!attr.ok()) return Result<uint64_t>::Error(attr.err(), attr.message());
    ino = attr->ino;
  }
  return ino;
}

std::vector<RepoStatus> MountFs::Repos() const {
  std::lock_guard<std::mutex> lock(mu_);
  return repos_;
}

MountFsStats MountFs::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace mesa::daemon::fs
