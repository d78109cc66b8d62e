// The optional Prometheus endpoint: a tiny read-only HTTP/1.1 listener of its own (TCP
// HOST:PORT or unix:PATH), separate from the gRPC socket and its authorization, answering
// `GET /metrics` with Registry::Render() and nothing else (no config, no credentials). One
// connection at a time, one request per connection; a scrape is a few hundred microseconds.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "daemon/metrics/metrics.h"

namespace mesa::daemon::metrics {

class MetricsServer {
 public:
  // `listen`: "HOST:PORT" (port 0 picks a free one) or "unix:PATH" (socket mode 0666: metrics
  // are not secret, and the listener serves nothing else).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen, Registry* registry);
  ~MetricsServer();

  // "127.0.0.1:9464" (the port actually bound) or "unix:/path".
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  void Loop();
  void Serve(int conn);

  Registry* registry_ = nullptr;
  int fd_ = -1;
  int wake_fd_ = -1;
  std::string address_;
  std::string unix_path_;
  std::thread thread_;
};

}  // namespace mesa::daemon::metrics
