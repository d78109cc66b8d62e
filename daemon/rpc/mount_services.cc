#include "daemon/rpc/mount_services.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <set>

#include "daemon/rpc/grpc_status.h"
#include "daemon/status_macros.h"
#include "mesa/daemon/v1/mounts.grpc.pb.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/codec.h"

namespace mesa::daemon {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;
using grpc::ServerContext;
using grpc::Status;

const char* ErrnoName(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EINVAL: return "EINVAL";
    case EXDEV: return "EXDEV";
    case ENOSPC: return "ENOSPC";
    case ENOTSUP: return "ENOTSUP";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return "EIO";
  }
}

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case ENOENT: return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM: return absl::StatusCode::kPermissionDenied;
    case EEXIST: return absl::StatusCode::kAlreadyExists;
    case EINVAL:
    case ENAMETOOLONG: return absl::StatusCode::kInvalidArgument;
    case ENOSPC: return absl::StatusCode::kResourceExhausted;
    case ENOTSUP: return absl::StatusCode::kUnimplemented;
    case EIO: return absl::StatusCode::kUnavailable;
    default: return absl::StatusCode::kFailedPrecondition;
  }
}

std::string TypeOf(mode_t mode) {
  if (S_ISDIR(mode)) return "dir";
  if (S_ISLNK(mode)) return "symlink";
  return "file";
}

void FillStat(const fs::Attr& a, const std::string& path, dv1::FileStat* out) {
  out->set_path(path);
  out->set_type(TypeOf(a.mode));
  out->set_mode(a.mode);
  out->set_size(a.size);
  out->set_ino(a.ino);
  out->set_mtime(a.mtime_s);
}

class MountsService final : public dv1::Mounts::Service {
 public:
  MountsService(MountManager* m, PeerRegistry* p) : mounts_(m), peers_(p) {}
  Status Mount(ServerContext* ctx, const dv1::MountRequest* req, dv1::MountInfo* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      MESA_ASSIGN_OR_RETURN(*out, mounts_->Mount(caller, *req));
      return absl::OkStatus();
    }());
  }
  Status Unmount(ServerContext* ctx, const dv1::UnmountRequest* req, dv1::UnmountResponse*) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      return mounts_->Unmount(caller.uid, req->mount());
    }());
  }
  Status ListMounts(ServerContext* ctx, const dv1::ListMountsRequest* req, dv1::ListMountsResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      if (req->all_users() && caller.uid != 0)
        return rest::LocalError(absl::StatusCode::kPermissionDenied, "FORBIDDEN", "only root may list every user's mounts");
      for (auto& m : mounts_->List(caller.uid, req->all_users())) *out->add_mounts() = std::move(m);
      return absl::OkStatus();
    }());
  }
  Status GetMount(ServerContext* ctx, const dv1::GetMountRequest* req, dv1::MountInfo* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      MESA_ASSIGN_OR_RETURN(*out, mounts_->Get(caller.uid, req->mount()));
      return absl::OkStatus();
    }());
  }

 private:
  MountManager* mounts_;
  PeerRegistry* peers_;
};

std::pair<std::string, std::string> SplitParent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return {"/", p};
  return {slash == 0 ? "/" : p.substr(0, slash), p.substr(slash + 1)};
}

class FilesService final : public dv1::Files::Service {
 public:
  FilesService(MountManager* m, PeerRegistry* p) : mounts_(m), peers_(p) {}

