#include "daemon/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "daemon/log.h"
#include "rest/api_error.h"

namespace mesa::daemon::metrics {

namespace {

bool SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string Response(int code, const char* reason, const std::string& content_type, const std::string& body,
                     bool head) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + content_type +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen, Registry* registry) {
  auto s = std::unique_ptr<MetricsServer>(new MetricsServer());
  s->registry_ = registry;
  if (listen.rfind("unix:", 0) == 0) {
    std::string path = listen.substr(5);
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
      return rest::InternalError("metrics_listen: unix socket path is empty or too long: " + path);
    s->fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd_ < 0) return rest::InternalError(std::string("metrics socket: ") + strerror(errno));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.c_str(), path.size());
    unlink(path.c_str());
    if (bind(s->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(s->fd_, 64) != 0)
      return rest::InternalError("metrics_listen: cannot listen on " + path + ": " + strerror(errno));
    chmod(path.c_str(), 0666);
    s->unix_path_ = path;
    s->address_ = listen;
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos) return rest::InternalError("metrics_listen must be HOST:PORT or unix:PATH, got " + listen);
    std::string host = listen.substr(0, colon);
    std::string port = listen.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res)
      return rest::InternalError("metrics_listen " + listen + ": " + gai_strerror(rc));
    s->fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->fd_ >= 0) setsockopt(s->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = s->fd_ >= 0 && bind(s->fd_, res->ai_addr, res->ai_addrlen) == 0 && ::listen(s->fd_, 64) == 0;
    int err = errno;
    freeaddrinfo(res);
    if (!ok) return rest::InternalError("metrics_listen: cannot listen on " + listen + ": " + strerror(err));
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(s->fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    int bound_port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                  : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    s->address_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(bound_port);
  }
  s->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  MetricsServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->Loop(); });
  return s;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (fd_ >= 0) close(fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (!unix_path_.empty()) unlink(unix_path_.c_str());
}

void MetricsServer::Loop() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EMFILE || errno == ENFILE) usleep(10000);
      continue;
    }
    Serve(conn);
    close(conn);
  }
}

void MetricsServer::Serve(int conn) {
  // A slow or silent client cannot hold the listener for more than two seconds.
  timeval tv{2, 0};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.find("\n\n") == std::string::npos) {
    if (request.size() > 16384) return;
    ssize_t r = recv(conn, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    request.append(buf, static_cast<size_t>(r));
  }
  std::string line = request.substr(0, request.find_first_of("\r\n"));
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  std::string method = line.substr(0, sp1);
  std::string target = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 == std::string::npos ? sp2 : sp2 - sp1 - 1);
  std::string path = target.substr(0, target.find('?'));
  bool head = method == "HEAD";
  if (method != "GET" && !head) {
    SendAll(conn, Response(405, "Method Not Allowed", "text/plain", "only GET /metrics\n", false));
  } else if (path == "/metrics") {
    SendAll(conn, Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry_->Render(), head));
  } else {
    SendAll(conn, Response(404, "Not Found", "text/plain", "mesad serves /metrics only\n", head));
  }
}

}  // namespace mesa::daemon::metrics
