#include "daemon/mounts/mount_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/log.h"
#include "daemon/status_macros.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "rest/validate.h"

namespace mesa::daemon {

namespace fsys = std::filesystem;
namespace dv1 = ::mesa::daemon::v1;

namespace {

absl::Status Invalid(const std::string& message) {
  return rest::LocalError(absl::StatusCode::kInvalidArgument, "VALIDATION_ERROR", message);
}

bool DirIsEmpty(const std::string& path) {
  std::error_code ec;
  return fsys::is_empty(path, ec) && !ec;
}

std::vector<nlohmann::json> LoadRecords(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_array()) {
    for (auto& m : j) out.push_back(m);
  }
  return out;
}

}  // namespace

MountManager::~MountManager() { UnmountAll(0); }

absl::Status MountManager::Start() {
  MESA_ASSIGN_OR_RETURN(blobs_, BlobCache::Open(options_.cache_dir + "/blobs", options_.cache_max_bytes));
  MESA_ASSIGN_OR_RETURN(trees_, TreeCache::Open(options_.cache_dir + "/trees", 2'000'000));
  std::error_code ec;
  fsys::create_directories(options_.runtime_dir, ec);
  chmod(options_.runtime_dir.c_str(), 0755);
  fsys::create_directories(options_.state_dir + "/overlays", ec);
  chmod((options_.state_dir + "/overlays").c_str(), 0700);

  // Mounts of a daemon that died without unmounting answer ENOTCONN forever: detach them.
  std::vector<nlohmann::json> records = LoadRecords(options_.state_dir + "/mounts.json");
  // Only this daemon's own: its runtime dir and its records. Another mesad on the machine
  // (another state dir, e.g. a test's) keeps its live mounts.
  std::set<std::string> stale;
  std::string runtime_prefix = fsys::path(options_.runtime_dir).lexically_normal().string();
  if (!runtime_prefix.ends_with('/')) runtime_prefix += '/';
  for (const auto& p : FindFuseMounts("mesad:")) {
    if (p.starts_with(runtime_prefix)) stale.insert(p);
  }
  for (const auto& m : records) {
    std::string path = m.value("path", "");
    if (!path.empty()) stale.insert(path);
  }
  for (const auto& path : stale) {
    if (DetachStaleMount(path)) {
      MESA_LOG(kInfo) << "detached stale mount " << path;
    }
  }
  // Bring every recorded mount back, unconfirmed writes included.
  for (const auto& m : records) {
    Spec spec;
    spec.id = m.value("id", "");
    spec.uid = m.value("uid", 0u);
    spec.gid = m.value("gid", 0u);
    spec.session_id = m.value("session_id", "");
    spec.org = m.value("org", "");
    spec.path = m.value("path", "");
    spec.created_dir = m.value("created_dir", false);
    spec.cache_dir = m.value("cache", "");
    spec.cache_max_bytes = m.value("cache_max_bytes", uint64_t{0});
    for (const auto& r : m.value("repos", nlohmann::json::array())) {
      spec.repos.push_back({r.value("name", ""), r.value("read_only", false), r.value("bookmark", ""), r.value("change_id", "")});
    }
    if (spec.id.empty() || spec.path.empty()) continue;
    PeerCred owner{0, spec.uid, spec.gid};
    auto restored = MountSpec(owner, spec, /*restoring=*/true);
    if (restored.ok()) {
      MESA_LOG(kInfo) << "restored mount " << spec.id << " at " << spec.path;
    } else {
      MESA_LOG(kError) << "could not restore mount " << spec.id << " (" << restored.status().message()
                       << "); it stays recorded for the next start";
      unrestored_.push_back(m);
      if (spec.created_dir) rmdir(spec.path.c_str());
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  SaveRecordsLocked();
  return absl::OkStatus();
}

absl::StatusOr<std::string> MountManager::PrepareMountPoint(const PeerCred& caller, const std::string& id,
                                                            const std::string& requested, bool* created) {
  *created = false;
  if (requested.empty()) {
    std::string user_dir = options_.runtime_dir + "/" + std::to_string(caller.uid);
    std::error_code ec;
    fsys::create_directories(user_dir, ec);
    if (ec) return rest::InternalError("cannot create " + user_dir + ": " + ec.message());
    if (chown(user_dir.c_str(), caller.uid, caller.gid) != 0 || chmod(user_dir.c_str(), 0700) != 0)
      return rest::InternalError("cannot secure " + user_dir);
    std::string path = user_dir + "/" + id;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return rest::InternalError("cannot create " + path);
    if (chown(path.c_str(), caller.uid, caller.gid) != 0) return rest::InternalError("cannot chown " + path);
    *created = true;
    return path;
  }
  // A directory the caller names must be theirs and empty: mesad (root) must never mount over
  // a path the caller could not have used themselves.
  char real[PATH_MAX];
  if (!realpath(requested.c_str(), real))
    return rest::LocalError(absl::StatusCode::kNotFound, "ENOENT", "mount point " + requested + " does not exist");
  struct stat st {};
  if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "ENOTDIR", requested + " is not a directory");
  if (st.st_uid != caller.uid)
    return rest::LocalError(absl::StatusCode::kPermissionDenied, "EACCES", requested + " is not owned by the caller");
  if (!DirIsEmpty(real))
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "ENOTEMPTY", requested + " is not empty");
  return std::string(real);
}

