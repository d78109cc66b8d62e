// mesad's Unix-socket listener. It accepts connections itself, asks the kernel who is on the
// other end (SO_PEERCRED), records that against the fd, then hands the fd to gRPC.
#pragma once

#include <grpcpp/server.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "daemon/rpc/peer.h"

namespace mesa::daemon {

class UnixSocketListener {
 public:
  // Binds `path` (a stale socket file is replaced) with permissions `mode`.
  static absl::StatusOr<std::unique_ptr<UnixSocketListener>> Bind(const std::string& path, mode_t mode);
  // Takes an already listening socket (systemd socket activation).
  static std::unique_ptr<UnixSocketListener> Adopt(int fd);
  ~UnixSocketListener();

  void Start(grpc::Server* server, PeerRegistry* peers);
  void Stop();  // stops accepting; existing connections are the server's to close

 private:
  UnixSocketListener(int fd, std::string path);
  void Loop(grpc::Server* server, PeerRegistry* peers);

  int fd_;
  int wake_fd_;
  std::string path_;  // empty when adopted
  std::thread thread_;
};

}  // namespace mesa::daemon
