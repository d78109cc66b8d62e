#include "server/http/http_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <dirent.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "rest/api_error.h"
#include "rest/time_format.h"

namespace mesa::server {
namespace {

// cpp-httplib 0.11 binds TCP only; its accept loop works on any listening socket, which
// it keeps in the protected `svr_sock_`.
class AdoptingServer : public httplib::Server {
 public:
  void Adopt(int fd) { svr_sock_ = fd; }
  int listening_socket() const { return svr_sock_; }
};

class AccessLog {
 public:
  explicit AccessLog(const std::string& target) {
    if (target == "off") return;
    enabled_ = true;
    if (!target.empty() && target != "stderr") {
      file_ = fopen(target.c_str(), "a");
    }
  }
  ~AccessLog() {
    if (file_) fclose(file_);
  }
  void Write(const httplib::Request& req, const httplib::Response& res, double ms) {
    if (!enabled_) return;
    size_t bytes = res.body.size();
    std::lock_guard<std::mutex> lock(mu_);
    FILE* out = file_ ? file_ : stderr;
    // Never the headers: they carry credentials.
    fprintf(out, "%s access method=%s path=%s status=%d bytes=%zu duration_ms=%.3f\n",
            rest::FormatRfc3339Millis(rest::NowUnixMillis()).c_str(), req.method.c_str(),
            req.target.c_str(), res.status, bytes, ms);
    fflush(out);
  }

 private:
  bool enabled_ = false;
  FILE* file_ = nullptr;
  std::mutex mu_;
};

thread_local std::chrono::steady_clock::time_point request_start;

}  // namespace

class HttpServer::Impl {
 public:
  Impl(api::ApiService* api, const HttpServerOptions& o) : log(o.access_log) {
    if (o.webhooks.enabled && api->store()) worker = std::make_unique<webhooks::DeliveryWorker>(api->store(), o.webhooks);
    int threads = o.threads;
    server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    // Without TCP_NODELAY, a keep-alive response written in two segments (headers, body) waits
    // for the client's delayed ACK: ~40 ms per request for every HTTP/1.1 client (the SDK's fetch).
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(100000);
    server.set_keep_alive_timeout(o.keep_alive_seconds);
    server.set_payload_max_length(o.max_body_bytes);
    server.set_read_timeout(60, 0);
    server.set_write_timeout(60, 0);
    server.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      request_start = std::chrono::steady_clock::now();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    auto handler = [api](const httplib::Request& req, httplib::Response& res) { api->Handle(req, res); };
    server.Get(".*", handler);
    server.Post(".*", handler);
    server.Patch(".*", handler);
    server.Delete(".*", handler);
    server.Put(".*", handler);
    server.Options(".*", handler);
    // Errors cpp-httplib produces itself (413, 400 on a bad request line) get our envelope.
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      int status = res.status;
      std::string code = status == 413 ? "PAYLOAD_TOO_LARGE" : "BAD_REQUEST";
      api::ApiService::RenderError(rest::ApiError(status, code, status == 413 ? "request body is too large" : "bad request"), res);
      res.status = status;
      return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - request_start).count();
      log.Write(req, res, ms);
    });
  }

  AdoptingServer server;
  AccessLog log;
  std::string unix_path;
  std::unique_ptr<webhooks::DeliveryWorker> worker;
};

HttpServer::HttpServer(api::ApiService* api, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(api, options)) {}

HttpServer::~HttpServer() {
  Stop();
  if (!impl_->unix_path.empty()) unlink(impl_->unix_path.c_str());
}

absl::Status HttpServer::Bind(const std::string& listen, int unix_mode) {
  if (listen.rfind("unix:", 0) == 0) {
    std::string path = listen.substr(5);
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
      return rest::InternalError("unix socket path is empty or too long: " + path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return rest::InternalError("socket: " + std::string(strerror(errno)));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.c_str(), path.size());
    unlink(path.c_str());
    mode_t old = umask(0777 & ~static_cast<mode_t>(unix_mode));
    int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    umask(old);
    if (rc < 0 || ::listen(fd, 512) < 0) {
      std::string err = strerror(errno);
      close(fd);
      return rest::InternalError("cannot listen on " + path + ": " + err);
    }
    impl_->server.Adopt(fd);
    impl_->unix_path = path;
    address_ = listen;
    return absl::OkStatus();
  }
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return rest::InternalError("listen must be HOST:PORT or unix:PATH, got " + listen);
  std::string host = listen.substr(0, colon);
  if (host.empty()) host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return rest::InternalError("bad port in " + listen);
  }
  if (port == 0) {
    port = impl_->server.bind_to_any_port(host);
    if (port < 0) return rest::InternalError("cannot listen on " + listen);
  } else if (!impl_->server.bind_to_port(host, port)) {
    return rest::InternalError("cannot listen on " + listen + ": " + strerror(errno));
  }
  port_ = port;
  address_ = host + ":" + std::to_string(port);
  return absl::OkStatus();
}

void HttpServer::Run() {
  if (impl_->worker) impl_->worker->Start();
  impl_->server.listen_after_bind();
  if (impl_->worker) impl_->worker->Stop();
}

namespace {

// cpp-httplib waits out the keep-alive timeout of idle connections when it stops. Wake them:
// shut down every socket of this process whose local address is the server's and that is
// not a listener (clients in this process have other local addresses).
void ShutdownAcceptedConnections(const sockaddr_storage& server_addr, socklen_t server_len) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    int fd = atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || listening) continue;
    bool same = false;
    if (addr.ss_family == AF_UNIX && server_addr.ss_family == AF_UNIX) {
      same = len == server_len && memcmp(&addr, &server_addr, len) == 0;
    } else if (addr.ss_family == AF_INET && server_addr.ss_family == AF_INET) {
      same = reinterpret_cast<sockaddr_in*>(&addr)->sin_port == reinterpret_cast<const sockaddr_in*>(&server_addr)->sin_port;
    } else if (addr.ss_family == AF_INET6 && server_addr.ss_family == AF_INET6) {
      same = reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port == reinterpret_cast<const sockaddr_in6*>(&server_addr)->sin6_port;
    }
    if (same) shutdown(fd, SHUT_RDWR);
  }
  closedir(dir);
}

}  // namespace

void HttpServer::Stop() {
  if (!impl_) return;
  if (impl_->worker) impl_->worker->Stop();
  if (!impl_->server.is_running()) return;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  bool have_addr = getsockname(impl_->server.listening_socket(), reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  impl_->server.stop();
  if (have_addr) ShutdownAcceptedConnections(addr, len);
}

}  // namespace mesa::server
