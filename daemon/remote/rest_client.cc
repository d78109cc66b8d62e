#include "daemon/remote/rest_client.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "daemon/log.h"
#include "daemon/metrics/metrics.h"
#include "rest/api_error.h"

namespace mesa::daemon {
namespace {

struct Exchange {
  RestResponse* response;
  const std::function<bool(const char*, size_t)>* sink;
  CURL* curl;
  bool decided = false;   // whether the body goes to the sink is decided at its first byte
  bool streaming = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after 100-continue or a redirect)
    ex->response->headers.clear();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
    ex->response->headers[name] = value;
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t len = size * n;
  if (!ex->decided) {
    ex->decided = true;
    long code = 0;  // the status line is parsed by the time body bytes arrive
    curl_easy_getinfo(ex->curl, CURLINFO_RESPONSE_CODE, &code);
    ex->streaming = ex->sink && *ex->sink && code >= 200 && code < 300;
  }
  if (ex->streaming) return (*ex->sink)(data, len) ? len : 0;
  ex->response->body.append(data, len);
  return len;
}

bool LocalEndpoint(const Endpoint& ep) {
  if (!ep.unix_socket.empty()) return true;
  for (const char* local : {"http://127.", "http://localhost", "http://[::1]"}) {
    if (ep.base_url.rfind(local, 0) == 0) return true;
  }
  return false;
}

bool RetryableStatus(int status) { return status == 429 || status == 502 || status == 503 || status == 504; }

// Errors after which nothing reached the server: safe to retry any method.
bool NothingSent(CURLcode rc) {
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
}

bool TransportRetryable(CURLcode rc) {
  return NothingSent(rc) || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
         rc == CURLE_PARTIAL_FILE || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SSL_CONNECT_ERROR;
}

std::string BuildUrl(const Endpoint& ep, const rest::RestRequest& req, CURL* curl) {
  std::string url = ep.base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += req.path;
  char sep = '?';
  for (const auto& [k, v] : req.query) {
    char* ek = curl_easy_escape(curl, k.c_str(), static_cast<int>(k.size()));
    char* ev = curl_easy_escape(curl, v.c_str(), static_cast<int>(v.size()));
    url += sep;
    url += ek;
    url += '=';
    url += ev;
    curl_free(ek);
    curl_free(ev);
    sep = '&';
  }
  return url;
}

}  // namespace

int64_t RetryDelayMs(int attempt, const RestClientOptions& o, const std::string& retry_after) {
  if (!retry_after.empty()) {
    char* end = nullptr;
    long secs = strtol(retry_after.c_str(), &end, 10);
    if (end && *end == '\0' && secs >= 0) return std::min<int64_t>(secs * 1000, 60000);
    time_t when = curl_getdate(retry_after.c_str(), nullptr);
    if (when > 0) {
      int64_t ms = (static_cast<int64_t>(when) - time(nullptr)) * 1000;
      return std::clamp<int64_t>(ms, 0, 60000);
    }
  }
  int64_t cap = std::min<int64_t>(o.backoff_max_ms, static_cast<int64_t>(o.backoff_initial_ms) << std::min(attempt, 20));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(cap, 1))(rng);
}

RestClient::RestClient(RestClientOptions options) : options_(std::move(options)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

RestClientOptions RestClient::options() const {
  std::lock_guard<std::mutex> lock(options_mu_);
  return options_;
}

void RestClient::SetOptions(RestClientOptions options) {
  std::lock_guard<std::mutex> lock(options_mu_);
  options_ = std::move(options);
}

RestClient::~RestClient() {
  for (CURL* h : idle_) curl_easy_cleanup(h);
}

CURL* RestClient::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void RestClient::Release(CURL* handle) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < 32) idle_.push_back(handle);
  else curl_easy_cleanup(handle);
}

