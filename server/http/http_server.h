// HTTP/1.1 front end (cpp-httplib) for the API: TCP or Unix-socket listeners, keep-alive,
// a body size limit, and one access-log line per request.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/api/service.h"
#include "server/webhooks/delivery.h"

namespace mesa::server {

struct HttpServerOptions {
  int threads = 32;
  size_t max_body_bytes = 128u << 20;
  int keep_alive_seconds = 30;
  // "" or "stderr": log to stderr; "off": no access log; anything else: append to that file.
  std::string access_log;
  // The webhook delivery worker runs while the server does (Run() .. Stop()).
  webhooks::DeliveryOptions webhooks;
};

class HttpServer {
 public:
  HttpServer(api::ApiService* api, HttpServerOptions options);
  ~HttpServer();

  // `listen` is HOST:PORT (port 0 picks a free one) or unix:PATH (a stale socket file is
  // replaced; the socket is created 0600 unless `unix_mode` says otherwise).
  absl::Status Bind(const std::string& listen, int unix_mode = 0600);
  int port() const { return port_; }
  const std::string& address() const { return address_; }

  void Run();   // serves (and delivers webhooks) until Stop()
  void Stop();  // safe from any thread; also stops webhook delivery (within a second)

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::string address_;
};

}  // namespace mesa::server
