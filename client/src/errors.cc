#include "mesa/errors.h"

#include "google/rpc/status.pb.h"
#include "mesa/daemon/v1/api.pb.h"
#include "rest/codec.h"

namespace mesa {

void ThrowForStatus(const grpc::Status& status) {
  mesa::daemon::v1::ErrorDetail detail;
  bool have_detail = false;
  if (!status.error_details().empty()) {
    google::rpc::Status rich;
    if (rich.ParseFromString(status.error_details())) {
      for (const auto& any : rich.details()) {
        if (any.UnpackTo(&detail)) have_detail = true;
      }
    }
  }
  std::string message = have_detail ? detail.message() : status.error_message();
  std::string code = have_detail ? detail.code() : "";
  int http = have_detail ? detail.http_status() : 0;
  std::string trace = have_detail ? detail.trace_id() : "";
  nlohmann::json details = have_detail && detail.has_details() ? rest::StructToJson(detail.details()) : nlohmann::json();
  grpc::StatusCode g = status.error_code();
  if (!have_detail && (g == grpc::StatusCode::UNAVAILABLE || g == grpc::StatusCode::DEADLINE_EXCEEDED)) {
    throw DaemonUnavailableError("DAEMON_UNAVAILABLE", "mesad is not reachable: " + status.error_message());
  }
  if (code.empty()) code = "GRPC_" + std::to_string(static_cast<int>(g));
  switch (g) {
    case grpc::StatusCode::INVALID_ARGUMENT: throw ValidationError(g, http, code, message, trace, details);
    case grpc::StatusCode::UNAUTHENTICATED:
      if (code == "WEBHOOK_VERIFICATION_FAILED") throw WebhookVerificationError(code, message);
      throw AuthenticationError(g, http, code, message, trace, details);
    case grpc::StatusCode::PERMISSION_DENIED: throw AuthorizationError(g, http, code, message, trace, details);
    case grpc::StatusCode::NOT_FOUND: throw NotFoundError(g, http, code, message, trace, details);
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::ALREADY_EXISTS: throw ConflictError(g, http, code, message, trace, details);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: throw RateLimitError(g, http, code, message, trace, details);
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::DEADLINE_EXCEEDED: throw ServerError(g, http, code, message, trace, details);
    case grpc::StatusCode::FAILED_PRECONDITION:
      // errno-coded filesystem errors (ENOTDIR, EISDIR, EROFS, ...) and other refusals
      throw ValidationError(g, http, code, message, trace, details);
    default: throw ApiError(g, http, code, message, trace, details);
  }
}

}  // namespace mesa
