#include "daemon/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace mesa::daemon {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mu;
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

bool ParseLogLevel(std::string_view t, LogLevel* out) {
  if (t == "error") *out = LogLevel::kError;
  else if (t == "warning" || t == "warn") *out = LogLevel::kWarning;
  else if (t == "info") *out = LogLevel::kInfo;
  else if (t == "debug") *out = LogLevel::kDebug;
  else return false;
  return true;
}

void LogLine(LogLevel level, std::string_view message) {
  std::lock_guard<std::mutex> lock(g_mu);
  fprintf(stderr, "<%d>mesad: %.*s\n", static_cast<int>(level), static_cast<int>(message.size()), message.data());
  fflush(stderr);
}

}  // namespace mesa::daemon