absl::StatusOr<std::shared_ptr<MountManager::Active>> MountManager::MountSpec(const PeerCred& caller, Spec spec,
                                                                              bool restoring) {
  MESA_ASSIGN_OR_RETURN(auto session, options_.sessions->Resolve(caller.uid, spec.session_id));
  if (spec.org.empty()) {
    MESA_ASSIGN_OR_RETURN(spec.org, session->Org());
  }
  auto a = std::make_shared<Active>();
  a->id = spec.id;
  a->uid = caller.uid;
  a->gid = caller.gid;
  a->session_id = session->id();
  a->org = spec.org;
  a->created_at_ms = rest::NowUnixMillis();
  a->specs = spec.repos;
  int backend_timeout_ms;
  uint64_t default_cap;
  {
    std::lock_guard<std::mutex> lock(mu_);  // a reload may change them
    backend_timeout_ms = options_.backend_timeout_ms;
    default_cap = options_.cache_max_bytes;
  }
  a->backend = std::make_unique<RestBackend>(session, spec.org, backend_timeout_ms);
  a->blobs = blobs_;
  a->cache_max_bytes = spec.cache_max_bytes;
  if (!spec.cache_dir.empty() && spec.cache_dir != blobs_->dir()) {
    uint64_t cap = spec.cache_max_bytes ? spec.cache_max_bytes : default_cap;
    MESA_ASSIGN_OR_RETURN(a->blobs, BlobCache::Open(spec.cache_dir, cap));
  }
  a->overlay_dir = options_.state_dir + "/overlays/" + a->id;
  fs::MountFsOptions fo;
  fo.uid = caller.uid;
  fo.gid = caller.gid;
  fo.repos = spec.repos;
  fo.backend = a->backend.get();
  fo.blobs = a->blobs;
  fo.trees = trees_;
  fo.overlay_dir = a->overlay_dir;
  fo.mount_time_s = a->created_at_ms / 1000;
  fo.flush_idle_ms = options_.flush_idle_ms;
  fo.overlay_max_bytes = options_.overlay_max_bytes;
  a->fs = std::make_shared<fs::MountFs>(fo);
  MESA_RETURN_IF_ERROR(a->fs->Init());

  if (restoring) {
    a->path = spec.path;
    a->created_dir = spec.created_dir;
    if (spec.created_dir) {
      std::error_code ec;
      fsys::create_directories(a->path, ec);
      if (chown(a->path.c_str(), caller.uid, caller.gid) != 0) MESA_LOG(kWarning) << "cannot chown " << a->path;
      chmod(a->path.c_str(), 0700);
    }
  } else {
    MESA_ASSIGN_OR_RETURN(a->path, PrepareMountPoint(caller, a->id, spec.path, &a->created_dir));
  }
  FuseOptions fuse = options_.fuse;
  fuse.fsname = "mesad:" + a->id;
  auto mounted = FuseMount::Start(a->path, a->fs, fuse);
  if (!mounted.ok()) {
    a->fs->Shutdown(0);
    if (a->created_dir && !restoring) rmdir(a->path.c_str());
    return mounted.status();
  }
  a->fuse = std::move(*mounted);
  std::lock_guard<std::mutex> lock(mu_);
  a->backend->SetTimeoutMs(options_.backend_timeout_ms);  // a reload that happened meanwhile
  mounts_[a->id] = a;
  if (!restoring) SaveRecordsLocked();  // Start() saves once every record was tried
  return a;
}

