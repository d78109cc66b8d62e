#include "daemon/fs/mount_fs.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <limits>

#include "absl/strings/str_join.h"
#include "daemon/log.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/time_format.h"

namespace mesa::daemon::fs {

namespace {

constexpr const char* kEmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string Join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

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

int64_t NowMs() { return rest::NowUnixMillis(); }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool IsGitDir(const std::string& name) {
  if (name.size() != 4) return false;
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == ".git";
}

bool Conflict(const absl::Status& st) { return rest::ErrorInfoFromStatus(st).http_status == 409; }
bool MissingPath(const absl::Status& st) {
  auto info = rest::ErrorInfoFromStatus(st);
  return info.http_status == 404 && info.code == "PATH_NOT_FOUND";
}

}  // namespace

int ErrnoFor(const absl::Status& status) {
  rest::ApiErrorInfo info = rest::ErrorInfoFromStatus(status);
  if (info.http_status == 404) return ENOENT;
  if (info.http_status == 401 || info.http_status == 403) return EACCES;
  return EIO;
}

MountFs::MountFs(MountFsOptions options) : options_(std::move(options)) {}

MountFs::~MountFs() { Shutdown(0); }

void MountFs::SetInvalidator(std::function<void(uint64_t, const std::string&)> entry, std::function<void(uint64_t)> inode) {
  std::lock_guard<std::mutex> lock(mu_);
  inval_entry_ = std::move(entry);
  inval_inode_ = std::move(inode);
}

int MountFs::RepoIndex(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < repos_.size(); ++i) {
    if (repos_[i].spec.name == name) return static_cast<int>(i);
  }
  return -1;
}

uint64_t MountFs::NewNodeLocked(uint64_t parent, const std::string& name, Kind kind) {
  Node n;
  n.ino = nodes_.size() + 1;
  n.parent = parent;
  n.name = name;
  n.kind = kind;
  if (parent) {
    const Node& p = nodes_[parent - 1];
    n.repo = p.repo;
    n.path = p.kind == Kind::kRoot ? "" : Join(p.path, name);
  }
  nodes_.push_back(std::move(n));
  return nodes_.size();
}

uint64_t MountFs::MakeRepoRootLocked(size_t i) {
  RepoView& r = repos_[i];
  uint64_t ino = NewNodeLocked(kRootIno, r.spec.name, Kind::kDir);
  Node& n = nodes_[ino - 1];
  n.repo = static_cast<int>(i);
  n.path = "";
  n.base_path = "";
  n.sha = r.root_tree;
  r.root_ino = ino;
  nodes_[0].children[r.spec.name] = ino;
  return ino;
}

absl::Status MountFs::Init() {
  overlay_ = std::make_unique<OverlayStore>(options_.overlay_dir);
  if (!options_.overlay_dir.empty()) {
    if (auto st = overlay_->Init(); !st.ok()) return st;
  }
  std::unique_lock<std::mutex> lock(mu_);
  nodes_.clear();
  NewNodeLocked(0, "", Kind::kRoot);
  nodes_[0].listed = true;
  for (size_t i = 0; i < options_.repos.size(); ++i) {
    const RepoSpec& spec = options_.repos[i];
    RepoView view;
    view.spec = spec;
    // A previous daemon may have left this repo's working change and unconfirmed writes.
    std::optional<nlohmann::json> saved = options_.overlay_dir.empty() ? std::nullopt : overlay_->LoadState(spec.name);
    std::string working_id = saved ? saved->value("working_change", "") : "";
    absl::StatusOr<Revision> rev = !working_id.empty()       ? options_.backend->ResolveChange(spec.name, working_id)
                                   : spec.change_id.empty() ? options_.backend->ResolveBookmark(spec.name, spec.bookmark)
                                                            : options_.backend->ResolveChange(spec.name, spec.change_id);
    if (!rev.ok()) return rev.status();
    view.revision = *rev;
    view.fetch_change = rev->change_id;
    if (!working_id.empty()) view.working = *rev;
    if (rev->commit_oid.empty()) {
      view.root_tree = kEmptyTree;
      options_.trees->Put(kEmptyTree, {});
    } else if (auto cached = options_.trees->CommitTree(rev->commit_oid)) {
      view.root_tree = *cached;
    } else {
      lock.unlock();
      auto listing = options_.backend->ListDir(spec.name, rev->change_id, "", 2);
      lock.lock();
      if (!listing.ok()) return listing.status();
      view.root_tree = listing->sha();
      options_.trees->PutCommitTree(rev->commit_oid, listing->sha());
      ++stats_.listings_fetched;
      std::map<std::string, TreeListing> by_parent;
      for (const auto& e : listing->entries()) by_parent[ParentOf(e.path())].push_back(EntryFrom(e));
      options_.trees->Put(listing->sha(), by_parent[""]);
      for (const auto& e : listing->entries()) {
        if (e.type() == "dir" && e.path().find('/') == std::string::npos) options_.trees->Put(e.sha(), by_parent[e.path()]);
      }
    }
    repos_.push_back(std::move(view));
    MakeRepoRootLocked(i);
    if (saved) {
      if (auto st = RestoreLocked(lock, i, *saved); !st.ok()) return st;
    }
  }
  flusher_ = std::thread([this] { FlusherLoop(); });
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Reads

MountFs::RepoModes MountFs::Modes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t read_only = 0;
  for (const auto& r : repos_) read_only += r.spec.read_only ? 1 : 0;
  if (read_only == 0) return RepoModes::kAllWritable;
  return read_only == repos_.size() ? RepoModes::kAllReadOnly : RepoModes::kMixed;
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
  int64_t base_s = n.repo < 0 ? options_.mount_time_s : repos_[static_cast<size_t>(n.repo)].revision.time_s;
  if (n.mtime_ns) {
    a.mtime_s = n.mtime_ns / 1000000000;
    a.mtime_ns = n.mtime_ns % 1000000000;
  } else {
    a.mtime_s = base_s;
  }
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

uint64_t MountFs::AddChildLocked(uint64_t parent, const TreeEntry& entry) {
  auto it = nodes_[parent - 1].children.find(entry.name);
  if (it != nodes_[parent - 1].children.end()) return it->second;
  Kind kind = entry.type == TreeEntry::Type::kDir       ? Kind::kDir
              : entry.type == TreeEntry::Type::kSymlink ? Kind::kSymlink
                                                        : Kind::kFile;
  uint64_t ino = NewNodeLocked(parent, entry.name, kind);
  Node& n = nodes_[ino - 1];
  n.base_path = Join(nodes_[parent - 1].base_path, entry.name);
  n.sha = entry.sha;
  n.size = entry.size;
  n.executable = entry.executable;
  nodes_[parent - 1].children[entry.name] = ino;
  return ino;
}

void MountFs::AdoptListingLocked(uint64_t ino, const TreeListing& listing) {
  for (const auto& e : listing) AddChildLocked(ino, e);
  nodes_[ino - 1].listed = true;
}

absl::Status MountFs::FetchListing(const Node& dir) {
  std::string repo_name, change;
  {
    std::lock_guard<std::mutex> lock(mu_);
    repo_name = repos_[static_cast<size_t>(dir.repo)].spec.name;
    change = repos_[static_cast<size_t>(dir.repo)].fetch_change;
  }
  auto content = options_.backend->ListDir(repo_name, change, dir.base_path, 2);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.listings_fetched;
    if (!content.ok()) ++stats_.backend_errors;
  }
  if (!content.ok()) return content.status();
  if (content->type() != "dir" || content->sha() != dir.sha) {
    // The change moved on the server since this view was resolved: its old trees are not
    // reachable through the content API any more.
    MESA_LOG(kWarning) << "mount of " << repo_name << ": /" << dir.base_path << " is " << content->sha()
                       << " on the server, expected " << dir.sha << " (the change was rewritten elsewhere)";
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "STALE_VIEW", "the mounted change was rewritten");
  }
  std::map<std::string, TreeListing> by_parent;
  for (const auto& e : content->entries()) by_parent[ParentOf(e.path())].push_back(EntryFrom(e));
  if (!options_.trees->Put(dir.sha, by_parent[dir.base_path]))
    return rest::LocalError(absl::StatusCode::kDataLoss, "TREE_MISMATCH", "listing of /" + dir.base_path + " does not match its sha");
  for (const auto& e : content->entries()) {
    if (e.type() == "dir" && ParentOf(e.path()) == dir.base_path) options_.trees->Put(e.sha(), by_parent[e.path()]);
  }
  return absl::OkStatus();
}

