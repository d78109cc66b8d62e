// mesad's metrics: a fixed set of process-wide counters, gauges and fixed-bucket histograms,
// updated lock-free (relaxed atomics) from any thread, and rendered in the Prometheus text
// format by the optional metrics listener (metrics_server.h). Knows nothing of HTTP, FUSE or
// gRPC: the layers that own an event record it here.
//
// Invariant: every family has a fixed name and a fixed label set, so rendering never allocates
// per event and a scrape never blocks an operation.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace mesa::daemon::metrics {

// Bucket upper bounds in seconds, shared by every latency histogram (10 µs .. 10 s).
inline constexpr std::array<double, 19> kLatencyBuckets = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,     0.1,     0.25,   0.5,     1.0,    2.5,   5.0,    10.0};

class Histogram {
 public:
  void Observe(std::chrono::nanoseconds d);
  // Prometheus lines for `name` with the extra label text `labels` (e.g. `op="read"`).
  void Render(const std::string& name, const std::string& labels, std::string* out) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kLatencyBuckets.size() + 1> buckets_{};  // last: +Inf
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> count_{0};
};

// FUSE operations with a latency histogram each (fuse/ records them).
enum class FuseOp : int {
  kLookup, kGetAttr, kSetAttr, kReadLink, kOpen, kOpenDir, kRead, kWrite, kReadDir, kReadDirPlus,
  kCreate, kMkNod, kMkDir, kUnlink, kRmDir, kRename, kFlush, kFsync, kFsyncDir, kStatFs, kXattr,
  kOther, kCount
};
const char* FuseOpName(FuseOp op);

// What the listener renders besides the registry's own families: values owned by other
// components (cache sizes, mounts, sessions), read at scrape time.
struct Sample {
  std::string name;    // family name
  std::string type;    // gauge | counter
  std::string help;
  std::string labels;  // `a="b",c="d"` or empty
  double value = 0;
};

class Registry {
 public:
  // FUSE
  Histogram fuse_ops[static_cast<int>(FuseOp::kCount)];
  // Backend (Mesa REST): one observation per HTTP attempt.
  Histogram backend_requests;
  std::atomic<uint64_t> backend_transport_errors{0};  // no HTTP answer (connect, timeout, reset)
  std::atomic<uint64_t> backend_http_4xx{0};
  std::atomic<uint64_t> backend_http_5xx{0};
  std::atomic<uint64_t> backend_retries{0};
  // gRPC
  std::atomic<int64_t> rpc_inflight{0};
  std::atomic<uint64_t> rpc_total{0};
  // Reloads (SIGHUP)
  std::atomic<uint64_t> reloads{0};
  std::atomic<uint64_t> reload_failures{0};

  // Adds a source of samples read at every scrape (call before the listener starts).
  void AddCollector(std::function<void(std::vector<Sample>*)> collect);

  // The whole exposition, Prometheus text format 0.0.4.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::function<void(std::vector<Sample>*)>> collectors_;
};

// The process's registry.
Registry& Global();

// Observes the time from construction to destruction into a histogram.
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& h) : h_(h), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() { h_.Observe(std::chrono::steady_clock::now() - start_); }

 private:
  Histogram& h_;
  std::chrono::steady_clock::time_point start_;
};

// A label value with `\`, `"` and newlines escaped, in quotes.
std::string Quoted(const std::string& value);

// Resident set size of this process in bytes (/proc/self/statm), 0 if unknown.
uint64_t ResidentBytes();

}  // namespace mesa::daemon::metrics
