#include "rest/api_error.h"

#include "absl/strings/cord.h"

namespace mesa::rest {
namespace {

constexpr absl::string_view kPayloadUrl = "type.mesa.dev/mesa.rest.ApiError";

int HttpForAbslCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    case absl::StatusCode::kUnimplemented: return 501;
    default: return 500;
  }
}

std::string DefaultCodeForHttp(int http) {
  switch (http) {
    case 400: return "VALIDATION_ERROR";
    case 401: return "UNAUTHENTICATED";
    case 403: return "FORBIDDEN";
    case 404: return "NOT_FOUND";
    case 405: return "METHOD_NOT_ALLOWED";
    case 406: return "NOT_ACCEPTABLE";
    case 409: return "CONFLICT";
    case 413: return "PAYLOAD_TOO_LARGE";
    case 429: return "RATE_LIMITED";
    case 501: return "NOT_IMPLEMENTED";
    case 503: return "UNAVAILABLE";
    default: return http >= 500 ? "INTERNAL_ERROR" : "ERROR";
  }
}

}  // namespace

absl::StatusCode StatusCodeForHttp(int http) {
  switch (http) {
    case 400: case 406: case 413: case 422: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 405: return absl::StatusCode::kUnimplemented;
    case 409: return absl::StatusCode::kAborted;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 501: return absl::StatusCode::kUnimplemented;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default:
      if (http >= 500) return absl::StatusCode::kUnavailable;
      if (http >= 400) return absl::StatusCode::kInvalidArgument;
      return absl::StatusCode::kUnknown;
  }
}

absl::Status ApiError(int http_status, std::string_view code, std::string_view message,
                      nlohmann::json details) {
  absl::Status status(http_status >= 500 && http_status != 501 && http_status != 503
                          ? absl::StatusCode::kInternal
                          : StatusCodeForHttp(http_status),
                      absl::string_view(message.data(), message.size()));
  nlohmann::json payload = {{"http", http_status}, {"code", code}};
  if (!details.is_null()) payload["details"] = std::move(details);
  status.SetPayload(kPayloadUrl, absl::Cord(payload.dump()));
  return status;
}

absl::Status LocalError(absl::StatusCode code, std::string_view mesa_code, std::string_view message) {
  absl::Status status(code, absl::string_view(message.data(), message.size()));
  nlohmann::json payload = {{"http", 0}, {"code", mesa_code}};
  status.SetPayload(kPayloadUrl, absl::Cord(payload.dump()));
  return status;
}

absl::Status WithTraceId(const absl::Status& status, std::string_view trace_id) {
  absl::Status out = status;
  auto payload = status.GetPayload(kPayloadUrl);
  nlohmann::json j = payload ? nlohmann::json::parse(std::string(*payload), nullptr, false) : nlohmann::json::object();
  if (!j.is_object()) j = nlohmann::json::object();
  j["trace_id"] = trace_id;
  out.SetPayload(kPayloadUrl, absl::Cord(j.dump()));
  return out;
}

absl::Status FieldError(std::string_view field, std::string_view message) {
  return ApiError(400, "VALIDATION_ERROR", std::string(field) + ": " + std::string(message),
                  {{"errors", nlohmann::json::array({{{"field", field}, {"message", message}}})}});
}

absl::Status BadRequest(std::string_view message) {
  return ApiError(400, "VALIDATION_ERROR", message);
}

absl::Status NotFoundError(std::string_view code, std::string_view message) {
  return ApiError(404, code, message);
}

absl::Status ConflictError(std::string_view code, std::string_view message,
                           nlohmann::json details) {
  return ApiError(409, code, message, std::move(details));
}

absl::Status InternalError(std::string_view message) {
  return ApiError(500, "INTERNAL_ERROR", message);
}

ApiErrorInfo ErrorInfoFromStatus(const absl::Status& status) {
  ApiErrorInfo info;
  info.message = std::string(status.message());
  if (auto payload = status.GetPayload(kPayloadUrl)) {
    auto j = nlohmann::json::parse(std::string(*payload), nullptr, false);
    if (j.is_object()) {
      info.http_status = j.value("http", 500);
      info.code = j.value("code", DefaultCodeForHttp(info.http_status == 0 ? HttpForAbslCode(status.code()) : info.http_status));
      if (j.contains("details")) info.details = j["details"];
      if (j.contains("trace_id")) info.trace_id = j["trace_id"].get<std::string>();
      return info;
    }
  }
  info.http_status = HttpForAbslCode(status.code());
  info.code = DefaultCodeForHttp(info.http_status);
  return info;
}

nlohmann::json ErrorEnvelope(const ApiErrorInfo& info) {
  nlohmann::json err = {{"code", info.code}, {"message", info.message}};
  if (!info.details.is_null()) err["details"] = info.details;
  if (!info.trace_id.empty()) err["trace_id"] = info.trace_id;
  return {{"error", std::move(err)}};
}

ApiErrorInfo ParseErrorEnvelope(int http_status, std::string_view body) {
  ApiErrorInfo info;
  info.http_status = http_status;
  info.code = DefaultCodeForHttp(http_status);
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& e = j["error"];
    if (e.contains("code") && e["code"].is_string()) info.code = e["code"].get<std::string>();
    if (e.contains("message") && e["message"].is_string())
      info.message = e["message"].get<std::string>();
    if (e.contains("details")) info.details = e["details"];
    if (e.contains("trace_id") && e["trace_id"].is_string())
      info.trace_id = e["trace_id"].get<std::string>();
  } else {
    info.message = std::string(body.substr(0, 512));
  }
  if (info.message.empty()) info.message = "HTTP " + std::to_string(http_status);
  return info;
}

}  // namespace mesa::rest