Result<bool> MountFs::EnsureListed(uint64_t ino) {
  std::unique_lock<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size() || nodes_[ino - 1].removed) return Result<bool>::Error(ENOENT);
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
  if (listing) AdoptListingLocked(ino, *listing);
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
    for (const auto& r : repos_) out.push_back({r.spec.name, AttrOf(nodes_[r.root_ino - 1])});
    return out;
  }
  std::shared_ptr<const TreeListing> listing = dir.local_dir ? nullptr : options_.trees->Get(dir.sha);
  if (listing) {  // untouched: tree order, as git has it
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
    if (it != open_files_.end() && n.local.empty()) return it->second;
  }
  std::string repo_name, change;
  {
    std::lock_guard<std::mutex> lock(mu_);
    repo_name = repos_[static_cast<size_t>(n.repo)].spec.name;
    change = repos_[static_cast<size_t>(n.repo)].fetch_change;
  }
  Backend* backend = options_.backend;
  std::string base_path = n.base_path;
  auto file = options_.blobs->Get(n.sha, n.size, [&](const std::function<bool(const char*, size_t)>& sink) {
    return backend->FetchFile(repo_name, change, base_path, sink);
  });
  std::lock_guard<std::mutex> lock(mu_);
  if (!file.ok()) {
    ++stats_.backend_errors;
    MESA_LOG(kWarning) << "reading /" << repo_name << "/" << n.path << " failed: " << file.status().message();
    return Result<std::shared_ptr<BlobFile>>::Error(ErrnoFor(file.status()), std::string(file.status().message()));
  }
  ++stats_.blobs_opened;
  if (open_files_.size() >= 1024) open_files_.clear();
  open_files_[n.ino] = *file;
  return *file;
}

Result<MountFs::Content> MountFs::OpenContent(uint64_t ino) {
  Node n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ino == 0 || ino > nodes_.size()) return Result<Content>::Error(ENOENT);
    n = nodes_[ino - 1];
    if (n.kind == Kind::kDir || n.kind == Kind::kRoot) return Result<Content>::Error(EISDIR);
    if (!n.local.empty()) {
      auto fd = overlay_->Fd(repos_[static_cast<size_t>(n.repo)].spec.name, n.local);
      if (!fd.ok()) return Result<Content>::Error(EIO, std::string(fd.status().message()));
      return Content{*fd, n.size, nullptr};
    }
  }
  auto blob = OpenBlob(n);
  if (!blob.ok()) return Result<Content>::Error(blob.err(), blob.message());
  return Content{(*blob)->fd(), (*blob)->size(), *blob};
}

Result<std::string> MountFs::ReadLink(uint64_t ino) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ino == 0 || ino > nodes_.size()) return Result<std::string>::Error(ENOENT);
    if (nodes_[ino - 1].kind != Kind::kSymlink) return Result<std::string>::Error(EINVAL);
  }
  auto content = OpenContent(ino);
  if (!content.ok()) return Result<std::string>::Error(content.err(), content.message());
  std::string target(content->size, '\0');
  if (pread(content->fd, target.data(), target.size(), 0) != static_cast<ssize_t>(target.size()))
    return Result<std::string>::Error(EIO);
  return target;
}

Result<uint64_t> MountFs::Resolve(const std::string& path, bool follow) {
  // Components still to walk, front first.
  std::deque<std::string> todo;
  auto push_path = [&](const std::string& p, bool front) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find('/', start);
      if (end == std::string::npos) end = p.size();
      if (end > start) parts.push_back(p.substr(start, end - start));
      start = end + 1;
    }
    if (front) todo.insert(todo.begin(), parts.begin(), parts.end());
    else todo.insert(todo.end(), parts.begin(), parts.end());
  };
  push_path(path, false);
  uint64_t ino = kRootIno;
  int links = 0;
  while (!todo.empty()) {
    std::string comp = todo.front();
    todo.pop_front();
    if (comp == ".") continue;
    if (comp == "..") {
      std::lock_guard<std::mutex> lock(mu_);
      if (ino != kRootIno) ino = nodes_[ino - 1].parent;
      continue;
    }
    auto attr = Lookup(ino, comp);
    if (!attr.ok()) return Result<uint64_t>::Error(attr.err(), attr.message());
    if (S_ISLNK(attr->mode) && (follow || !todo.empty())) {
      if (++links > 40) return Result<uint64_t>::Error(ELOOP);
      auto target = ReadLink(attr->ino);
      if (!target.ok()) return Result<uint64_t>::Error(target.err(), target.message());
      if (!target->empty() && target->front() == '/') ino = kRootIno;  // the mount root, never the host's
      push_path(*target, true);
      continue;
    }
    ino = attr->ino;
  }
  return ino;
}

// ---------------------------------------------------------------------------------------
// Writes

int MountFs::CheckWritableLocked(uint64_t ino) const {
  if (ino == 0 || ino > nodes_.size() || nodes_[ino - 1].removed) return ENOENT;
  const Node& n = nodes_[ino - 1];
  if (n.repo < 0) return EROFS;  // the root holds the repos; it has no writable entries
  if (repos_[static_cast<size_t>(n.repo)].spec.read_only) return EROFS;
  if (options_.overlay_dir.empty()) return EROFS;
  return 0;
}

void MountFs::Invalidate(uint64_t parent, const std::string& name, bool kernel) {
  if (!kernel && inval_entry_) inval_entry_(parent, name);
}

void MountFs::InvalidateInode(uint64_t ino, bool kernel) {
  if (!kernel && inval_inode_) inval_inode_(ino);
}

void MountFs::SaveStateLocked(int repo, bool durable) {
  RepoView& r = repos_[static_cast<size_t>(repo)];
  nlohmann::json pending = nlohmann::json::array();
  for (auto& [path, p] : r.pending) {
    nlohmann::json e = {{"path", path}, {"seq", p.seq}, {"exists", false}};
    auto ino = FindLocked(repo, path);
    if (ino && nodes_[*ino - 1].kind == Kind::kFile && !nodes_[*ino - 1].removed) {
      const Node& n = nodes_[*ino - 1];
      e = {{"path", path}, {"seq", p.seq}, {"exists", true}, {"local", n.local}, {"sha", n.sha},
           {"base_path", n.base_path}, {"size", n.size}, {"executable", n.executable}};
      p.journaled_local = n.local;
      p.journaled_exec = n.executable;
    }
    p.journaled = true;
    pending.push_back(std::move(e));
  }
  nlohmann::json state = {{"repo", r.spec.name},
                          {"working_change", r.working ? r.working->change_id : ""},
                          {"pending", pending},
                          {"local_dirs", r.local_dirs},
                          {"seq", r.seq}};
  auto st = overlay_->SaveState(r.spec.name, state, durable);
  if (st.ok()) r.journal_records = 0;
  if (!st.ok()) MESA_LOG(kError) << "saving overlay state of " << r.spec.name << ": " << st.message();
}

