#include "daemon/rpc/peer.h"

#include "absl/strings/numbers.h"
#include "rest/api_error.h"

namespace mesa::daemon {

void PeerRegistry::Register(int fd, PeerCred cred) {
  std::lock_guard<std::mutex> lock(mu_);
  by_fd_[fd] = cred;
}

absl::StatusOr<PeerCred> PeerRegistry::Caller(const grpc::ServerContext* ctx) const {
  std::string peer = ctx->peer();
  int fd = -1;
  if (peer.rfind("fd:", 0) != 0 || !absl::SimpleAtoi(peer.substr(3), &fd)) {
    return rest::LocalError(absl::StatusCode::kPermissionDenied, "UNKNOWN_PEER",
                            "caller has no kernel credentials (connect over mesad's Unix socket)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end())
    return rest::LocalError(absl::StatusCode::kPermissionDenied, "UNKNOWN_PEER", "caller has no kernel credentials");
  return it->second;
}

}  // namespace mesa::daemon
