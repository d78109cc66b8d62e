// Typed errors of the mesad client library, mirroring the Mesa SDK's:
//   MesaError <- ApiError <- ValidationError (400/406), AuthenticationError (401),
//   AuthorizationError (403), NotFoundError (404), ConflictError (409), RateLimitError (429),
//   ServerError (5xx); MesaError <- WebhookVerificationError, DaemonUnavailableError.
#pragma once

#include <grpcpp/support/status.h>

#include <stdexcept>
#include <string>

#include "nlohmann/json.hpp"

namespace mesa {

class MesaError : public std::runtime_error {
 public:
  MesaError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  // The Mesa error code (e.g. MERGE_CONFLICT) or a client/daemon code (e.g. NOT_LOGGED_IN).
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

class ApiError : public MesaError {
 public:
  ApiError(grpc::StatusCode grpc_code, int http_status, std::string code, const std::string& message,
           std::string trace_id, nlohmann::json details)
      : MesaError(std::move(code), message), grpc_code_(grpc_code), http_status_(http_status),
        trace_id_(std::move(trace_id)), details_(std::move(details)) {}
  grpc::StatusCode grpc_code() const { return grpc_code_; }
  int http_status() const { return http_status_; }  // 0 when no HTTP answer was involved
  const std::string& trace_id() const { return trace_id_; }
  const nlohmann::json& details() const { return details_; }

 private:
  grpc::StatusCode grpc_code_;
  int http_status_;
  std::string trace_id_;
  nlohmann::json details_;
};

#define MESA_API_ERROR_CLASS(Name) \
  class Name : public ApiError {   \
   public:                         \
    using ApiError::ApiError;      \
  };
MESA_API_ERROR_CLASS(ValidationError)
MESA_API_ERROR_CLASS(AuthenticationError)
MESA_API_ERROR_CLASS(AuthorizationError)
MESA_API_ERROR_CLASS(NotFoundError)
MESA_API_ERROR_CLASS(ConflictError)
MESA_API_ERROR_CLASS(RateLimitError)
MESA_API_ERROR_CLASS(ServerError)
#undef MESA_API_ERROR_CLASS

class WebhookVerificationError : public MesaError {
 public:
  using MesaError::MesaError;
};

// mesad could not be reached at all (no socket, daemon down).
class DaemonUnavailableError : public MesaError {
 public:
  using MesaError::MesaError;
};

// Throws the typed error for a failed call (decoding mesad's ErrorDetail).
[[noreturn]] void ThrowForStatus(const grpc::Status& status);

}  // namespace mesa
