// The Mesa REST client: libcurl with pooled keep-alive handles, connect and total timeouts,
// and retries. Idempotent requests (GET, DELETE) are retried on connection errors, 429, 502,
// 503 and 504 with exponential backoff and full jitter, honouring Retry-After; any request is
// retried when the connection could not be made at all (nothing was sent). Non-2xx answers
// become a Status carrying the Mesa error (rest/api_error.h).
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rest/codec.h"

namespace mesa::daemon {

// Where an API lives: an http(s) base URL ending in /v1, optionally reached over a Unix socket.
struct Endpoint {
  std::string base_url;
  std::string unix_socket;  // non-empty: CURLOPT_UNIX_SOCKET_PATH
};

struct RestClientOptions {
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 60000;
  int max_attempts = 4;
  int backoff_initial_ms = 100;
  int backoff_max_ms = 5000;
  std::string user_agent = "mesad";
};

struct RestResponse {
  int status = 0;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;  // lower-case names
  int attempts = 0;
};

class RestClient {
 public:
  explicit RestClient(RestClientOptions options);
  ~RestClient();
  RestClient(const RestClient&) = delete;
  RestClient& operator=(const RestClient&) = delete;

  // Performs `request` with `credential` as the Bearer token. 2xx: the response. Otherwise
  // the Mesa error (HTTP status, code, message, details, trace id) or, when no HTTP answer
  // came, UNAVAILABLE / DEADLINE_EXCEEDED with code BACKEND_UNREACHABLE / BACKEND_TIMEOUT.
  // `sink`, when given, receives the body of a 2xx answer instead of `body`; it returns false
  // to abort.
  absl::StatusOr<RestResponse> Call(const Endpoint& endpoint, const std::string& credential,
                                    const std::string& user_agent_suffix, const rest::RestRequest& request,
                                    const std::function<bool(const char*, size_t)>& sink = nullptr);

  // Parses a JSON answer of Call().
  static absl::StatusOr<nlohmann::json> Json(const RestResponse& response);

  int64_t total_requests() const { return total_requests_; }
  int64_t total_retries() const { return total_retries_; }
  // A copy of the settings. SetOptions (a reload) affects calls that start afterwards.
  RestClientOptions options() const;
  void SetOptions(RestClientOptions options);

 private:
  CURL* Acquire();
  void Release(CURL* handle);

  mutable std::mutex options_mu_;
  RestClientOptions options_;
  std::mutex mu_;
  std::vector<CURL*> idle_;
  std::atomic<int64_t> total_requests_{0};
  std::atomic<int64_t> total_retries_{0};
};

// Delay before the next try: Retry-After (seconds or HTTP-date) when present, else
// exponential backoff with full jitter. Exposed for tests.
int64_t RetryDelayMs(int attempt, const RestClientOptions& options, const std::string& retry_after);

}  // namespace mesa::daemon