std::optional<uint64_t> MountFs::FindLocked(int repo, const std::string& path) {
  uint64_t ino = repos_[static_cast<size_t>(repo)].root_ino;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string comp = path.substr(start, end - start);
    start = end + 1;
    const Node& n = nodes_[ino - 1];
    if (!n.listed) return std::nullopt;
    auto it = n.children.find(comp);
    if (it == n.children.end()) return std::nullopt;
    ino = it->second;
  }
  return ino;
}

bool MountFs::BaseHasLocked(int repo, const std::string& path) {
  std::string sha = repos_[static_cast<size_t>(repo)].root_tree;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string comp = path.substr(start, end - start);
    start = end + 1;
    auto listing = options_.trees->Get(sha);
    if (!listing) return true;  // unknown: assume it exists; a 404 on upload drops the op
    auto it = std::find_if(listing->begin(), listing->end(), [&](const TreeEntry& e) { return e.name == comp; });
    if (it == listing->end()) return false;
    sha = it->sha;
  }
  return true;
}

bool MountFs::ServerHasLocked(int repo, const std::string& path) {
  const RepoView& r = repos_[static_cast<size_t>(repo)];
  if (r.confirmed_upserts.count(path) || r.inflight_upserts.count(path)) return true;
  if (r.confirmed_deletes.count(path)) return false;
  return BaseHasLocked(repo, path);
}

void MountFs::JournalLocked(int repo, const nlohmann::json& record) {
  ++repos_[static_cast<size_t>(repo)].journal_records;
  auto st = overlay_->Append(repos_[static_cast<size_t>(repo)].spec.name, record);
  if (!st.ok()) MESA_LOG(kError) << "overlay journal of " << repos_[static_cast<size_t>(repo)].spec.name << ": " << st.message();
}

void MountFs::MarkDirtyLocked(int repo, const std::string& path) {
  RepoView& r = repos_[static_cast<size_t>(repo)];
  Pending& p = r.pending[path];
  p.seq = ++r.seq;
  r.last_write_ms = NowMs();
  auto ino = FindLocked(repo, path);
  if (ino && nodes_[*ino - 1].kind == Kind::kFile) {
    const Node& n = nodes_[*ino - 1];
    if (!p.journaled || p.journaled_local != n.local || p.journaled_exec != n.executable) {
      JournalLocked(repo, {{"path", path}, {"seq", p.seq}, {"exists", true}, {"local", n.local}, {"sha", n.sha},
                           {"base_path", n.base_path}, {"size", n.size}, {"executable", n.executable}});
      p.journaled = true;
      p.journaled_local = n.local;
      p.journaled_exec = n.executable;
    }
  }
  flush_cv_.notify_all();
}

void MountFs::MarkRemovedLocked(int repo, const std::string& path) {
  RepoView& r = repos_[static_cast<size_t>(repo)];
  r.too_large.erase(path);
  if (ServerHasLocked(repo, path)) {
    Pending& p = r.pending[path];
    p.seq = ++r.seq;
    p.journaled = true;
    p.journaled_local.clear();
    JournalLocked(repo, {{"path", path}, {"seq", p.seq}, {"exists", false}});
  } else if (r.pending.erase(path)) {
    JournalLocked(repo, {{"path", path}, {"clean", true}});
  }
  r.last_write_ms = NowMs();
  flush_cv_.notify_all();
}

Result<bool> MountFs::MaterializeLocked(std::unique_lock<std::mutex>& lock, uint64_t ino) {
  if (!nodes_[ino - 1].local.empty()) return true;
  Node snapshot = nodes_[ino - 1];
  const std::string repo = repos_[static_cast<size_t>(snapshot.repo)].spec.name;
  std::shared_ptr<BlobFile> blob;
  if (!snapshot.sha.empty() && snapshot.size > 0) {
    lock.unlock();
    auto opened = OpenBlob(snapshot);
    lock.lock();
    if (!opened.ok()) return Result<bool>::Error(opened.err(), opened.message());
    blob = *opened;
  }
  if (!nodes_[ino - 1].local.empty()) return true;  // another thread won
  auto id = overlay_->CreateFile(repo);
  if (!id.ok()) return Result<bool>::Error(ENOSPC, std::string(id.status().message()));
  auto fd = overlay_->Fd(repo, *id);
  if (!fd.ok()) return Result<bool>::Error(EIO);
  if (blob) {
    off_t in_off = 0, out_off = 0;
    uint64_t left = blob->size();
    while (left > 0) {
      ssize_t n = copy_file_range(blob->fd(), &in_off, *fd, &out_off, left, 0);
      if (n <= 0) {
        overlay_->RemoveFile(repo, *id);
        return Result<bool>::Error(EIO, "copying a blob into the overlay failed");
      }
      left -= static_cast<uint64_t>(n);
    }
  }
  nodes_[ino - 1].local = *id;
  repos_[static_cast<size_t>(snapshot.repo)].overlay_bytes += snapshot.size;
  return true;
}

Result<Attr> MountFs::Create(uint64_t parent, const std::string& name, mode_t mode, bool kernel) {
  auto listed = EnsureListed(parent);
  if (!listed.ok()) return Result<Attr>::Error(listed.err(), listed.message());
  std::unique_lock<std::mutex> lock(mu_);
  auto check = [&]() -> int {
    if (int err = CheckWritableLocked(parent)) return err;
    if (!ValidName(name)) return EINVAL;
    if (IsGitDir(name)) return EPERM;
    if (nodes_[parent - 1].children.count(name)) return EEXIST;
    return 0;
  };
  if (int err = check()) return Result<Attr>::Error(err, err == EPERM ? "'.git' cannot be stored in a Mesa repo" : "");
  int repo = nodes_[parent - 1].repo;
  std::string repo_name = repos_[static_cast<size_t>(repo)].spec.name;
  // The overlay file is made without the lock: creating a file on disk can take hundreds of
  // microseconds (ext4 without a journal scans past recently deleted inodes), and every other
  // request of the mount would wait for it.
  lock.unlock();
  auto id = overlay_->CreateFile(repo_name);
  lock.lock();
  if (!id.ok()) return Result<Attr>::Error(ENOSPC);
  if (int err = check()) {
    overlay_->RemoveFile(repo_name, *id);  // lost a race (e.g. a concurrent create of the name)
    return Result<Attr>::Error(err);
  }
  uint64_t ino = NewNodeLocked(parent, name, Kind::kFile);
  Node& n = nodes_[ino - 1];
  n.local = *id;
  n.listed = true;
  n.executable = (mode & 0111) != 0;
  n.mtime_ns = NowNs();
  nodes_[parent - 1].children[name] = ino;
  nodes_[parent - 1].local_dir = true;
  MarkDirtyLocked(repo, n.path);
  Attr a = AttrOf(n);
  lock.unlock();
  Invalidate(parent, name, kernel);
  return a;
}

