#define FUSE_USE_VERSION 312
#include "daemon/fuse/fuse_mount.h"

#include <fuse3/fuse_lowlevel.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "daemon/log.h"
#include "daemon/metrics/metrics.h"
#include "rest/api_error.h"

namespace mesa::daemon {

// Every request is answered before its handler returns, so the handler's duration is the
// daemon's share of the operation's latency.
template <metrics::FuseOp kOp, auto kFn>
struct Timed;
template <metrics::FuseOp kOp, typename... Args, void (*kFn)(fuse_req_t, Args...)>
struct Timed<kOp, kFn> {
  static void Call(fuse_req_t req, Args... args) {
    metrics::ScopedTimer timer(metrics::Global().fuse_ops[static_cast<int>(kOp)]);
    kFn(req, args...);
  }
};

struct FuseOps {
  static constexpr size_t kPrefetchMinRequest = 128 << 10;
  static constexpr size_t kPrefetchRequests = 16;

  static FuseMount* Self(fuse_req_t req) { return static_cast<FuseMount*>(fuse_req_userdata(req)); }

  // Only the mount's owner gets past here (the kernel's default_permissions check on the
  // 0700 root does the same for cached entries).
  static bool Deny(fuse_req_t req) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    if (Self(req)->fs_->Allowed(ctx->uid)) return false;
    fuse_reply_err(req, EACCES);
    return true;
  }

  static void FillStat(const fs::Attr& a, struct stat* st) {
    memset(st, 0, sizeof *st);
    st->st_ino = a.ino;
    st->st_mode = a.mode;
    st->st_nlink = a.nlink;
    st->st_uid = a.uid;
    st->st_gid = a.gid;
    st->st_size = static_cast<off_t>(a.size);
    st->st_blksize = 65536;
    st->st_blocks = static_cast<blkcnt_t>((a.size + 511) / 512);
    st->st_mtim.tv_sec = a.mtime_s;
    st->st_ctim.tv_sec = a.mtime_s;
    st->st_atim.tv_sec = a.mtime_s;
  }

  static void FillEntry(FuseMount* m, const fs::Attr& a, fuse_entry_param* e) {
    memset(e, 0, sizeof *e);
    e->ino = a.ino;
    e->generation = 1;
    e->attr_timeout = m->options_.attr_timeout_s;
    e->entry_timeout = m->options_.entry_timeout_s;
    FillStat(a, &e->attr);
  }