absl::StatusOr<dv1::MountInfo> MountManager::Mount(const PeerCred& caller, const dv1::MountRequest& req) {
  if (req.repos_size() == 0) return Invalid("mount needs at least one repo");
  Spec spec;
  std::set<std::string> names;
  for (const auto& r : req.repos()) {
    if (!rest::IsValidRepoName(r.name())) return Invalid("invalid repo name '" + r.name() + "'");
    if (!names.insert(r.name()).second) return Invalid("repo '" + r.name() + "' is listed twice");
    if (!r.mode().empty() && r.mode() != "ro" && r.mode() != "rw") return Invalid("mode must be ro or rw");
    if (r.has_change_id() && !rest::IsValidChangeId(r.change_id())) return Invalid("invalid change id '" + r.change_id() + "'");
    spec.repos.push_back({r.name(), r.mode() == "ro", r.has_bookmark() ? r.bookmark() : "", r.has_change_id() ? r.change_id() : ""});
  }
  spec.id = "mnt_" + rest::RandomAlphanumeric(12);
  spec.uid = caller.uid;
  spec.gid = caller.gid;
  spec.session_id = req.call().session_id();
  spec.org = req.call().org();
  spec.path = req.mount_point();
  // mesad's working directory means nothing to the caller: paths must be absolute.
  if (!spec.path.empty() && spec.path.front() != '/') return Invalid("mount_point must be an absolute path");
  if (req.has_disk_cache() && !req.disk_cache().path().empty() && req.disk_cache().path().front() != '/')
    return Invalid("disk_cache.path must be an absolute path");
  if (req.has_disk_cache() && !req.disk_cache().path().empty()) {
    spec.cache_dir = req.disk_cache().path();
    if (caller.uid != 0) {
      // mesad (root) never writes where an unprivileged caller points it (symlinks in a
      // caller-owned directory could aim its writes anywhere): their named cache lives in
      // mesad's cache dir, keyed by the path they gave, so equal paths share one cache.
      spec.cache_dir = options_.cache_dir + "/user/" + std::to_string(caller.uid) + "/" +
                       rest::HexEncode(rest::Sha256(req.disk_cache().path())).substr(0, 16);
    }
    spec.cache_max_bytes = req.disk_cache().max_size_bytes();
  }
  MESA_ASSIGN_OR_RETURN(auto a, MountSpec(caller, spec, false));
  MESA_LOG(kInfo) << "uid " << caller.uid << " mounted " << a->id << " at " << a->path << " (" << spec.repos.size()
                  << " repo(s), org " << a->org << ")";
  return InfoOf(*a);
}

std::shared_ptr<MountManager::Active> MountManager::FindLocked(uid_t uid, const std::string& key) {
  for (const auto& [id, a] : mounts_) {
    if ((id == key || a->path == key) && (a->uid == uid)) return a;
  }
  return nullptr;
}

void MountManager::StopMount(Active& a) {
  if (a.fuse) a.fuse->Stop();
  a.fuse.reset();
  if (a.created_dir) rmdir(a.path.c_str());
}

absl::Status MountManager::Unmount(uid_t uid, const std::string& key) {
  std::shared_ptr<Active> a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    a = FindLocked(uid, key);
    if (!a) return rest::LocalError(absl::StatusCode::kNotFound, "MOUNT_NOT_FOUND", "no mount '" + key + "'");
  }
  for (const auto& fn : unmount_listeners_) fn(a->id);
  // Nothing is lost: upload first, while the mount still serves.
  if (auto st = a->fs->Flush("", options_.unmount_flush_timeout_ms); !st.ok()) {
    return rest::LocalError(absl::StatusCode::kUnavailable, "WRITES_PENDING",
                            "not unmounted: " + std::string(st.message()));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (mounts_.erase(a->id) == 0) return rest::LocalError(absl::StatusCode::kNotFound, "MOUNT_NOT_FOUND", "no mount '" + key + "'");
  }
  StopMount(*a);
  bool clean = a->fs->Shutdown(options_.unmount_flush_timeout_ms);
  std::lock_guard<std::mutex> lock(mu_);
  if (clean) {
    fs::OverlayStore(a->overlay_dir).RemoveAll();
  } else {
    // Written between the flush and the unmount and not uploadable now: keep it for later.
    MESA_LOG(kWarning) << "unmounted " << a->id << " with writes still pending; they upload at the next start";
    mounts_[a->id] = a;  // recorded, not served
  }
  SaveRecordsLocked();
  if (!clean) mounts_.erase(a->id);
  MESA_LOG(kInfo) << "unmounted " << a->id << " (" << a->path << ")";
  return absl::OkStatus();
}

