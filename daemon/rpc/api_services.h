// gRPC services for Mesa resources and sessions. Handlers are thin: identify the caller from
// the kernel, pick their session and org, translate with rest/codec, forward, translate back.
#pragma once

#include <memory>
#include <vector>

#include "daemon/rpc/peer.h"
#include "daemon/session/session_manager.h"
#include "mesa/daemon/v1/api.grpc.pb.h"

namespace mesa::daemon {

struct RpcDeps {
  SessionManager* sessions = nullptr;
  PeerRegistry* peers = nullptr;
  RestClient* rest = nullptr;
  int64_t started_at_ms = 0;
  std::function<int(uid_t)> mount_count;  // mounts visible to a uid (all for root)
  // Where sessions go by default (the embedded store or api_url): Status probes it when the
  // caller has no session yet.
  Endpoint default_endpoint;
  // Adds the daemon-wide parts of Status (state, mounts, cache, load) for a caller.
  std::function<void(uid_t, mesa::daemon::v1::StatusResponse*)> fill_status;
};

// All services of this file, ready to register on a grpc::ServerBuilder.
std::vector<std::unique_ptr<grpc::Service>> MakeApiServices(const RpcDeps& deps);

}  // namespace mesa::daemon