  static void Init(void* userdata, fuse_conn_info* conn) {
    auto* m = static_cast<FuseMount*>(userdata);
    auto want = [&](unsigned cap) {
      if (conn->capable & cap) conn->want |= cap;
    };
    want(FUSE_CAP_ASYNC_READ);
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_SPLICE_MOVE);
    want(FUSE_CAP_PARALLEL_DIROPS);
    want(FUSE_CAP_CACHE_SYMLINKS);
    want(FUSE_CAP_READDIRPLUS);
    if (m->modes_ != fs::MountFs::RepoModes::kMixed) want(FUSE_CAP_NO_OPEN_SUPPORT);
    want(FUSE_CAP_NO_OPENDIR_SUPPORT);
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // always plus: one round trip fills the dcache
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;   // content never changes under an inode
    // O_TRUNC must arrive as SETATTR: with atomic_o_trunc the kernel expects OPEN to truncate,
    // and this filesystem usually has no OPEN (no_open).
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    conn->max_read = 1u << 20;  // must match the max_read mount option
    conn->max_readahead = m->options_.max_readahead;
    conn->max_write = 1u << 20;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
  }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    if (Deny(req)) return;
    FuseMount* m = Self(req);
    auto attr = m->fs_->Lookup(parent, name);
    fuse_entry_param e;
    if (!attr.ok()) {
      if (attr.err() == ENOENT) {
        // A negative entry, cached by the kernel: trees do not change under a mount.
        memset(&e, 0, sizeof e);
        e.entry_timeout = m->options_.negative_timeout_s;
        fuse_reply_entry(req, &e);
        return;
      }
      fuse_reply_err(req, attr.err());
      return;
    }
    FillEntry(m, *attr, &e);
    fuse_reply_entry(req, &e);
  }

  static void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    if (Deny(req)) return;
    auto attr = Self(req)->fs_->GetAttr(ino);
    if (!attr.ok()) {
      fuse_reply_err(req, attr.err());
      return;
    }
    struct stat st;
    FillStat(*attr, &st);
    fuse_reply_attr(req, &st, Self(req)->options_.attr_timeout_s);
  }

  static void ReadLink(fuse_req_t req, fuse_ino_t ino) {
    if (Deny(req)) return;
    auto target = Self(req)->fs_->ReadLink(ino);
    if (!target.ok()) {
      fuse_reply_err(req, target.err());
      return;
    }
    fuse_reply_readlink(req, target->c_str());
  }

  // ENOSYS makes the kernel stop sending OPEN for this mount and treat files as keep_cache:
  // no round trip per open. A mount mixing ro and rw repos answers opens itself, so that
  // opening a ro repo's file for writing fails with EROFS (an all-ro mount is MS_RDONLY).
  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (Deny(req)) return;
    FuseMount* m = Self(req);
    if (m->modes_ != fs::MountFs::RepoModes::kMixed) {
      fuse_reply_err(req, ENOSYS);
      return;
    }
    bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
    if (writes && m->fs_->ReadOnly(ino)) {
      fuse_reply_err(req, EROFS);
      return;
    }
    fi->keep_cache = 1;
    fi->noflush = !writes;  // close() of a reader has nothing to upload
    fuse_reply_open(req, fi);
  }
  static void OpenDir(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
    if (Deny(req)) return;
    fuse_reply_err(req, ENOSYS);
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    if (Deny(req)) return;
    auto content = Self(req)->fs_->OpenContent(ino);
    if (!content.ok()) {
      fuse_reply_err(req, content.err());
      return;
    }
    uint64_t total = content->size;
    if (static_cast<uint64_t>(off) >= total) {
      fuse_reply_buf(req, nullptr, 0);
      return;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(size, total - static_cast<uint64_t>(off)));
    // A large request is the kernel's read-ahead of a sequential reader: start the disk reads of
    // the cache file's next bytes now, so they overlap this reply instead of following it.
    if (n >= kPrefetchMinRequest && static_cast<uint64_t>(off) + n < total) {
      (void)posix_fadvise(content->fd, off + static_cast<off_t>(n), static_cast<off_t>(kPrefetchRequests * n),
                          POSIX_FADV_WILLNEED);
    }
    fuse_bufvec buf = FUSE_BUFVEC_INIT(n);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = content->fd;
    buf.buf[0].pos = off;
    // Splices from the cache (or overlay) file into the FUSE device when possible.
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
  }

  static void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
    if (Deny(req)) return;
    FuseMount* m = Self(req);
    auto entries = m->fs_->ReadDir(ino);
    if (!entries.ok()) {
      fuse_reply_err(req, entries.err());
      return;
    }
    std::vector<char> buf(size);
    size_t used = 0;
    // Offsets: 1 = ".", 2 = "..", 3.. = entries.
    size_t total = entries->size() + 2;
    auto parent_attr = m->fs_->GetAttr(ino);
    for (size_t i = static_cast<size_t>(off); i < total; ++i) {
      std::string name;
      fs::Attr attr;
      if (i == 0) {
        name = ".";
        attr = *parent_attr;
      } else if (i == 1) {
        name = "..";
        attr = *parent_attr;  // only the type matters for ".."
      } else {
        name = (*entries)[i - 2].name;
        attr = (*entries)[i - 2].attr;
      }
      size_t need;
      if (plus) {
        fuse_entry_param e;
        FillEntry(m, attr, &e);
        if (i < 2) {
          // "." and "..": an entry with ino 0 adds no lookup count and no dentry.
          memset(&e, 0, sizeof e);
          e.attr.st_ino = attr.ino;
          e.attr.st_mode = S_IFDIR;
        }
        need = fuse_add_direntry_plus(req, buf.data() + used, buf.size() - used, name.c_str(), &e, static_cast<off_t>(i + 1));
      } else {
        struct stat st;
        FillStat(attr, &st);
        need = fuse_add_direntry(req, buf.data() + used, buf.size() - used, name.c_str(), &st, static_cast<off_t>(i + 1));
      }
      if (need > buf.size() - used) break;
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  }

  static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    ReadDirCommon(req, ino, size, off, false);
  }
  static void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    ReadDirCommon(req, ino, size, off, true);
  }

  static void StatFs(fuse_req_t req, fuse_ino_t) {
    struct statvfs st {};
    st.f_bsize = 65536;
    st.f_frsize = 65536;
    st.f_namemax = 255;
    st.f_files = 1u << 30;
    st.f_ffree = 1u << 30;
    st.f_blocks = 1ull << 30;
    st.f_bfree = 1ull << 30;
    st.f_bavail = 1ull << 30;
    fuse_reply_statfs(req, &st);
  }

  // Refused once: the kernel then stops asking for this mount.
  static void GetXattr(fuse_req_t req, fuse_ino_t, const char*, size_t) { fuse_reply_err(req, ENOSYS); }
  static void ListXattr(fuse_req_t req, fuse_ino_t, size_t) { fuse_reply_err(req, ENOSYS); }

  static void ReplyEntry(fuse_req_t req, fs::Result<fs::Attr> attr) {
    if (!attr.ok()) {
      fuse_reply_err(req, attr.err());
      return;
    }
    fuse_entry_param e;
    FillEntry(Self(req), *attr, &e);
    fuse_reply_entry(req, &e);
  }
  static void ReplyOk(fuse_req_t req, int err) { fuse_reply_err(req, err); }

  static void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* st, int to_set, fuse_file_info*) {
    if (Deny(req)) return;
    fs::SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_SIZE) r.size = static_cast<uint64_t>(st->st_size);
    if (to_set & FUSE_SET_ATTR_MODE) r.mode = st->st_mode;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      r.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      r.mtime_ns = st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
    }
    if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
      // Ownership is the mount owner's, always.
      fuse_reply_err(req, EPERM);
      return;
    }
    auto attr = Self(req)->fs_->SetAttr(ino, r, true);
    if (!attr.ok()) {
      fuse_reply_err(req, attr.err());
      return;
    }
    struct stat out;
    FillStat(*attr, &out);
    fuse_reply_attr(req, &out, Self(req)->options_.attr_timeout_s);
  }
  static void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
    if (Deny(req)) return;
    auto attr = Self(req)->fs_->Create(parent, name, mode, true);
    if (!attr.ok()) {
      fuse_reply_err(req, attr.err());
      return;
    }
    fuse_entry_param e;
    FillEntry(Self(req), *attr, &e);
    fi->fh = 0;
    fi->keep_cache = 1;
    fuse_reply_create(req, &e, fi);
  }
  static void MkNod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
    if (Deny(req)) return;
    if (!S_ISREG(mode)) {
      fuse_reply_err(req, EPERM);  // devices, fifos and sockets have no place in a git tree
      return;
    }
    ReplyEntry(req, Self(req)->fs_->Create(parent, name, mode, true));
  }
  static void MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t) {
    if (Deny(req)) return;
    ReplyEntry(req, Self(req)->fs_->Mkdir(parent, name, true));
  }
  static void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    if (Deny(req)) return;
    auto r = Self(req)->fs_->Unlink(parent, name, true);
    ReplyOk(req, r.ok() ? 0 : r.err());
  }
  static void RmDir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    if (Deny(req)) return;
    auto r = Self(req)->fs_->Rmdir(parent, name, true);
    ReplyOk(req, r.ok() ? 0 : r.err());
  }
  static void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent, const char* new_name,
                     unsigned flags) {
    if (Deny(req)) return;
    auto r = Self(req)->fs_->Rename(parent, name, new_parent, new_name, flags, true);
    ReplyOk(req, r.ok() ? 0 : r.err());
  }
  static void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) {
    if (Deny(req)) return;
    auto n = Self(req)->fs_->Write(ino, buf, size, static_cast<uint64_t>(off), true);
    if (!n.ok()) {
      fuse_reply_err(req, n.err());
      return;
    }
    fuse_reply_write(req, *n);
  }
  static void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    // close(): the flusher uploads soon (asynchronously; fsync waits for local durability).
    if (Deny(req)) return;
    if (Self(req)->modes_ == fs::MountFs::RepoModes::kAllReadOnly) {
      fuse_reply_err(req, ENOSYS);  // nothing is ever written here: the kernel stops sending FLUSH
      return;
    }
    Self(req)->fs_->Released(ino);
    fuse_reply_err(req, 0);
  }
  static void Fsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    if (Deny(req)) return;
    auto r = Self(req)->fs_->Fsync(ino);
    ReplyOk(req, r.ok() ? 0 : r.err());
  }
  static void FsyncDir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
    if (Deny(req)) return;
    auto r = Self(req)->fs_->Fsync(ino);
    ReplyOk(req, r.ok() ? 0 : r.err());
  }
  // Symlinks and hard links cannot be written through the Mesa REST API.
  static void Symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) {
    if (Deny(req)) return;
    fuse_reply_err(req, ENOTSUP);
  }
  static void Link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) {
    if (Deny(req)) return;
    fuse_reply_err(req, ENOTSUP);
  }
  static void SetXattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) { fuse_reply_err(req, ENOTSUP); }
  static void RemoveXattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, ENOTSUP); }
  static void Fallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) {
    if (Deny(req)) return;
    fuse_reply_err(req, EOPNOTSUPP);
  }

  static fuse_lowlevel_ops Make() {
    using metrics::FuseOp;
    fuse_lowlevel_ops ops{};
    ops.init = Init;
    ops.lookup = Timed<FuseOp::kLookup, Lookup>::Call;
    ops.getattr = Timed<FuseOp::kGetAttr, GetAttr>::Call;
    ops.readlink = Timed<FuseOp::kReadLink, ReadLink>::Call;
    ops.open = Timed<FuseOp::kOpen, Open>::Call;
    ops.opendir = Timed<FuseOp::kOpenDir, OpenDir>::Call;
    ops.read = Timed<FuseOp::kRead, Read>::Call;
    ops.readdir = Timed<FuseOp::kReadDir, ReadDir>::Call;
    ops.readdirplus = Timed<FuseOp::kReadDirPlus, ReadDirPlus>::Call;
    ops.statfs = Timed<FuseOp::kStatFs, StatFs>::Call;
    ops.getxattr = Timed<FuseOp::kXattr, GetXattr>::Call;
    ops.listxattr = Timed<FuseOp::kXattr, ListXattr>::Call;
    ops.setattr = Timed<FuseOp::kSetAttr, SetAttr>::Call;
    ops.mknod = Timed<FuseOp::kMkNod, MkNod>::Call;
    ops.mkdir = Timed<FuseOp::kMkDir, MkDir>::Call;
    ops.unlink = Timed<FuseOp::kUnlink, Unlink>::Call;
    ops.rmdir = Timed<FuseOp::kRmDir, RmDir>::Call;
    ops.symlink = Timed<FuseOp::kOther, Symlink>::Call;
    ops.rename = Timed<FuseOp::kRename, Rename>::Call;
    ops.link = Timed<FuseOp::kOther, Link>::Call;
    ops.write = Timed<FuseOp::kWrite, Write>::Call;
    ops.create = Timed<FuseOp::kCreate, Create>::Call;
    ops.setxattr = Timed<FuseOp::kXattr, SetXattr>::Call;
    ops.removexattr = Timed<FuseOp::kXattr, RemoveXattr>::Call;
    ops.fallocate = Timed<FuseOp::kOther, Fallocate>::Call;
    ops.flush = Timed<FuseOp::kFlush, Flush>::Call;
    ops.fsync = Timed<FuseOp::kFsync, Fsync>::Call;
    ops.fsyncdir = Timed<FuseOp::kFsyncDir, FsyncDir>::Call;
    return ops;
  }
};

