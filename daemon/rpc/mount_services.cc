#include "daemon/rpc/mount_services.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/rpc/grpc_status.h"
#include "daemon/status_macros.h"
#include "mesa/daemon/v1/mounts.grpc.pb.h"
#include "rest/api_error.h"

namespace mesa::daemon {
namespace {

namespace dv1 = ::mesa::daemon::v1;
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

class FilesService final : public dv1::Files::Service {
 public:
  FilesService(MountManager* m, PeerRegistry* p) : mounts_(m), peers_(p) {}

  Status Read(ServerContext* ctx, const dv1::ReadRequest* req, dv1::ReadResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path()));
      auto file = fs->Open(ino);
      if (!file.ok()) return ErrnoStatus(file.err(), req->path() + ": " + file.message());
      uint64_t size = (*file)->size();
      out->set_size(size);
      if (req->offset() >= size) return absl::OkStatus();
      uint64_t n = size - req->offset();
      if (req->length() > 0) n = std::min<uint64_t>(n, req->length());
      std::string data(n, '\0');
      uint64_t done = 0;
      while (done < n) {
        ssize_t r = pread((*file)->fd(), data.data() + done, n - done, static_cast<off_t>(req->offset() + done));
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
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path()));
      auto attr = fs->GetAttr(ino);
      if (!attr.ok()) return ErrnoStatus(attr.err(), req->path());
      FillStat(*attr, req->path(), out);
      return absl::OkStatus();
    }());
  }
  Status ReadDir(ServerContext* ctx, const dv1::ReadDirRequest* req, dv1::ReadDirResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      MESA_ASSIGN_OR_RETURN(uint64_t ino, Resolve(*fs, req->path()));
      auto entries = fs->ReadDir(ino);
      if (!entries.ok()) return ErrnoStatus(entries.err(), req->path() + (entries.message().empty() ? "" : ": " + entries.message()));
      for (const auto& e : *entries) FillStat(e.attr, e.name, out->add_entries());
      return absl::OkStatus();
    }());
  }
  Status Exists(ServerContext* ctx, const dv1::ExistsRequest* req, dv1::ExistsResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(auto fs, Fs(ctx, req->mount()));
      auto ino = fs->Resolve(req->path());
      if (!ino.ok() && ino.err() != ENOENT && ino.err() != ENOTDIR) return ErrnoStatus(ino.err(), req->path());
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
  absl::StatusOr<uint64_t> Resolve(fs::MountFs& fs, const std::string& path) {
    if (path.empty() || path.front() != '/') return ErrnoStatus(EINVAL, "paths are absolute inside the mount, like /repo/file");
    auto ino = fs.Resolve(path);
    if (!ino.ok()) return ErrnoStatus(ino.err(), path + (ino.message().empty() ? "" : ": " + ino.message()));
    return *ino;
  }

  MountManager* mounts_;
  PeerRegistry* peers_;
};

}  // namespace

absl::Status ErrnoStatus(int err, const std::string& message) {
  return rest::LocalError(CodeForErrno(err), ErrnoName(err), std::string(ErrnoName(err)) + ": " + message);
}

std::vector<std::unique_ptr<grpc::Service>> MakeMountServices(MountManager* mounts, PeerRegistry* peers) {
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<MountsService>(mounts, peers));
  out.push_back(std::make_unique<FilesService>(mounts, peers));
  return out;
}

}  // namespace mesa::daemon
