#include "daemon/rpc/listener.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "daemon/log.h"
#include "rest/api_error.h"

namespace mesa::daemon {

UnixSocketListener::UnixSocketListener(int fd, std::string path)
    : fd_(fd), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<UnixSocketListener>> UnixSocketListener::Bind(const std::string& path, mode_t mode) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return rest::InternalError("socket path too long: " + path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return rest::InternalError(std::string("socket: ") + strerror(errno));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size());
  unlink(path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 1024) != 0) {
    std::string err = strerror(errno);
    close(fd);
    return rest::InternalError("cannot listen on " + path + ": " + err);
  }
  // Any local user may connect; every call is authorized by the caller's uid.
  chmod(path.c_str(), mode);
  return std::unique_ptr<UnixSocketListener>(new UnixSocketListener(fd, path));
}

std::unique_ptr<UnixSocketListener> UnixSocketListener::Adopt(int fd) {
  return std::unique_ptr<UnixSocketListener>(new UnixSocketListener(fd, ""));
}

UnixSocketListener::~UnixSocketListener() {
  Stop();
  if (fd_ >= 0) close(fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (!path_.empty()) unlink(path_.c_str());
}

void UnixSocketListener::Start(grpc::Server* server, PeerRegistry* peers) {
  thread_ = std::thread([this, server, peers] { Loop(server, peers); });
}

void UnixSocketListener::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  thread_.join();
}

void UnixSocketListener::Loop(grpc::Server* server, PeerRegistry* peers) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno == EMFILE || errno == ENFILE) usleep(10000);
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      MESA_LOG(kWarning) << "SO_PEERCRED failed: " << strerror(errno) << "; connection dropped";
      close(conn);
      continue;
    }
    peers->Register(conn, PeerCred{cred.pid, cred.uid, cred.gid});
    MESA_LOG(kDebug) << "connection fd " << conn << " from uid " << cred.uid << " pid " << cred.pid;
    grpc::AddInsecureChannelFromFd(server, conn);
  }
}

}  // namespace mesa::daemon
