#include "daemon/metrics/metrics.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <set>

namespace mesa::daemon::metrics {

namespace {

std::string Number(double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Joined(const std::string& labels, const std::string& more) {
  if (labels.empty()) return more;
  if (more.empty()) return labels;
  return labels + "," + more;
}

void Header(const std::string& name, const char* type, const char* help, std::string* out) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Line(const std::string& name, const std::string& labels, double value, std::string* out) {
  *out += name;
  if (!labels.empty()) *out += "{" + labels + "}";
  *out += " " + Number(value) + "\n";
}

}  // namespace

void Histogram::Observe(std::chrono::nanoseconds d) {
  double s = std::chrono::duration<double>(d).count();
  size_t i = 0;
  while (i < kLatencyBuckets.size() && s > kLatencyBuckets[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, d.count())), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Render(const std::string& name, const std::string& labels, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kLatencyBuckets.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::string le = i < kLatencyBuckets.size() ? Number(kLatencyBuckets[i]) : "+Inf";
    Line(name + "_bucket", Joined(labels, "le=\"" + le + "\""), static_cast<double>(cumulative), out);
  }
  Line(name + "_sum", labels, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9, out);
  // The count is the +Inf bucket, so that a concurrent Observe never makes them disagree.
  Line(name + "_count", labels, static_cast<double>(cumulative), out);
}

const char* FuseOpName(FuseOp op) {
  static const char* const kNames[] = {"lookup", "getattr", "setattr", "readlink", "open", "opendir", "read",
                                       "write", "readdir", "readdirplus", "create", "mknod", "mkdir", "unlink",
                                       "rmdir", "rename", "flush", "fsync", "fsyncdir", "statfs", "xattr", "other"};
  static_assert(sizeof kNames / sizeof kNames[0] == static_cast<size_t>(FuseOp::kCount));
  return kNames[static_cast<int>(op)];
}

void Registry::AddCollector(std::function<void(std::vector<Sample>*)> collect) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() const {
  std::string out;
  out.reserve(32 << 10);

  Header("mesad_fuse_op_duration_seconds", "histogram",
         "Time mesad spent answering FUSE requests, by operation (from the request to the reply).", &out);
  for (int i = 0; i < static_cast<int>(FuseOp::kCount); ++i) {
    fuse_ops[i].Render("mesad_fuse_op_duration_seconds", std::string("op=\"") + FuseOpName(static_cast<FuseOp>(i)) + "\"",
                       &out);
  }

  Header("mesad_backend_request_duration_seconds", "histogram",
         "Duration of HTTP requests to the Mesa API (each attempt of a retried request counts).", &out);
  backend_requests.Render("mesad_backend_request_duration_seconds", "", &out);
  Header("mesad_backend_request_errors_total", "counter",
         "Failed HTTP requests to the Mesa API: kind=transport (no answer), http_4xx, http_5xx.", &out);
  Line("mesad_backend_request_errors_total", "kind=\"transport\"", static_cast<double>(backend_transport_errors.load()), &out);
  Line("mesad_backend_request_errors_total", "kind=\"http_4xx\"", static_cast<double>(backend_http_4xx.load()), &out);
  Line("mesad_backend_request_errors_total", "kind=\"http_5xx\"", static_cast<double>(backend_http_5xx.load()), &out);
  Header("mesad_backend_retries_total", "counter", "Requests to the Mesa API that were retried.", &out);
  Line("mesad_backend_retries_total", "", static_cast<double>(backend_retries.load()), &out);

  Header("mesad_rpc_inflight", "gauge", "gRPC calls being served right now.", &out);
  Line("mesad_rpc_inflight", "", static_cast<double>(rpc_inflight.load()), &out);
  Header("mesad_rpc_total", "counter", "gRPC calls received.", &out);
  Line("mesad_rpc_total", "", static_cast<double>(rpc_total.load()), &out);

  Header("mesad_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.", &out);
  Line("mesad_reloads_total", "result=\"ok\"", static_cast<double>(reloads.load()), &out);
  Line("mesad_reloads_total", "result=\"failed\"", static_cast<double>(reload_failures.load()), &out);

  Header("mesad_process_resident_memory_bytes", "gauge", "Resident set size of mesad.", &out);
  Line("mesad_process_resident_memory_bytes", "", static_cast<double>(ResidentBytes()), &out);

  std::vector<Sample> samples;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : collectors_) c(&samples);
  }
  // One HELP/TYPE per family, its samples together, in the order families first appear.
  std::vector<std::string> order;
  std::set<std::string> seen;
  for (const auto& s : samples) {
    if (seen.insert(s.name).second) order.push_back(s.name);
  }
  for (const auto& name : order) {
    bool first = true;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      if (first) Header(s.name, s.type.c_str(), s.help.c_str(), &out);
      first = false;
      Line(s.name, s.labels, s.value, &out);
    }
  }
  return out;
}

Registry& Global() {
  static Registry* registry = new Registry();  // never destroyed: threads may record at exit
  return *registry;
}

std::string Quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace mesa::daemon::metrics