int MountManager::FlushAll(int timeout_ms) {
  std::vector<std::shared_ptr<Active>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, a] : mounts_) all.push_back(a);
  }
  std::atomic<int> pending{0};
  std::vector<std::thread> threads;
  for (auto& a : all) {
    threads.emplace_back([&, a] {
      auto st = a->fs->Flush("", std::max(timeout_ms, 0));
      if (!st.ok()) {
        ++pending;
        MESA_LOG(kWarning) << "mount " << a->id << ": " << st.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  return pending;
}

void MountManager::UnmountAll(int flush_timeout_ms) {
  std::map<std::string, std::shared_ptr<Active>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    all = mounts_;  // records stay: the next start restores these mounts
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(flush_timeout_ms, 0));
  if (flush_timeout_ms > 0 && !all.empty()) FlushAll(flush_timeout_ms);
  for (auto& [id, a] : all) StopMount(*a);
  // Writes acknowledged between the flush and the unmount: one more upload, in what is left.
  int left = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
  std::atomic<int> kept{0};
  std::vector<std::thread> threads;
  for (auto& [id, a] : all) {
    threads.emplace_back([&, a = a] {
      if (!a->fs->Shutdown(std::max(left, 0))) ++kept;
    });
  }
  for (auto& t : threads) t.join();
  if (kept > 0) MESA_LOG(kWarning) << kept << " mount(s) stopped with writes pending; they upload at the next start";
  std::lock_guard<std::mutex> lock(mu_);
  mounts_.clear();
}

std::vector<MountManager::Summary> MountManager::Summaries(uid_t uid) {
  std::vector<std::shared_ptr<Active>> mine;
  std::vector<Summary> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, a] : mounts_) {
      if (uid == 0 || a->uid == uid) mine.push_back(a);
    }
    for (const auto& m : unrestored_) {
      Summary s;
      s.id = m.value("id", "");
      s.path = m.value("path", "");
      s.uid = m.value("uid", 0u);
      s.state = "unrestored";
      if (uid == 0 || s.uid == uid) out.push_back(std::move(s));
    }
  }
  for (const auto& a : mine) {
    Summary s;
    s.id = a->id;
    s.path = a->path;
    s.uid = a->uid;
    s.state = a->fuse ? "mounted" : "unmounted";
    for (const auto& r : a->fs->Repos()) {
      s.pending_paths += r.pending_paths;
      s.pending_bytes += r.pending_bytes;
      if (!r.last_upload_error.empty()) s.last_upload_error = r.spec.name + ": " + r.last_upload_error;
    }
    s.backend_errors = a->fs->Stats().backend_errors;
    out.push_back(std::move(s));
  }
  return out;
}

void MountManager::SetCacheMaxBytes(uint64_t max_bytes) {
  std::vector<std::shared_ptr<BlobCache>> own;
  {
    std::lock_guard<std::mutex> lock(mu_);
    options_.cache_max_bytes = max_bytes;
    for (const auto& [id, a] : mounts_) {
      if (a->blobs != blobs_ && a->cache_max_bytes == 0) own.push_back(a->blobs);
    }
  }
  if (blobs_) blobs_->SetMaxBytes(max_bytes);
  for (auto& b : own) b->SetMaxBytes(max_bytes);
}

void MountManager::SetBackendTimeoutMs(int timeout_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.backend_timeout_ms = timeout_ms;
  for (const auto& [id, a] : mounts_) a->backend->SetTimeoutMs(timeout_ms);
}

std::vector<std::shared_ptr<BlobCache>> MountManager::Caches() {
  std::vector<std::shared_ptr<BlobCache>> out;
  if (blobs_) out.push_back(blobs_);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, a] : mounts_) {
    if (std::find(out.begin(), out.end(), a->blobs) == out.end()) out.push_back(a->blobs);
  }
  return out;
}

