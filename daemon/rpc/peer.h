// Who is calling: credentials the kernel gave for each accepted Unix-socket connection
// (SO_PEERCRED), looked up from a call's peer string ("fd:<n>").
#pragma once

#include <grpcpp/server_context.h>
#include <sys/types.h>

#include <map>
#include <mutex>
#include <optional>

#include "absl/status/statusor.h"

namespace mesa::daemon {

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

class PeerRegistry {
 public:
  // Called before the fd is handed to gRPC, so a reused fd number is always overwritten first.
  void Register(int fd, PeerCred cred);
  absl::StatusOr<PeerCred> Caller(const grpc::ServerContext* ctx) const;

 private:
  mutable std::mutex mu_;
  std::map<int, PeerCred> by_fd_;
};

}  // namespace mesa::daemon