  Status Write(ServerContext* ctx, const dv1::WriteRequest* req, dv1::WriteResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, OpenForWrite(*fs, req->path(), !req->has_offset()));
      uint64_t offset = req->has_offset() ? req->offset() : 0;
      auto n = fs->Write(ino, req->data().data(), req->data().size(), offset, false);
      if (!n.ok()) return ErrnoStatus(n.err(), req->path() + (n.message().empty() ? "" : ": " + n.message()));
      out->set_size(fs->GetAttr(ino)->size);
      return absl::OkStatus();
    }());
  }
  Status Append(ServerContext* ctx, const dv1::AppendRequest* req, dv1::WriteResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, OpenForWrite(*fs, req->path(), false));
      uint64_t end = fs->GetAttr(ino)->size;
      auto n = fs->Write(ino, req->data().data(), req->data().size(), end, false);
      if (!n.ok()) return ErrnoStatus(n.err(), req->path() + (n.message().empty() ? "" : ": " + n.message()));
      out->set_size(end + *n);
      return absl::OkStatus();
    }());
  }
  Status Mkdir(ServerContext* ctx, const dv1::MkdirRequest* req, dv1::FileStat* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      if (req->path().empty() || req->path().front() != '/') return ErrnoStatus(EINVAL, "paths are absolute inside the mount");
      uint64_t ino = fs::kRootIno;
      std::string walked;
      std::vector<std::string> parts;
      size_t start = 1;
      while (start <= req->path().size()) {
        size_t end = req->path().find('/', start);
        if (end == std::string::npos) end = req->path().size();
        if (end > start) parts.push_back(req->path().substr(start, end - start));
        start = end + 1;
      }
      if (parts.empty()) return ErrnoStatus(EEXIST, "/");
      for (size_t i = 0; i < parts.size(); ++i) {
        walked += "/" + parts[i];
        bool last = i + 1 == parts.size();
        auto found = fs->Lookup(ino, parts[i]);
        if (found.ok()) {
          if (!S_ISDIR(found->mode)) return ErrnoStatus(ENOTDIR, walked);
          if (last && !req->parents()) return ErrnoStatus(EEXIST, walked);
          ino = found->ino;
          continue;
        }
        if (found.err() != ENOENT) return ErrnoStatus(found.err(), walked);
        if (!last && !req->parents()) return ErrnoStatus(ENOENT, walked);
        auto made = fs->Mkdir(ino, parts[i], false);
        if (!made.ok()) return ErrnoStatus(made.err(), walked + (made.message().empty() ? "" : ": " + made.message()));
        ino = made->ino;
      }
      FillStat(*fs->GetAttr(ino), req->path(), out);
      return absl::OkStatus();
    }());
  }
  Status Remove(ServerContext* ctx, const dv1::RemoveRequest* req, dv1::Empty*) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      auto ino = fs->Resolve(req->path());
      if (!ino.ok()) {
        if (ino.err() == ENOENT && req->force()) return absl::OkStatus();
        return ErrnoStatus(ino.err(), req->path());
      }
      auto [parent_path, name] = SplitParent(req->path());
      MESA_ASSIGN_OR_RETURN(uint64_t parent, Resolve(*fs, parent_path));
      return RemoveTree(*fs, parent, name, req->path(), req->recursive());
    }());
  }
  Status Rename(ServerContext* ctx, const dv1::RenameRequest* req, dv1::Empty*) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      auto [from_dir, from_name] = SplitParent(req->from());
      auto [to_dir, to_name] = SplitParent(req->to());
      MESA_ASSIGN_OR_RETURN(uint64_t from_parent, Resolve(*fs, from_dir));
      MESA_ASSIGN_OR_RETURN(uint64_t to_parent, Resolve(*fs, to_dir));
      auto r = fs->Rename(from_parent, from_name, to_parent, to_name, 0, false);
      if (!r.ok()) return ErrnoStatus(r.err(), req->from() + " -> " + req->to() + (r.message().empty() ? "" : ": " + r.message()));
      return absl::OkStatus();
    }());
  }
  Status Chmod(ServerContext* ctx, const dv1::ChmodRequest* req, dv1::FileStat* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path()));
      fs::SetAttrRequest r;
      r.mode = req->mode();
      auto attr = fs->SetAttr(ino, r, false);
      if (!attr.ok()) return ErrnoStatus(attr.err(), req->path());
      FillStat(*attr, req->path(), out);
      return absl::OkStatus();
    }());
  }

  Status Read(ServerContext* ctx, const dv1::ReadRequest* req, dv1::ReadResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path(), /*follow=*/true));
      auto file = fs->OpenContent(ino);
      if (!file.ok()) return ErrnoStatus(file.err(), req->path() + (file.message().empty() ? "" : ": " + file.message()));
      uint64_t size = file->size;
      out->set_size(size);
      if (req->offset() >= size) return absl::OkStatus();
      uint64_t n = size - req->offset();
      if (req->length() > 0) n = std::min<uint64_t>(n, req->length());
      std::string data(n, '\0');
      uint64_t done = 0;
      while (done < n) {
        ssize_t r = pread(file->fd, data.data() + done, n - done, static_cast<off_t>(req->offset() + done));
        if (r <= 0) return ErrnoStatus(EIO, req->path() + ": short read from the cache");
        done += static_cast<uint64_t>(r);
      }
      out->set_data(std::move(data));
      return absl::OkStatus();
    }());
  }
  Status Stat(ServerContext* ctx, const dv1::StatRequest* req, dv1::FileStat* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path(), req->no_follow() ? false : true));
      auto attr = fs->GetAttr(ino);
      if (!attr.ok()) return ErrnoStatus(attr.err(), req->path());
      FillStat(*attr, req->path(), out);
      return absl::OkStatus();
    }());
  }
  Status ReadDir(ServerContext* ctx, const dv1::ReadDirRequest* req, dv1::ReadDirResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path(), /*follow=*/true));
      auto entries = fs->ReadDir(ino);
      if (!entries.ok()) return ErrnoStatus(entries.err(), req->path() + (entries.message().empty() ? "" : ": " + entries.message()));
      for (const auto& e : *entries) FillStat(e.attr, e.name, out->add_entries());
      return absl::OkStatus();
    }());
  }
  Status Exists(ServerContext* ctx, const dv1::ExistsRequest* req, dv1::ExistsResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      auto ino = fs->Resolve(req->path(), /*follow=*/true);  // a dangling link does not exist
      if (!ino.ok() && ino.err() != ENOENT && ino.err() != ENOTDIR && ino.err() != ELOOP)
        return ErrnoStatus(ino.err(), req->path());
      out->set_exists(ino.ok());
      return absl::OkStatus();
    }());
  }
  Status ReadLink(ServerContext* ctx, const dv1::ReadLinkRequest* req, dv1::ReadLinkResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path()));
      auto target = fs->ReadLink(ino);
      if (!target.ok()) return ErrnoStatus(target.err(), req->path());
      out->set_target(*target);
      return absl::OkStatus();
    }());
  }

 private:
  absl::StatusOr<std::shared_ptr<fs::MountFs>> Fs(ServerContext* ctx, const std::string& mount) {
    MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
    return mounts_->Filesystem(caller.uid, mount);
  }
  // The file at `path`, created when missing (its parent must exist); `truncate` empties it.
  absl::StatusOr<uint64_t> OpenForWrite(fs::MountFs& fs, const std::string& path, bool truncate) {
    if (path.empty() || path.front() != '/') return ErrnoStatus(EINVAL, "paths are absolute inside the mount, like /repo/file");
    auto existing = fs.Resolve(path);
    uint64_t ino;
    if (existing.ok()) {
      ino = *existing;
      auto attr = fs.GetAttr(ino);
      if (S_ISDIR(attr->mode)) return ErrnoStatus(EISDIR, path);
      if (truncate) {
        fs::SetAttrRequest r;
        r.size = 0;
        auto t = fs.SetAttr(ino, r, false);
        if (!t.ok()) return ErrnoStatus(t.err(), path + (t.message().empty() ? "" : ": " + t.message()));
      }
      return ino;
    }
    if (existing.err() != ENOENT) return ErrnoStatus(existing.err(), path);
    auto [parent_path, name] = SplitParent(path);
    MESA_ASSIGN_OR_RETURN(uint64_t parent, Resolve(fs, parent_path));
    auto created = fs.Create(parent, name, 0644, false);
    if (!created.ok()) return ErrnoStatus(created.err(), path + (created.message().empty() ? "" : ": " + created.message()));
    return created->ino;
  }

  absl::Status RemoveTree(fs::MountFs& fs, uint64_t parent, const std::string& name, const std::string& path,
                          bool recursive) {
    auto attr = fs.Lookup(parent, name);
    if (!attr.ok()) return ErrnoStatus(attr.err(), path);
    if (!S_ISDIR(attr->mode)) {
      auto r = fs.Unlink(parent, name, false);
      return r.ok() ? absl::OkStatus() : ErrnoStatus(r.err(), path + (r.message().empty() ? "" : ": " + r.message()));
    }
    auto entries = fs.ReadDir(attr->ino);
    if (!entries.ok()) return ErrnoStatus(entries.err(), path);
    if (!entries->empty() && !recursive) return ErrnoStatus(ENOTEMPTY, path);
    for (const auto& e : *entries) {
      MESA_RETURN_IF_ERROR(RemoveTree(fs, attr->ino, e.name, path + "/" + e.name, true));
    }
    auto r = fs.Rmdir(parent, name, false);
    return r.ok() ? absl::OkStatus() : ErrnoStatus(r.err(), path + (r.message().empty() ? "" : ": " + r.message()));
  }

  absl::StatusOr<uint64_t> Resolve(fs::MountFs& fs, const std::string& path, bool follow = false) {
    if (path.empty() || path.front() != '/') return ErrnoStatus(EINVAL, "paths are absolute inside the mount, like /repo/file");
    auto ino = fs.Resolve(path, follow);
    if (!ino.ok()) return ErrnoStatus(ino.err(), path + (ino.message().empty() ? "" : ": " + ino.message()));
    return *ino;
  }

  MountManager* mounts_;
  PeerRegistry* peers_;
};