Result<size_t> MountFs::Write(uint64_t ino, const char* data, size_t size, uint64_t offset, bool kernel) {
  std::unique_lock<std::mutex> lock(mu_);
  if (int err = CheckWritableLocked(ino)) return Result<size_t>::Error(err);
  if (nodes_[ino - 1].kind != Kind::kFile) return Result<size_t>::Error(nodes_[ino - 1].kind == Kind::kSymlink ? EINVAL : EISDIR);
  int repo = nodes_[ino - 1].repo;
  RepoView& r = repos_[static_cast<size_t>(repo)];
  uint64_t end = offset + size;
  uint64_t growth = end > nodes_[ino - 1].size ? end - nodes_[ino - 1].size : 0;
  if (r.overlay_bytes + growth > options_.overlay_max_bytes && growth > 0)
    return Result<size_t>::Error(ENOSPC, "the overlay of unconfirmed writes is full");
  auto mat = MaterializeLocked(lock, ino);
  if (!mat.ok()) return Result<size_t>::Error(mat.err(), mat.message());
  auto fd = overlay_->Fd(r.spec.name, nodes_[ino - 1].local);
  if (!fd.ok()) return Result<size_t>::Error(EIO);
  size_t done = 0;
  while (done < size) {
    ssize_t w = pwrite(*fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Result<size_t>::Error(errno == ENOSPC ? ENOSPC : EIO);
    }
    done += static_cast<size_t>(w);
  }
  Node& n = nodes_[ino - 1];
  if (end > n.size) {
    r.overlay_bytes += end - n.size;
    n.size = end;
  }
  r.dirty_bytes += done;
  n.mtime_ns = NowNs();
  MarkDirtyLocked(repo, n.path);
  if (r.dirty_bytes >= options_.flush_threshold_bytes) flush_cv_.notify_all();
  lock.unlock();
  InvalidateInode(ino, kernel);
  return done;
}

Result<Attr> MountFs::SetAttr(uint64_t ino, const SetAttrRequest& req, bool kernel) {
  std::unique_lock<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size()) return Result<Attr>::Error(ENOENT);
  if (!req.size && !req.mode && !req.mtime_ns) return AttrOf(nodes_[ino - 1]);
  if (int err = CheckWritableLocked(ino)) return Result<Attr>::Error(err);
  Node& n0 = nodes_[ino - 1];
  int repo = n0.repo;
  if (req.size) {
    if (n0.kind != Kind::kFile) return Result<Attr>::Error(EISDIR);
    auto mat = MaterializeLocked(lock, ino);
    if (!mat.ok()) return Result<Attr>::Error(mat.err(), mat.message());
    RepoView& r = repos_[static_cast<size_t>(repo)];
    auto fd = overlay_->Fd(r.spec.name, nodes_[ino - 1].local);
    if (!fd.ok() || ftruncate(*fd, static_cast<off_t>(*req.size)) != 0) return Result<Attr>::Error(EIO);
    Node& n = nodes_[ino - 1];
    if (*req.size > n.size) r.overlay_bytes += *req.size - n.size;
    n.size = *req.size;
    n.mtime_ns = NowNs();
    MarkDirtyLocked(repo, n.path);
  }
  Node& n = nodes_[ino - 1];
  if (req.mode && n.kind == Kind::kFile) {
    // Git keeps one bit of a file's mode: executable or not.
    bool exec = (*req.mode & 0100) != 0;
    if (exec != n.executable) {
      n.executable = exec;
      MarkDirtyLocked(repo, n.path);
    }
  }
  if (req.mtime_ns) n.mtime_ns = *req.mtime_ns;  // local only: git stores no mtimes
  Attr a = AttrOf(n);
  lock.unlock();
  InvalidateInode(ino, kernel);
  return a;
}

Result<Attr> MountFs::Mkdir(uint64_t parent, const std::string& name, bool kernel) {
  auto listed = EnsureListed(parent);
  if (!listed.ok()) return Result<Attr>::Error(listed.err(), listed.message());
  std::unique_lock<std::mutex> lock(mu_);
  if (int err = CheckWritableLocked(parent)) return Result<Attr>::Error(err);
  if (!ValidName(name)) return Result<Attr>::Error(EINVAL);
  if (IsGitDir(name)) return Result<Attr>::Error(EPERM, "'.git' cannot be stored in a Mesa repo");
  if (nodes_[parent - 1].children.count(name)) return Result<Attr>::Error(EEXIST);
  uint64_t ino = NewNodeLocked(parent, name, Kind::kDir);
  Node& n = nodes_[ino - 1];
  n.listed = true;
  n.local_dir = true;
  n.mtime_ns = NowNs();
  nodes_[parent - 1].children[name] = ino;
  nodes_[parent - 1].local_dir = true;
  RepoView& r = repos_[static_cast<size_t>(n.repo)];
  r.local_dirs.insert(n.path);
  JournalLocked(n.repo, {{"dir", n.path}, {"op", "mkdir"}});
  Attr a = AttrOf(n);
  lock.unlock();
  Invalidate(parent, name, kernel);
  return a;
}

Result<bool> MountFs::Unlink(uint64_t parent, const std::string& name, bool kernel) {
  auto listed = EnsureListed(parent);
  if (!listed.ok()) return Result<bool>::Error(listed.err(), listed.message());
  std::unique_lock<std::mutex> lock(mu_);
  if (int err = CheckWritableLocked(parent)) return Result<bool>::Error(err);
  auto it = nodes_[parent - 1].children.find(name);
  if (it == nodes_[parent - 1].children.end()) return Result<bool>::Error(ENOENT);
  uint64_t ino = it->second;
  Node& n = nodes_[ino - 1];
  if (n.kind == Kind::kDir) return Result<bool>::Error(EISDIR);
  nodes_[parent - 1].children.erase(it);
  nodes_[parent - 1].local_dir = true;
  n.removed = true;
  MarkRemovedLocked(n.repo, n.path);
  lock.unlock();
  Invalidate(parent, name, kernel);
  return true;
}

Result<bool> MountFs::Rmdir(uint64_t parent, const std::string& name, bool kernel) {
  auto listed = EnsureListed(parent);
  if (!listed.ok()) return Result<bool>::Error(listed.err(), listed.message());
  uint64_t ino;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (int err = CheckWritableLocked(parent)) return Result<bool>::Error(err);
    auto it = nodes_[parent - 1].children.find(name);
    if (it == nodes_[parent - 1].children.end()) return Result<bool>::Error(ENOENT);
    ino = it->second;
    if (nodes_[ino - 1].kind != Kind::kDir) return Result<bool>::Error(ENOTDIR);
  }
  auto inner = EnsureListed(ino);
  if (!inner.ok()) return Result<bool>::Error(inner.err(), inner.message());
  std::unique_lock<std::mutex> lock(mu_);
  Node& n = nodes_[ino - 1];
  if (!n.children.empty()) return Result<bool>::Error(ENOTEMPTY);
  nodes_[parent - 1].children.erase(name);
  nodes_[parent - 1].local_dir = true;
  n.removed = true;
  RepoView& r = repos_[static_cast<size_t>(n.repo)];
  for (auto d = r.local_dirs.begin(); d != r.local_dirs.end();) {
    if (*d == n.path || d->rfind(n.path + "/", 0) == 0) d = r.local_dirs.erase(d);
    else ++d;
  }
  JournalLocked(n.repo, {{"dir", n.path}, {"op", "rmdir"}});
  lock.unlock();
  Invalidate(parent, name, kernel);
  return true;
}

void MountFs::RepathLocked(uint64_t ino, const std::string& path) {
  Node& n = nodes_[ino - 1];
  n.path = path;
  for (const auto& [name, child] : n.children) RepathLocked(child, Join(path, name));
}

void MountFs::CollectFilesLocked(uint64_t ino, std::vector<uint64_t>* out) {
  const Node& n = nodes_[ino - 1];
  if (n.kind == Kind::kFile || n.kind == Kind::kSymlink) {
    out->push_back(ino);
    return;
  }
  for (const auto& [name, child] : n.children) CollectFilesLocked(child, out);
}