namespace {
// Best effort: without it (no sysfs write access) reads work, only slower when cold.
void SetReadAhead(const std::string& dev, unsigned kb) {
  std::string path = "/sys/class/bdi/" + dev + "/read_ahead_kb";
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    MESA_LOG(kWarning) << "cannot set read-ahead: " << path << ": " << strerror(errno);
    return;
  }
  std::string text = std::to_string(kb);
  if (write(fd, text.data(), text.size()) < 0) {
    MESA_LOG(kWarning) << "cannot set read-ahead: " << path << ": " << strerror(errno);
  }
  close(fd);
}
}  // namespace

absl::StatusOr<std::unique_ptr<FuseMount>> FuseMount::Start(const std::string& mountpoint,
                                                            std::shared_ptr<fs::MountFs> fs, FuseOptions options) {
  auto m = std::unique_ptr<FuseMount>(new FuseMount());
  m->mountpoint_ = mountpoint;
  m->fs_ = std::move(fs);
  m->modes_ = m->fs_->Modes();
  m->options_ = options;
  std::string opts = "-ofsname=" + options.fsname + ",subtype=mesad,allow_other,default_permissions,max_read=1048576";
  if (m->modes_ == fs::MountFs::RepoModes::kAllReadOnly) opts += ",ro";
  std::vector<std::string> argv_s = {"mesad", opts};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  static const fuse_lowlevel_ops ops = FuseOps::Make();
  m->session_ = fuse_session_new(&args, &ops, sizeof ops, m.get());
  if (!m->session_) return rest::InternalError("fuse_session_new failed");
  if (fuse_session_mount(m->session_, mountpoint.c_str()) != 0) {
    fuse_session_destroy(m->session_);
    m->session_ = nullptr;
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "MOUNT_FAILED",
                            "cannot mount FUSE at " + mountpoint + " (is /dev/fuse available?)");
  }
  // The connection's control directory, found through the mount's device number (a stat of
  // the mount point would wait for the session loop, which is not running yet).
  std::ifstream info("/proc/self/mountinfo");
  std::string line;
  while (std::getline(info, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == mountpoint) {
      m->connection_ = "/sys/fs/fuse/connections/" + dev.substr(dev.find(':') + 1);
      if (options.read_ahead_kb > 0) SetReadAhead(dev, options.read_ahead_kb);
    }
  }
  FuseMount* raw = m.get();
  // Changes made without the kernel (file RPCs, view switches) drop its caches.
  m->fs_->SetInvalidator(
      [raw](uint64_t parent, const std::string& name) {
        if (raw->session_) fuse_lowlevel_notify_inval_entry(raw->session_, parent, name.c_str(), name.size());
      },
      [raw](uint64_t ino) {
        if (raw->session_) fuse_lowlevel_notify_inval_inode(raw->session_, ino, 0, 0);
      });
  m->loop_ = std::thread([raw] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, raw->options_.max_threads);
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    fuse_session_loop_mt(raw->session_, cfg);
    fuse_loop_cfg_destroy(cfg);
  });
  return m;
}