class WorkspaceService final : public dv1::Workspace::Service {
 public:
  WorkspaceService(MountManager* m, PeerRegistry* p) : mounts_(m), peers_(p) {}

  Status ChangesNew(ServerContext* ctx, const dv1::ChangesNewRequest* req, dv1::ChangeRef* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      MESA_ASSIGN_OR_RETURN(fs::Revision base, req->has_change_id() ? h.backend->ResolveChange(req->repo(), req->change_id())
                                                                   : h.backend->ResolveBookmark(req->repo(), req->bookmark()));
      MESA_RETURN_IF_ERROR(h.fs->Flush(req->repo(), kTimeoutMs));
      MESA_ASSIGN_OR_RETURN(fs::Revision created, h.backend->CreateChange(req->repo(), base.change_id, req->message()));
      MESA_RETURN_IF_ERROR(h.fs->SwitchView(req->repo(), created, kTimeoutMs));
      out->set_change_id(created.change_id);
      out->set_commit_oid(created.commit_oid);
      return absl::OkStatus();
    }());
  }
  Status ChangesEdit(ServerContext* ctx, const dv1::ChangesEditRequest* req, dv1::ChangeRef* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      if (!req->has_change_id() && !req->has_bookmark())
        return rest::LocalError(absl::StatusCode::kInvalidArgument, "VALIDATION_ERROR", "change_id or bookmark is required");
      MESA_ASSIGN_OR_RETURN(fs::Revision target, req->has_change_id() ? h.backend->ResolveChange(req->repo(), req->change_id())
                                                                     : h.backend->ResolveBookmark(req->repo(), req->bookmark()));
      if (target.change_id == rest::kVirtualRootChangeId)
        return rest::LocalError(absl::StatusCode::kFailedPrecondition, "IMMUTABLE_CHANGE", "the virtual root cannot be edited; use ChangesNew");
      MESA_RETURN_IF_ERROR(h.fs->SwitchView(req->repo(), target, kTimeoutMs));
      out->set_change_id(target.change_id);
      out->set_commit_oid(target.commit_oid);
      return absl::OkStatus();
    }());
  }
  Status ChangesCurrent(ServerContext* ctx, const dv1::ChangesCurrentRequest* req, dv1::ChangeRef* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      MESA_ASSIGN_OR_RETURN(fs::Revision cur, h.fs->Current(req->repo(), kTimeoutMs));
      out->set_change_id(cur.change_id);
      out->set_commit_oid(cur.commit_oid);
      return absl::OkStatus();
    }());
  }
  Status ChangesList(ServerContext* ctx, const dv1::ChangesListRequest* req, dv1::ChangesListResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      MESA_ASSIGN_OR_RETURN(fs::Revision cur, h.fs->Current(req->repo(), kTimeoutMs));
      int limit = req->limit() > 0 ? req->limit() : 50;
      // Walk parents breadth-first from the current change (the REST list goes by bookmark).
      std::vector<v1::Change> found;
      std::set<std::string> seen;
      std::deque<std::string> queue = {cur.change_id};
      while (!queue.empty() && static_cast<int>(found.size()) < limit) {
        std::string id = queue.front();
        queue.pop_front();
        if (id == rest::kVirtualRootChangeId || !seen.insert(id).second) continue;
        auto session = h.backend->session();
        MESA_ASSIGN_OR_RETURN(nlohmann::json j, session->CallJson(rest::GetChangeCall(h.backend->org(), req->repo(), id)));
        v1::Change c;
        rest::FromJson(j, &c);
        c.clear_files();
        c.clear_conflicts();
        for (const auto& p : c.parents()) queue.push_back(p);
        found.push_back(std::move(c));
      }
      std::stable_sort(found.begin(), found.end(), [](const v1::Change& a, const v1::Change& b) {
        return a.created_at() > b.created_at();
      });
      for (auto& c : found) *out->add_changes() = std::move(c);
      return absl::OkStatus();
    }());
  }
  Status BookmarksCreate(ServerContext* ctx, const dv1::WorkspaceBookmarkRequest* req, v1::Bookmark* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      MESA_ASSIGN_OR_RETURN(fs::Revision cur, h.fs->Current(req->repo(), kTimeoutMs));
      dv1::CreateBookmarkRequest r;
      r.set_repo(req->repo());
      r.set_name(req->name());
      r.set_change_id(cur.change_id);
      auto j = h.backend->session()->CallJson(rest::CreateBookmarkCall(h.backend->org(), r));
      if (!j.ok() && rest::ErrorInfoFromStatus(j.status()).http_status == 409)
        return rest::LocalError(absl::StatusCode::kAlreadyExists, "BOOKMARK_ALREADY_EXISTS", "bookmark '" + req->name() + "' already exists");
      if (!j.ok()) return j.status();
      rest::FromJson(*j, out);
      return absl::OkStatus();
    }());
  }
  Status BookmarksMove(ServerContext* ctx, const dv1::WorkspaceBookmarkRequest* req, v1::Bookmark* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      dv1::MoveBookmarkRequest r;
      r.set_repo(req->repo());
      r.set_name(req->name());
      r.set_change_id(req->change_id());
      MESA_ASSIGN_OR_RETURN(nlohmann::json j, h.backend->session()->CallJson(rest::MoveBookmarkCall(h.backend->org(), r)));
      rest::FromJson(j, out);
      return absl::OkStatus();
    }());
  }
  Status BookmarksList(ServerContext* ctx, const dv1::WorkspaceBookmarksListRequest* req,
                       dv1::WorkspaceBookmarksListResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto h, Handle(ctx, req->mount(), req->repo()));
      dv1::ListBookmarksRequest r;
      r.set_repo(req->repo());
      r.set_limit(100);
      while (true) {
        MESA_ASSIGN_OR_RETURN(nlohmann::json j, h.backend->session()->CallJson(rest::ListBookmarksCall(h.backend->org(), r)));
        dv1::ListBookmarksResponse page;
        rest::FromJson(j, &page);
        for (const auto& b : page.bookmarks()) *out->add_bookmarks() = b;
        if (!page.has_next_cursor()) break;
        r.set_cursor(page.next_cursor());
      }
      return absl::OkStatus();
    }());
  }
  Status Flush(ServerContext* ctx, const dv1::FlushRequest* req, dv1::Empty*) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      MESA_ASSIGN_OR_RETURN(auto fs, mounts_->Filesystem(caller.uid, req->mount()));
      return fs->Flush(req->repo(), req->timeout_ms() > 0 ? req->timeout_ms() : kTimeoutMs);
    }());
  }

 private:
  static constexpr int kTimeoutMs = 30000;
  absl::StatusOr<MountManager::Access> Handle(ServerContext* ctx, const std::string& mount, const std::string& repo) {
    MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
    MESA_ASSIGN_OR_RETURN(auto h, mounts_->Handle(caller.uid, mount));
    if (h.fs->RepoIndex(repo) < 0)
      return rest::LocalError(absl::StatusCode::kNotFound, "ENOENT", "repo '" + repo + "' is not in this mount");
    return h;
  }

  MountManager* mounts_;
  PeerRegistry* peers_;
};

}  // namespace

absl::Status ErrnoStatus(int err, const std::string& message) {
  return rest::LocalError(CodeForErrno(err), ErrnoName(err), message);
}

std::vector<std::unique_ptr<grpc::Service>> MakeMountServices(MountManager* mounts, PeerRegistry* peers) {
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<MountsService>(mounts, peers));
  out.push_back(std::make_unique<FilesService>(mounts, peers));
  out.push_back(std::make_unique<WorkspaceService>(mounts, peers));
  return out;
}

}  // namespace mesa::daemon