Result<bool> MountFs::ListSubtree(uint64_t ino) {
  auto listed = EnsureListed(ino);
  if (!listed.ok()) return listed;
  std::vector<uint64_t> dirs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, child] : nodes_[ino - 1].children) {
      if (nodes_[child - 1].kind == Kind::kDir) dirs.push_back(child);
    }
  }
  for (uint64_t d : dirs) {
    auto sub = ListSubtree(d);
    if (!sub.ok()) return sub;
  }
  return true;
}

Result<bool> MountFs::Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                             const std::string& new_name, unsigned flags, bool kernel) {
  if (flags & RENAME_EXCHANGE) return Result<bool>::Error(EINVAL, "RENAME_EXCHANGE is not supported");
  auto a = EnsureListed(parent);
  if (!a.ok()) return a;
  auto b = EnsureListed(new_parent);
  if (!b.ok()) return b;
  uint64_t ino;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (int err = CheckWritableLocked(parent)) return Result<bool>::Error(err);
    if (int err = CheckWritableLocked(new_parent)) return Result<bool>::Error(err);
    if (nodes_[parent - 1].repo != nodes_[new_parent - 1].repo) return Result<bool>::Error(EXDEV);
    if (!ValidName(new_name)) return Result<bool>::Error(EINVAL);
    if (IsGitDir(new_name)) return Result<bool>::Error(EPERM);
    auto it = nodes_[parent - 1].children.find(name);
    if (it == nodes_[parent - 1].children.end()) return Result<bool>::Error(ENOENT);
    ino = it->second;
    if (nodes_[ino - 1].kind == Kind::kSymlink)
      return Result<bool>::Error(ENOTSUP, "the REST API cannot write symlinks, so they cannot be moved");
    // A directory cannot move under itself.
    for (uint64_t p = new_parent; p && p != kRootIno; p = nodes_[p - 1].parent) {
      if (p == ino) return Result<bool>::Error(EINVAL);
    }
  }
  // A moved directory uploads every file below it, so all of them must be known locally.
  bool is_dir;
  {
    std::lock_guard<std::mutex> lock(mu_);
    is_dir = nodes_[ino - 1].kind == Kind::kDir;
  }
  if (is_dir) {
    auto sub = ListSubtree(ino);
    if (!sub.ok()) return sub;
  }
  std::optional<uint64_t> target_dir;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto t = nodes_[new_parent - 1].children.find(new_name);
    if (t != nodes_[new_parent - 1].children.end() && nodes_[t->second - 1].kind == Kind::kDir) target_dir = t->second;
  }
  if (target_dir) {
    auto listed_target = EnsureListed(*target_dir);
    if (!listed_target.ok()) return listed_target;
  }
  std::unique_lock<std::mutex> lock(mu_);
  Node& src_parent = nodes_[parent - 1];
  if (src_parent.children.find(name) == src_parent.children.end() || src_parent.children[name] != ino)
    return Result<bool>::Error(ENOENT);  // changed meanwhile
  int repo = nodes_[ino - 1].repo;
  std::vector<uint64_t> files;
  CollectFilesLocked(ino, &files);
  for (uint64_t f : files) {
    if (nodes_[f - 1].kind == Kind::kSymlink)
      return Result<bool>::Error(ENOTSUP, "the directory holds a symlink, which the REST API cannot write");
  }
  auto& dst_children = nodes_[new_parent - 1].children;
  auto existing = dst_children.find(new_name);
  if (existing != dst_children.end() && existing->second != ino) {
    if (flags & RENAME_NOREPLACE) return Result<bool>::Error(EEXIST);
    Node& target = nodes_[existing->second - 1];
    if (target.kind == Kind::kDir) {
      if (!is_dir) return Result<bool>::Error(EISDIR);
      if (!target.listed || !target.children.empty()) return Result<bool>::Error(ENOTEMPTY);
    } else if (is_dir) {
      return Result<bool>::Error(ENOTDIR);
    }
  }
  // Bytes move with the node: materialize every file so nothing later has to be fetched from
  // a base path that the upload deletes.
  for (uint64_t f : files) {
    auto mat = MaterializeLocked(lock, f);
    if (!mat.ok()) return mat;
  }
  // Materializing dropped the lock: look the target up again.
  auto replaced = nodes_[new_parent - 1].children.find(new_name);
  if (replaced != nodes_[new_parent - 1].children.end() && replaced->second != ino) {
    Node& target = nodes_[replaced->second - 1];
    target.removed = true;
    if (target.kind == Kind::kFile) MarkRemovedLocked(repo, target.path);
  }
  std::vector<std::string> old_paths;
  for (uint64_t f : files) old_paths.push_back(nodes_[f - 1].path);
  std::string old_dir_path = nodes_[ino - 1].path;
  nodes_[parent - 1].children.erase(name);
  nodes_[parent - 1].local_dir = true;
  nodes_[new_parent - 1].children[new_name] = ino;
  nodes_[new_parent - 1].local_dir = true;
  Node& n = nodes_[ino - 1];
  n.parent = new_parent;
  n.name = new_name;
  RepathLocked(ino, Join(nodes_[new_parent - 1].path, new_name));
  if (is_dir) {
    // Local-only directories move too.
    RepoView& r = repos_[static_cast<size_t>(repo)];
    std::set<std::string> moved;
    for (const auto& d : r.local_dirs) {
      if (d == old_dir_path || d.rfind(old_dir_path + "/", 0) == 0) moved.insert(n.path + d.substr(old_dir_path.size()));
      else moved.insert(d);
    }
    r.local_dirs = moved;
    std::vector<uint64_t> all_dirs;
    std::function<void(uint64_t)> mark = [&](uint64_t d) {
      nodes_[d - 1].local_dir = true;
      for (const auto& [cn, c] : nodes_[d - 1].children) {
        if (nodes_[c - 1].kind == Kind::kDir) mark(c);
      }
    };
    mark(ino);
  }
  for (const auto& p : old_paths) MarkRemovedLocked(repo, p);
  for (uint64_t f : files) MarkDirtyLocked(repo, nodes_[f - 1].path);
  if (is_dir) SaveStateLocked(repo, false);  // local_dirs moved wholesale
  lock.unlock();
  Invalidate(parent, name, kernel);
  Invalidate(new_parent, new_name, kernel);
  return true;
}

Result<bool> MountFs::Fsync(uint64_t ino) {
  std::unique_lock<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size()) return Result<bool>::Error(ENOENT);
  Node n = nodes_[ino - 1];
  if (n.repo < 0) return true;
  RepoView& r = repos_[static_cast<size_t>(n.repo)];
  if (!n.local.empty()) {
    auto st = overlay_->SyncFile(r.spec.name, n.local);
    if (!st.ok()) return Result<bool>::Error(EIO);
  }
  if (!overlay_->SyncJournal(r.spec.name).ok()) return Result<bool>::Error(EIO);
  r.flush_requested = true;
  flush_cv_.notify_all();
  return true;
}

void MountFs::Released(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ino == 0 || ino > nodes_.size()) return;
  int repo = nodes_[ino - 1].repo;
  if (repo < 0 || repos_[static_cast<size_t>(repo)].pending.empty()) return;
  repos_[static_cast<size_t>(repo)].close_requested = true;
  flush_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------
// Restore after a restart