std::vector<dv1::MountInfo> MountManager::List(uid_t uid, bool all_users) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<dv1::MountInfo> out;
  for (const auto& [id, a] : mounts_) {
    if (a->uid == uid || (all_users && uid == 0)) out.push_back(InfoOf(*a));
  }
  return out;
}

absl::StatusOr<dv1::MountInfo> MountManager::Get(uid_t uid, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto a = FindLocked(uid, key);
  if (!a) return rest::LocalError(absl::StatusCode::kNotFound, "MOUNT_NOT_FOUND", "no mount '" + key + "'");
  return InfoOf(*a);
}

absl::StatusOr<std::shared_ptr<fs::MountFs>> MountManager::Filesystem(uid_t uid, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto a = FindLocked(uid, key);
  if (!a) return rest::LocalError(absl::StatusCode::kNotFound, "MOUNT_NOT_FOUND", "no mount '" + key + "'");
  return a->fs;
}

absl::StatusOr<MountManager::Access> MountManager::Handle(uid_t uid, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto a = FindLocked(uid, key);
  if (!a) return rest::LocalError(absl::StatusCode::kNotFound, "MOUNT_NOT_FOUND", "no mount '" + key + "'");
  return Access{a->fs, std::shared_ptr<RestBackend>(a, a->backend.get())};
}

int MountManager::Count(uid_t uid) {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& [id, a] : mounts_) n += uid == 0 || a->uid == uid;
  return n;
}

dv1::MountInfo MountManager::InfoOf(const Active& a) const {
  dv1::MountInfo info;
  info.set_id(a.id);
  info.set_path(a.path);
  info.set_uid(a.uid);
  info.set_state(a.fuse ? "mounted" : "unmounted");
  info.set_session_id(a.session_id);
  info.set_org(a.org);
  info.set_created_at(rest::FormatRfc3339Millis(a.created_at_ms));
  for (const auto& r : a.fs->Repos()) {
    auto* m = info.add_repos();
    m->set_name(r.spec.name);
    m->set_mode(r.spec.read_only ? "ro" : "rw");
    m->set_bookmark(r.spec.bookmark);
    m->set_pin(!r.spec.change_id.empty() ? "change" : !r.spec.bookmark.empty() ? "bookmark" : "default");
    const fs::Revision& shown = r.working ? *r.working : r.revision;
    m->set_change_id(shown.change_id);
    m->set_commit_oid(shown.commit_oid);
    m->set_root_tree(r.root_tree);
  }
  BlobCacheStats cs = a.blobs->Stats();
  auto* cache = info.mutable_cache();
  cache->set_path(a.blobs->dir());
  cache->set_bytes(cs.bytes);
  cache->set_entries(cs.entries);
  cache->set_max_bytes(cs.max_bytes);
  cache->set_hits(cs.hits);
  cache->set_misses(cs.misses);
  cache->set_evictions(cs.evictions);
  fs::MountFsStats fst = a.fs->Stats();
  info.set_listings_fetched(fst.listings_fetched);
  info.set_blobs_opened(fst.blobs_opened);
  info.set_backend_errors(fst.backend_errors);
  return info;
}

void MountManager::SaveRecordsLocked() {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, a] : mounts_) {
    nlohmann::json repos = nlohmann::json::array();
    for (const auto& r : a->specs) {
      repos.push_back({{"name", r.name}, {"read_only", r.read_only}, {"bookmark", r.bookmark}, {"change_id", r.change_id}});
    }
    list.push_back({{"id", a->id}, {"uid", a->uid}, {"gid", a->gid}, {"path", a->path},
                    {"created_dir", a->created_dir}, {"session_id", a->session_id}, {"org", a->org},
                    {"repos", repos}, {"cache", a->blobs->dir()}, {"cache_max_bytes", a->cache_max_bytes}});
  }
  for (const auto& m : unrestored_) list.push_back(m);
  std::string path = options_.state_dir + "/mounts.json";
  std::string tmp = path + ".tmp";
  std::string data = list.dump(2);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && fsync(fd) == 0;
  close(fd);
  if (ok) rename(tmp.c_str(), path.c_str());
}

}  // namespace mesa::daemon
