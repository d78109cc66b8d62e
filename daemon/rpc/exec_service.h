// gRPC service Exec (proto/mesa/daemon/v1/exec.proto): authenticates the caller (SO_PEERCRED)
// and hands the run to the ExecManager; ExecStream adds a bounded queue and a writer thread so
// that a slow reader slows the command, not mesad's memory, and never the run's deadline.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "daemon/exec/exec_manager.h"
#include "daemon/rpc/peer.h"

namespace mesa::daemon {

std::unique_ptr<grpc::Service> MakeExecService(ExecManager* exec, PeerRegistry* peers);

}  // namespace mesa::daemon