absl::Status MountFs::RestoreLocked(std::unique_lock<std::mutex>& lock, size_t i, const nlohmann::json& state) {
  RepoView& r = repos_[i];
  r.seq = state.value("seq", uint64_t{0});
  std::set<std::string> dir_set;
  for (const auto& d : state.value("local_dirs", std::vector<std::string>{})) dir_set.insert(d);
  // The snapshot, then every journal record after it (later records win).
  std::map<std::string, nlohmann::json> by_path;
  for (const auto& p : state.value("pending", nlohmann::json::array())) by_path[p.value("path", "")] = p;
  for (const auto& rec : overlay_->LoadJournal(r.spec.name)) {
    if (rec.contains("dir")) {
      std::string d = rec.value("dir", "");
      if (rec.value("op", "") == "mkdir") dir_set.insert(d);
      else {
        for (auto it = dir_set.begin(); it != dir_set.end();) {
          if (*it == d || it->rfind(d + "/", 0) == 0) it = dir_set.erase(it);
          else ++it;
        }
      }
      continue;
    }
    std::string path = rec.value("path", "");
    auto known = by_path.find(path);
    if (rec.value("clean", false)) {
      // A confirmation covers the writes up to its seq (none given: all of them).
      uint64_t upto = rec.value("seq", std::numeric_limits<uint64_t>::max());
      if (known != by_path.end() && known->second.value("seq", uint64_t{0}) <= upto) by_path.erase(known);
    } else if (known == by_path.end() || known->second.value("seq", uint64_t{0}) <= rec.value("seq", uint64_t{0})) {
      by_path[path] = rec;
    }
    r.seq = std::max(r.seq, rec.value("seq", uint64_t{0}));
  }
  std::vector<std::string> dirs(dir_set.begin(), dir_set.end());
  nlohmann::json pending = nlohmann::json::array();
  for (auto& [path, rec] : by_path) {
    if (!path.empty()) pending.push_back(rec);
  }
  // Walks to `dir`, creating local directories on the way.
  auto ensure_dir = [&](const std::string& dir) -> std::optional<uint64_t> {
    uint64_t ino = r.root_ino;
    // Every directory on the way must be listed before local entries join it: an unlisted
    // directory would later look like it lacks them.
    lock.unlock();
    auto root_listed = EnsureListed(ino);
    lock.lock();
    if (!root_listed.ok()) return std::nullopt;
    size_t start = 0;
    while (start < dir.size()) {
      size_t end = dir.find('/', start);
      if (end == std::string::npos) end = dir.size();
      std::string comp = dir.substr(start, end - start);
      start = end + 1;
      lock.unlock();
      auto listed = EnsureListed(ino);
      lock.lock();
      if (!listed.ok()) return std::nullopt;
      auto it = nodes_[ino - 1].children.find(comp);
      if (it != nodes_[ino - 1].children.end()) {
        if (nodes_[it->second - 1].kind != Kind::kDir) return std::nullopt;
        ino = it->second;
        lock.unlock();
        auto sub_listed = EnsureListed(ino);
        lock.lock();
        if (!sub_listed.ok()) return std::nullopt;
        continue;
      }
      uint64_t child = NewNodeLocked(ino, comp, Kind::kDir);
      nodes_[child - 1].listed = true;
      nodes_[child - 1].local_dir = true;
      nodes_[ino - 1].children[comp] = child;
      nodes_[ino - 1].local_dir = true;
      ino = child;
    }
    return ino;
  };
  for (const auto& d : dirs) {
    if (ensure_dir(d)) r.local_dirs.insert(d);
  }
  size_t restored = 0;
  for (const auto& p : pending) {
    std::string path = p.value("path", "");
    if (path.empty()) continue;
    auto parent = ensure_dir(ParentOf(path));
    if (!parent) {
      MESA_LOG(kError) << "overlay of " << r.spec.name << ": cannot restore /" << path;
      continue;
    }
    std::string name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    auto& children = nodes_[*parent - 1].children;
    auto existing = children.find(name);
    if (!p.value("exists", false)) {
      if (existing != children.end()) {
        nodes_[existing->second - 1].removed = true;
        children.erase(existing);
        nodes_[*parent - 1].local_dir = true;
      }
      r.pending[path].seq = p.value("seq", uint64_t{0});
      ++restored;
      continue;
    }
    uint64_t ino;
    if (existing != children.end() && nodes_[existing->second - 1].kind == Kind::kFile) {
      ino = existing->second;
    } else {
      if (existing != children.end()) children.erase(existing);
      ino = NewNodeLocked(*parent, name, Kind::kFile);
      children[name] = ino;
    }
    Node& n = nodes_[ino - 1];
    nodes_[*parent - 1].local_dir = true;
    n.local = p.value("local", "");
    if (n.local.empty()) {
      // Only its mode changed: the bytes are the (restored) base blob's.
      n.sha = p.value("sha", "");
      n.base_path = p.value("base_path", "");
    }
    n.size = p.value("size", uint64_t{0});
    n.executable = p.value("executable", false);
    n.listed = true;
    if (!n.local.empty()) {
      auto fd = overlay_->Fd(r.spec.name, n.local);
      struct stat st {};
      if (fd.ok() && fstat(*fd, &st) == 0) n.size = static_cast<uint64_t>(st.st_size);
      r.overlay_bytes += n.size;
    }
    r.pending[path].seq = p.value("seq", uint64_t{0});
    ++restored;
  }
  if (restored) {
    MESA_LOG(kInfo) << "overlay of " << r.spec.name << ": restored " << restored << " unconfirmed write(s)";
    r.flush_requested = true;
  }
  for (auto& [path, p] : r.pending) p.journaled = false;
  SaveStateLocked(static_cast<int>(i), true);  // fold the journal into a fresh snapshot
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Flusher

void MountFs::FlusherLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    int64_t now = NowMs();
    int64_t next_wake = now + 1000;
    bool did = false;
    for (size_t i = 0; i < repos_.size() && !stop_; ++i) {
      RepoView& r = repos_[i];
      if (r.pending.empty() && !r.flush_requested) continue;
      if (r.pending.empty()) {
        r.flush_requested = false;
        ++r.attempts;
        uploaded_cv_.notify_all();
        continue;
      }
      // A close() asks for an upload, but while a burst of files keeps closing, uploads start
      // at most every kCloseUploadGapMs: one PATCH per few files would take the CPU the writer
      // needs and commit the same trees over and over.
      int64_t close_due_ms = r.last_upload_start_ms + kCloseUploadGapMs;
      bool due = r.flush_requested || (r.close_requested && now >= close_due_ms) ||
                 now - r.last_write_ms >= options_.flush_idle_ms || r.dirty_bytes >= options_.flush_threshold_bytes;
      if (!due) {
        next_wake = std::min(next_wake, r.last_write_ms + options_.flush_idle_ms);
        if (r.close_requested) next_wake = std::min(next_wake, close_due_ms);
        continue;
      }
      if (now < r.retry_at_ms) {
        next_wake = std::min(next_wake, r.retry_at_ms);
        continue;
      }
      Upload(lock, i);
      did = true;
    }
    if (did) continue;
    flush_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, next_wake - NowMs())));
  }
}

