// Mesa's REST error model carried inside absl::Status.
//
// Every fallible call returns absl::Status/StatusOr. A Mesa API error keeps its exact HTTP
// status, Mesa error code and details in a payload, so the server renders the envelope
// `{"error":{"code","message","details"?,"trace_id"?}}` and the daemon maps it to gRPC
// without losing anything.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace mesa::rest {

struct ApiErrorInfo {
  int http_status = 500;
  std::string code = "INTERNAL_ERROR";
  std::string message;
  nlohmann::json details;  // null when absent
  std::string trace_id;    // empty when absent
};

absl::Status ApiError(int http_status, std::string_view code, std::string_view message,
                      nlohmann::json details = nullptr);

// An error that did not come from an HTTP answer (http_status 0): transport failures,
// daemon-side checks. `code` is the Mesa-style code carried to clients.
absl::Status LocalError(absl::StatusCode code, std::string_view mesa_code, std::string_view message);

// Attaches the server's trace id to a Mesa error.
absl::Status WithTraceId(const absl::Status& status, std::string_view trace_id);

// 400 with `details.errors = [{field, message}]`.
absl::Status FieldError(std::string_view field, std::string_view message);
absl::Status BadRequest(std::string_view message);
absl::Status NotFoundError(std::string_view code, std::string_view message);
absl::Status ConflictError(std::string_view code, std::string_view message,
                           nlohmann::json details = nullptr);
absl::Status InternalError(std::string_view message);

// Recovers the Mesa view of any status (non-Mesa statuses map by their absl code).
ApiErrorInfo ErrorInfoFromStatus(const absl::Status& status);

nlohmann::json ErrorEnvelope(const ApiErrorInfo& info);

// Parses a server's error body; tolerates non-JSON bodies (message = raw text).
ApiErrorInfo ParseErrorEnvelope(int http_status, std::string_view body);

absl::StatusCode StatusCodeForHttp(int http_status);

}  // namespace mesa::rest
