#include "daemon/mounts/mount_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

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

}  // namespace

MountManager::~MountManager() { UnmountAll(); }

absl::Status MountManager::Start() {
  MESA_ASSIGN_OR_RETURN(blobs_, BlobCache::Open(options_.cache_dir + "/blobs", options_.cache_max_bytes));
  MESA_ASSIGN_OR_RETURN(trees_, TreeCache::Open(options_.cache_dir + "/trees", 2'000'000));
  std::error_code ec;
  fsys::create_directories(options_.runtime_dir, ec);
  chmod(options_.runtime_dir.c_str(), 0755);

  // Mounts of a daemon that died without unmounting answer ENOTCONN forever: detach them.
  std::set<std::string> stale;
  std::set<std::string> created_dirs;
  for (const auto& p : FindFuseMounts("mesad:")) stale.insert(p);
  std::ifstream in(options_.state_dir + "/mounts.json");
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_array()) {
      for (const auto& m : j) {
        std::string path = m.value("path", "");
        if (!path.empty()) stale.insert(path);
        if (!path.empty() && m.value("created_dir", false)) created_dirs.insert(path);
      }
    }
  }
  for (const auto& path : stale) {
    if (DetachStaleMount(path)) {
      MESA_LOG(kInfo) << "detached stale mount " << path;
    }
    if (created_dirs.count(path)) rmdir(path.c_str());
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
    chown(user_dir.c_str(), caller.uid, caller.gid);
    chmod(user_dir.c_str(), 0700);
    std::string path = user_dir + "/" + id;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return rest::InternalError("cannot create " + path);
    chown(path.c_str(), caller.uid, caller.gid);
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

absl::StatusOr<dv1::MountInfo> MountManager::Mount(const PeerCred& caller, const dv1::MountRequest& req) {
  if (req.repos_size() == 0) return Invalid("mount needs at least one repo");
  std::vector<fs::RepoSpec> specs;
  std::set<std::string> names;
  for (const auto& r : req.repos()) {
    if (!rest::IsValidRepoName(r.name())) return Invalid("invalid repo name '" + r.name() + "'");
    if (!names.insert(r.name()).second) return Invalid("repo '" + r.name() + "' is listed twice");
    if (!r.mode().empty() && r.mode() != "ro" && r.mode() != "rw") return Invalid("mode must be ro or rw");
    if (r.has_change_id() && !rest::IsValidChangeId(r.change_id())) return Invalid("invalid change id '" + r.change_id() + "'");
    specs.push_back({r.name(), r.mode() == "ro", r.has_bookmark() ? r.bookmark() : "", r.has_change_id() ? r.change_id() : ""});
  }
  MESA_ASSIGN_OR_RETURN(auto session, options_.sessions->Resolve(caller.uid, req.call().session_id()));
  std::string org = req.call().org();
  if (org.empty()) {
    MESA_ASSIGN_OR_RETURN(org, session->Org());
  }

  auto a = std::make_shared<Active>();
  a->id = "mnt_" + rest::RandomAlphanumeric(12);
  a->uid = caller.uid;
  a->gid = caller.gid;
  a->session_id = session->id();
  a->org = org;
  a->created_at_ms = rest::NowUnixMillis();
  a->backend = std::make_unique<RestBackend>(session, org, options_.backend_timeout_ms);
  a->blobs = blobs_;
  if (req.has_disk_cache() && !req.disk_cache().path().empty()) {
    uint64_t cap = req.disk_cache().max_size_bytes() ? req.disk_cache().max_size_bytes() : options_.cache_max_bytes;
    // A cache directory the caller names is created by mesad and kept 0700 root-owned.
    MESA_ASSIGN_OR_RETURN(a->blobs, BlobCache::Open(req.disk_cache().path(), cap));
  }
  fs::MountFsOptions fo;
  fo.uid = caller.uid;
  fo.gid = caller.gid;
  fo.repos = specs;
  fo.backend = a->backend.get();
  fo.blobs = a->blobs;
  fo.trees = trees_;
  fo.mount_time_s = a->created_at_ms / 1000;
  a->fs = std::make_shared<fs::MountFs>(fo);
  MESA_RETURN_IF_ERROR(a->fs->Init());

  MESA_ASSIGN_OR_RETURN(a->path, PrepareMountPoint(caller, a->id, req.mount_point(), &a->created_dir));
  FuseOptions fuse = options_.fuse;
  fuse.fsname = "mesad:" + a->id;
  auto mounted = FuseMount::Start(a->path, a->fs, fuse);
  if (!mounted.ok()) {
    if (a->created_dir) rmdir(a->path.c_str());
    return mounted.status();
  }
  a->fuse = std::move(*mounted);
  MESA_LOG(kInfo) << "uid " << caller.uid << " mounted " << a->id << " at " << a->path << " (" << specs.size()
                  << " repo(s), org " << org << ")";
  std::lock_guard<std::mutex> lock(mu_);
  mounts_[a->id] = a;
  SaveRecordsLocked();
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
    mounts_.erase(a->id);
    SaveRecordsLocked();
  }
  StopMount(*a);
  MESA_LOG(kInfo) << "unmounted " << a->id << " (" << a->path << ")";
  return absl::OkStatus();
}

void MountManager::UnmountAll() {
  std::map<std::string, std::shared_ptr<Active>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(mounts_);
    SaveRecordsLocked();
  }
  for (auto& [id, a] : all) StopMount(*a);
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
    m->set_change_id(r.revision.change_id);
    m->set_commit_oid(r.revision.commit_oid);
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
    for (const auto& r : a->fs->Repos()) {
      repos.push_back({{"name", r.spec.name}, {"read_only", r.spec.read_only}, {"bookmark", r.spec.bookmark},
                       {"change_id", r.spec.change_id}});
    }
    list.push_back({{"id", a->id}, {"uid", a->uid}, {"gid", a->gid}, {"path", a->path},
                    {"created_dir", a->created_dir}, {"session_id", a->session_id}, {"org", a->org},
                    {"repos", repos}, {"cache", a->blobs->dir()}});
  }
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
