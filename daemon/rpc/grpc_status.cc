#include "daemon/rpc/grpc_status.h"

#include "google/rpc/status.pb.h"
#include "mesa/daemon/v1/api.pb.h"
#include "rest/api_error.h"
#include "rest/codec.h"

namespace mesa::daemon {

grpc::StatusCode GrpcCodeFor(int http, absl::StatusCode fallback) {
  if (http == 0) return static_cast<grpc::StatusCode>(static_cast<int>(fallback));
  if (http == 400 || http == 406 || http == 413 || http == 422) return grpc::StatusCode::INVALID_ARGUMENT;
  if (http == 401) return grpc::StatusCode::UNAUTHENTICATED;
  if (http == 403) return grpc::StatusCode::PERMISSION_DENIED;
  if (http == 404) return grpc::StatusCode::NOT_FOUND;
  if (http == 405 || http == 501) return grpc::StatusCode::UNIMPLEMENTED;
  if (http == 409) return grpc::StatusCode::ABORTED;
  if (http == 429) return grpc::StatusCode::RESOURCE_EXHAUSTED;
  if (http >= 500) return grpc::StatusCode::UNAVAILABLE;
  return grpc::StatusCode::FAILED_PRECONDITION;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  rest::ApiErrorInfo info = rest::ErrorInfoFromStatus(status);
  grpc::StatusCode code = GrpcCodeFor(info.http_status == 0 && status.code() != absl::StatusCode::kUnknown
                                          ? 0 : info.http_status, status.code());
  mesa::daemon::v1::ErrorDetail detail;
  detail.set_http_status(info.http_status);
  detail.set_code(info.code);
  detail.set_message(info.message);
  detail.set_trace_id(info.trace_id);
  if (info.details.is_object()) rest::JsonToStruct(info.details, detail.mutable_details());
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(info.message);
  rich.add_details()->PackFrom(detail);
  return grpc::Status(code, info.message, rich.SerializeAsString());
}

}  // namespace mesa::daemon