void MountFs::Upload(std::unique_lock<std::mutex>& lock, size_t i) {
  RepoView& r = repos_[i];
  r.flush_requested = false;
  r.close_requested = false;
  r.last_upload_start_ms = NowMs();
  const std::string repo = r.spec.name;
  const uint64_t snapshot_seq = r.seq;
  r.dirty_bytes = 0;  // what is written from now on counts towards the next upload

  auto fail = [&](const absl::Status& st) {
    RepoView& rv = repos_[i];
    ++rv.failures;
    ++stats_.upload_failures;
    int64_t backoff = std::min<int64_t>(30000, 200ll << std::min(rv.failures, 8));
    rv.retry_at_ms = NowMs() + backoff;
    rv.last_error = std::string(st.message());
    ++rv.attempts;
    MESA_LOG(kWarning) << "upload of " << repo << " failed (" << st.message() << "); retrying in " << backoff << " ms";
    uploaded_cv_.notify_all();
  };

  // The first write forks a change on top of the view's revision.
  if (!r.working) {
    std::string base = r.revision.change_id;
    lock.unlock();
    auto created = options_.backend->CreateChange(repo, base, "");
    lock.lock();
    if (!created.ok()) return fail(created.status());
    repos_[i].working = *created;
    SaveStateLocked(static_cast<int>(i), true);
    MESA_LOG(kInfo) << "mount: writes to " << repo << " go to new change " << created->change_id;
  }

  // Build the operations from the current view; read bytes outside the lock. One batch is
  // bounded (bytes and operations), and so is the work done here under the lock: a burst of
  // thousands of pending files is uploaded in rounds, not rescanned whole for each round.
  struct Item {
    std::string path;
    uint64_t seq = 0;  // the pending write this item uploads
    bool exists = false;
    bool server_has = false;
    Node node;
  };
  std::vector<Item> items;
  uint64_t planned_bytes = 0;
  bool partial = false;
  const uint64_t batch_cap = r.batch_cap_bytes ? r.batch_cap_bytes : options_.upload_batch_bytes;
  for (const auto& [path, p] : repos_[i].pending) {
    auto refused = repos_[i].too_large.find(path);
    if (refused != repos_[i].too_large.end() && refused->second == p.seq) continue;  // until rewritten
    if (items.size() >= kMaxUploadOps) {
      partial = true;
      break;
    }
    Item item;
    item.path = path;
    item.seq = p.seq;
    auto ino = FindLocked(static_cast<int>(i), path);
    if (ino && nodes_[*ino - 1].kind == Kind::kFile && !nodes_[*ino - 1].removed) {
      if (!items.empty() && planned_bytes + nodes_[*ino - 1].size > batch_cap) {
        partial = true;
        break;
      }
      planned_bytes += nodes_[*ino - 1].size;
      item.exists = true;
      item.node = nodes_[*ino - 1];
    } else {
      item.server_has = ServerHasLocked(static_cast<int>(i), path);
    }
    items.push_back(std::move(item));
  }
  Revision working = *repos_[i].working;
  for (const auto& item : items) {
    if (item.exists) repos_[i].inflight_upserts.insert(item.path);
  }
  lock.unlock();

  std::vector<UploadOp> ops;
  absl::Status read_error;
  uint64_t batch_bytes = 0;
  std::set<std::string> in_batch;
  for (const auto& item : items) {
    if (!item.exists) {
      if (item.server_has) ops.push_back({true, item.path, "", false});
      in_batch.insert(item.path);
      continue;
    }
    if (batch_bytes > 0 && batch_bytes + item.node.size > batch_cap) {
      partial = true;  // grew since it was planned: the rest goes in the next round
      break;
    }
    UploadOp op{false, item.path, std::string(item.node.size, '\0'), item.node.executable};
    int fd = -1;
    std::shared_ptr<BlobFile> hold;
    if (!item.node.local.empty()) {
      auto f = overlay_->Fd(repo, item.node.local);
      if (f.ok()) fd = *f;
    } else {
      auto blob = OpenBlob(item.node);
      if (blob.ok()) {
        hold = *blob;
        fd = hold->fd();
      }
    }
    if (fd < 0) {
      read_error = rest::LocalError(absl::StatusCode::kDataLoss, "EIO", "cannot read /" + item.path + " for upload");
      break;
    }
    ssize_t n = pread(fd, op.content.data(), op.content.size(), 0);
    if (n < 0) {
      read_error = rest::LocalError(absl::StatusCode::kDataLoss, "EIO", "cannot read /" + item.path + " for upload");
      break;
    }
    op.content.resize(static_cast<size_t>(n));
    batch_bytes += op.content.size();
    ops.push_back(std::move(op));
    in_batch.insert(item.path);
  }
  if (!read_error.ok()) {
    lock.lock();
    repos_[i].inflight_upserts.clear();
    return fail(read_error);
  }

  // Deletes first: a path may turn from a directory into a file (or back) within one batch,
  // and the server applies operations in order.
  std::stable_partition(ops.begin(), ops.end(), [](const UploadOp& op) { return op.remove; });
  absl::StatusOr<Revision> result = working;
  if (!ops.empty()) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      result = options_.backend->UpdateChange(repo, working.change_id, working.commit_oid, ops);
      if (result.ok()) break;
      if (Conflict(result.status())) {
        // Someone else moved the change: re-apply our operations on its new commit.
        lock.lock();
        ++stats_.upload_conflicts;
        lock.unlock();
        auto fresh = options_.backend->ResolveChange(repo, working.change_id);
        if (!fresh.ok()) {
          result = fresh.status();
          break;
        }
        working = *fresh;
        continue;
      }
      if (MissingPath(result.status())) {
        // A delete of a path the server no longer has (already applied before a crash).
        std::vector<UploadOp> kept;
        for (auto& op : ops) {
          if (op.remove) {
            auto exists = options_.backend->PathExists(repo, working.change_id, op.path);
            if (exists.ok() && !*exists) continue;
          }
          kept.push_back(std::move(op));
        }
        if (kept.size() == ops.size()) break;
        ops = std::move(kept);
        if (ops.empty()) break;
        continue;
      }
      break;
    }
  }
  lock.lock();
  repos_[i].inflight_upserts.clear();
  if (!result.ok() && rest::ErrorInfoFromStatus(result.status()).http_status == 413) {
    // The server refuses a body this large. Several files: halve the batch and go on at once.
    // One file: it cannot be uploaded to this server as it is; it stays in the mount (visible,
    // readable, pending), Flush reports it, and the other files go on without it.
    RepoView& rv = repos_[i];
    if (ops.size() > 1) {
      rv.batch_cap_bytes = std::max<uint64_t>(1, batch_bytes / 2);
    } else if (ops.size() == 1) {
      for (const auto& item : items) {
        if (item.path == ops[0].path) rv.too_large[item.path] = item.seq;
      }
      MESA_LOG(kWarning) << "upload of " << repo << ": /" << ops[0].path << " (" << ops[0].content.size()
                         << " bytes) is too large for the server; it stays in the mount, not uploaded";
    }
    rv.flush_requested = true;
    ++rv.attempts;
    uploaded_cv_.notify_all();
    return;
  }
  if (!result.ok()) return fail(result.status());
  RepoView& rv = repos_[i];
  rv.working = *result;
  rv.failures = 0;
  rv.retry_at_ms = 0;
  rv.last_error.clear();
  ++stats_.uploads;
  uint64_t confirmed_bytes = 0;
  for (const auto& item : items) {
    if (!in_batch.count(item.path)) continue;
    rv.too_large.erase(item.path);
    auto it = rv.pending.find(item.path);
    if (it != rv.pending.end() && it->second.seq <= item.seq) {
      rv.pending.erase(it);
      if (item.exists) confirmed_bytes += item.node.size;
      // Not durable, and needs not be: a confirmation lost in a crash only uploads the same
      // bytes again. The seq keeps a later write of the path pending on replay.
      JournalLocked(static_cast<int>(i), {{"path", item.path}, {"clean", true}, {"seq", item.seq}});
    }
    if (item.exists) {
      rv.confirmed_upserts.insert(item.path);
      rv.confirmed_deletes.erase(item.path);
    } else {
      rv.confirmed_deletes.insert(item.path);
      rv.confirmed_upserts.erase(item.path);
    }
  }
  if (rv.pending.empty()) rv.uploaded_seq = snapshot_seq;
  // Confirmed files no longer count against the overlay cap. A recount is exact but walks
  // every pending path; with many pending, subtracting what was confirmed is enough (it can
  // only over-count, e.g. an unconfirmed file deleted meanwhile, until a later recount).
  if (rv.pending.size() <= kRecountPendingMax) {
    uint64_t unconfirmed = 0;
    for (const auto& [path, p] : rv.pending) {
      auto ino = FindLocked(static_cast<int>(i), path);
      if (ino && nodes_[*ino - 1].kind == Kind::kFile && !nodes_[*ino - 1].removed) unconfirmed += nodes_[*ino - 1].size;
    }
    rv.overlay_bytes = unconfirmed;
  } else {
    rv.overlay_bytes -= std::min(rv.overlay_bytes, confirmed_bytes);
  }
  // A fresh snapshot folds the journal; written when it is small (nothing pending) or when the
  // journal has grown well past the pending set, never once per upload of a large burst.
  if (rv.pending.empty() || rv.journal_records > 2 * rv.pending.size() + kJournalSlack) {
    SaveStateLocked(static_cast<int>(i), true);
  }
  if (partial) rv.flush_requested = true;  // the next round follows at once
  ++rv.attempts;
  uploaded_cv_.notify_all();
}