void FuseMount::Stop() {
  if (stopped_ || !session_) return;
  stopped_ = true;
  fs_->SetInvalidator(nullptr, nullptr);
  fuse_session_exit(session_);
  // A (lazy) unmount ends the loop once the last user of the mount is gone; aborting the
  // connection ends it now even if a process still holds a file open (it then gets ENOTCONN).
  fuse_session_unmount(session_);
  if (!connection_.empty()) {
    std::string abort_path = connection_ + "/abort";
    if (access(abort_path.c_str(), F_OK) != 0) mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr);
    int fd = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!write(fd, "1", 1);
      close(fd);
    }
  }
  if (loop_.joinable()) loop_.join();
  fuse_session_destroy(session_);
  session_ = nullptr;
}

FuseMount::~FuseMount() { Stop(); }

std::vector<std::string> FindFuseMounts(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream info("/proc/self/mountinfo");
  std::string line;
  while (std::getline(info, line)) {
    // ... mount point ... - fstype source options
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, root, point, fstype, source;
    head >> id >> parent >> dev >> root >> point;
    tail >> fstype >> source;
    if (fstype.rfind("fuse", 0) == 0 && source.rfind(prefix, 0) == 0) {
      // Octal escapes (\040 for a space) as the kernel writes them.
      std::string decoded;
      for (size_t i = 0; i < point.size(); ++i) {
        if (point[i] == '\\' && i + 3 < point.size()) {
          decoded.push_back(static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8)));
          i += 3;
        } else {
          decoded.push_back(point[i]);
        }
      }
      out.push_back(decoded);
    }
  }
  return out;
}

bool DetachStaleMount(const std::string& mountpoint) {
  if (umount2(mountpoint.c_str(), MNT_DETACH) == 0) return true;
  return errno == EINVAL || errno == ENOENT;  // not a mount point (any more)
}

}  // namespace mesa::daemon