absl::StatusOr<RestResponse> RestClient::Call(const Endpoint& ep, const std::string& credential,
                                              const std::string& ua_suffix, const rest::RestRequest& req,
                                              const std::function<bool(const char*, size_t)>& sink) {
  const RestClientOptions o = options();  // this call's settings (a reload may change them)
  std::string body = req.body ? req.body->dump() : std::string();
  std::string user_agent = o.user_agent + (ua_suffix.empty() ? "" : " " + ua_suffix);
  // A call-wide deadline bounds every attempt and the waits between them.
  auto deadline = req.timeout_ms > 0 ? std::chrono::steady_clock::now() + std::chrono::milliseconds(req.timeout_ms)
                                     : std::chrono::steady_clock::time_point::max();
  auto remaining_ms = [&]() -> int64_t {
    if (deadline == std::chrono::steady_clock::time_point::max()) return o.request_timeout_ms;
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  };
  for (int attempt = 0;; ++attempt) {
    CURL* curl = Acquire();
    curl_easy_reset(curl);  // keeps the connection cache: keep-alive survives
    RestResponse response;
    response.attempts = attempt + 1;
    Exchange ex{&response, &sink, curl};
    std::string url = BuildUrl(ep, req, curl);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    if (!ep.unix_socket.empty()) curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, ep.unix_socket.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    int64_t budget = std::max<int64_t>(1, std::min<int64_t>(remaining_ms(), o.request_timeout_ms));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(o.connect_timeout_ms, budget)));
    if (req.stall_timeout_ms > 0) {
      // Large downloads: no limit on the whole transfer, only on silence.
      curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 0L);
      curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(req.stall_timeout_ms / 1000)));
    } else {
      curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(budget));
    }
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent.c_str());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ex);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ex);
    // Compression pays on a network, not on a local socket or loopback, where it only costs the
    // server CPU (about 1 ms per small JSON answer with brotli).
    if (!LocalEndpoint(ep)) curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (req.method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    struct curl_slist* headers = nullptr;
    std::string auth = "Authorization: Bearer " + credential;
    headers = curl_slist_append(headers, auth.c_str());
    std::string accept = "Accept: " + (req.accept.empty() ? std::string("application/json") : req.accept);
    headers = curl_slist_append(headers, accept.c_str());
    if (req.body) {
      headers = curl_slist_append(headers, "Content-Type: application/json");
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    ++total_requests_;
    auto& m = metrics::Global();
    auto started = std::chrono::steady_clock::now();
    CURLcode rc = curl_easy_perform(curl);
    m.backend_requests.Observe(std::chrono::steady_clock::now() - started);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && ex.streaming)) {
      m.backend_transport_errors.fetch_add(1, std::memory_order_relaxed);
    } else if (status >= 500) {
      m.backend_http_5xx.fetch_add(1, std::memory_order_relaxed);
    } else if (status >= 400) {
      m.backend_http_4xx.fetch_add(1, std::memory_order_relaxed);
    }
    curl_slist_free_all(headers);
    Release(curl);
    response.status = static_cast<int>(status);
    response.content_type = response.headers.count("content-type") ? response.headers["content-type"] : "";

    bool last = attempt + 1 >= o.max_attempts || remaining_ms() <= 0;
    if (rc == CURLE_WRITE_ERROR && ex.streaming)
      return rest::LocalError(absl::StatusCode::kAborted, "ABORTED", "response consumer stopped");
    if (rc != CURLE_OK) {
      // A partly streamed body cannot be taken back: no retry once the sink has bytes.
      bool retry = !last && !ex.streaming && TransportRetryable(rc) && (req.Idempotent() || NothingSent(rc));
      MESA_LOG(kDebug) << "rest " << req.method << " " << req.path << ": " << curl_easy_strerror(rc)
                       << (retry ? " (retrying)" : "");
      if (retry) {
        ++total_retries_;
        m.backend_retries.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(
            std::min<int64_t>(RetryDelayMs(attempt, o, ""), std::max<int64_t>(0, remaining_ms()))));
        continue;
      }
      bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
      std::string message = std::string("Mesa API ") + (timeout ? "timed out" : "unreachable") + " (" +
                            ep.base_url + "): " + curl_easy_strerror(rc);
      return rest::LocalError(timeout ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable,
                              timeout ? "BACKEND_TIMEOUT" : "BACKEND_UNREACHABLE", message);
    }
    if (status >= 200 && status < 300) {
      return response;
    }
    if (!last && RetryableStatus(static_cast<int>(status)) && req.Idempotent()) {
      ++total_retries_;
      m.backend_retries.fetch_add(1, std::memory_order_relaxed);
      std::string retry_after = response.headers.count("retry-after") ? response.headers["retry-after"] : "";
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::min<int64_t>(RetryDelayMs(attempt, o, retry_after), std::max<int64_t>(0, remaining_ms()))));
      continue;
    }
    rest::ApiErrorInfo info = rest::ParseErrorEnvelope(static_cast<int>(status), response.body);
    absl::Status err = rest::ApiError(info.http_status, info.code, info.message, info.details);
    if (!info.trace_id.empty()) err = rest::WithTraceId(err, info.trace_id);
    return err;
  }
}

absl::StatusOr<nlohmann::json> RestClient::Json(const RestResponse& response) {
  auto j = nlohmann::json::parse(response.body, nullptr, false);
  if (j.is_discarded())
    return rest::LocalError(absl::StatusCode::kUnavailable, "BAD_RESPONSE", "the Mesa API answered with invalid JSON");
  return j;
}

}  // namespace mesa::daemon