absl::Status MountFs::WaitUploaded(std::unique_lock<std::mutex>& lock, const std::vector<size_t>& which, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::map<size_t, uint64_t> target, attempts0;
  for (size_t i : which) {
    target[i] = repos_[i].seq;
    attempts0[i] = repos_[i].attempts;
    repos_[i].flush_requested = true;
  }
  flush_cv_.notify_all();
  while (true) {
    bool done = true;
    for (size_t i : which) {
      const RepoView& r = repos_[i];
      std::vector<std::string> refused;
      bool clean = r.pending.empty() || std::all_of(r.pending.begin(), r.pending.end(), [&](const auto& kv) {
                     if (kv.second.seq > target[i]) return true;
                     auto t = r.too_large.find(kv.first);
                     if (t != r.too_large.end() && t->second == kv.second.seq) {
                       refused.push_back("/" + kv.first);
                       return true;
                     }
                     return false;
                   });
      if (clean && !refused.empty())
        return rest::LocalError(absl::StatusCode::kFailedPrecondition, "FILE_TOO_LARGE",
                                "the server refuses " + absl::StrJoin(refused, ", ") + " of " + r.spec.name +
                                    " as too large (HTTP 413); every other write is uploaded, and these stay in the "
                                    "mount until they are rewritten or removed");
      if (clean) continue;
      // An attempt finished since we asked and failed: report it instead of waiting forever.
      if (r.attempts > attempts0[i] && !r.last_error.empty())
        return rest::LocalError(absl::StatusCode::kUnavailable, "UPLOAD_FAILED",
                                "uploading " + r.spec.name + " failed: " + r.last_error + " (writes are kept and retried)");
      done = false;
    }
    if (done) return absl::OkStatus();
    if (stop_) return rest::LocalError(absl::StatusCode::kUnavailable, "STOPPED", "the mount is stopping");
    if (uploaded_cv_.wait_until(lock, deadline) == std::cv_status::timeout)
      return rest::LocalError(absl::StatusCode::kDeadlineExceeded, "FLUSH_TIMEOUT", "flush did not finish in time");
  }
}

absl::Status MountFs::Flush(const std::string& repo, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<size_t> which;
  for (size_t i = 0; i < repos_.size(); ++i) {
    if (repo.empty() || repos_[i].spec.name == repo) which.push_back(i);
  }
  if (which.empty()) return rest::LocalError(absl::StatusCode::kNotFound, "ENOENT", "repo '" + repo + "' is not in this mount");
  return WaitUploaded(lock, which, timeout_ms);
}

absl::StatusOr<Revision> MountFs::Current(const std::string& repo, int timeout_ms) {
  int i = RepoIndex(repo);
  if (i < 0) return rest::LocalError(absl::StatusCode::kNotFound, "ENOENT", "repo '" + repo + "' is not in this mount");
  std::unique_lock<std::mutex> lock(mu_);
  if (!repos_[static_cast<size_t>(i)].pending.empty() || (repos_[static_cast<size_t>(i)].flush_requested)) {
    auto st = WaitUploaded(lock, {static_cast<size_t>(i)}, timeout_ms);
    // Files the server refuses as too large are not part of any change: the working change
    // without them is the current one.
    if (!st.ok() && rest::ErrorInfoFromStatus(st).code != "FILE_TOO_LARGE") return st;
  }
  const RepoView& r = repos_[static_cast<size_t>(i)];
  return r.working ? *r.working : r.revision;
}

absl::Status MountFs::SwitchView(const std::string& repo, const Revision& revision, int timeout_ms) {
  int i = RepoIndex(repo);
  if (i < 0) return rest::LocalError(absl::StatusCode::kNotFound, "ENOENT", "repo '" + repo + "' is not in this mount");
  size_t idx = static_cast<size_t>(i);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (repos_[idx].spec.read_only) return rest::LocalError(absl::StatusCode::kFailedPrecondition, "EROFS", "repo '" + repo + "' is read-only");
    if (auto st = WaitUploaded(lock, {idx}, timeout_ms); !st.ok()) return st;
  }
  // The new base tree, before touching the view.
  std::string root_tree;
  if (revision.commit_oid.empty()) {
    root_tree = kEmptyTree;
    options_.trees->Put(kEmptyTree, {});
  } else if (auto cached = options_.trees->CommitTree(revision.commit_oid)) {
    root_tree = *cached;
  } else {
    auto listing = options_.backend->ListDir(repo, revision.change_id, "", 1);
    if (!listing.ok()) return listing.status();
    root_tree = listing->sha();
    options_.trees->PutCommitTree(revision.commit_oid, root_tree);
  }
  uint64_t old_root;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RepoView& r = repos_[idx];
    if (!r.pending.empty()) return rest::LocalError(absl::StatusCode::kAborted, "WRITES_IN_FLIGHT", "new writes arrived during the switch; retry");
    old_root = r.root_ino;
    nodes_[old_root - 1].removed = true;
    r.revision = revision;
    r.fetch_change = revision.change_id;
    r.root_tree = root_tree;
    r.working = revision.change_id == rest::kVirtualRootChangeId ? std::nullopt : std::optional<Revision>(revision);
    r.local_dirs.clear();
    r.confirmed_upserts.clear();
    r.confirmed_deletes.clear();
    r.overlay_bytes = 0;
    r.dirty_bytes = 0;
    r.too_large.clear();
    overlay_->Clear(repo);
    MakeRepoRootLocked(idx);
    SaveStateLocked(i, true);
  }
  // Drop the kernel's view of the old tree.
  Invalidate(kRootIno, repo, false);
  InvalidateInode(old_root, false);
  MESA_LOG(kInfo) << "mount: " << repo << " now shows change " << revision.change_id;
  return absl::OkStatus();
}

bool MountFs::Shutdown(int timeout_ms) {
  bool clean = true;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!flusher_.joinable()) return true;
    if (timeout_ms > 0) {
      std::vector<size_t> all;
      for (size_t i = 0; i < repos_.size(); ++i) all.push_back(i);
      clean = WaitUploaded(lock, all, timeout_ms).ok();
    }
    for (const auto& r : repos_) clean = clean && r.pending.empty();
    stop_ = true;
    flush_cv_.notify_all();
    uploaded_cv_.notify_all();
  }
  flusher_.join();
  return clean;
}

std::vector<RepoStatus> MountFs::Repos() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RepoStatus> out;
  for (const auto& r : repos_) {
    RepoStatus s{r.spec, r.revision, r.root_tree, r.working, r.pending.size(), r.overlay_bytes, r.last_error};
    out.push_back(std::move(s));
  }
  return out;
}

MountFsStats MountFs::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace mesa::daemon::fs
