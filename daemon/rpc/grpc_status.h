// absl::Status (with the Mesa error payload) -> grpc::Status whose details carry a
// google.rpc.Status holding a mesa.daemon.v1.ErrorDetail.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mesa::daemon {

grpc::StatusCode GrpcCodeFor(int http_status, absl::StatusCode fallback);
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace mesa::daemon
