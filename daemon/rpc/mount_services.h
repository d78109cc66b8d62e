// gRPC services for mounts and for file access through a mount's filesystem core.
#pragma once

#include <memory>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "daemon/mounts/mount_manager.h"
#include "daemon/rpc/peer.h"

namespace mesa::daemon {

std::vector<std::unique_ptr<grpc::Service>> MakeMountServices(MountManager* mounts, PeerRegistry* peers);

// An errno as a status whose Mesa code is the errno's name (ENOENT, EROFS, ...).
absl::Status ErrnoStatus(int err, const std::string& message);

}  // namespace mesa::daemon
