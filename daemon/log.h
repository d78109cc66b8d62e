// Leveled logging to stderr. Lines start with a syslog priority prefix ("<6>") that journald
// turns into the record's priority. Never log credentials.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace mesa::daemon {

enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool ParseLogLevel(std::string_view text, LogLevel* out);
void LogLine(LogLevel level, std::string_view message);

class LogMessage {
 public:
  explicit LogMessage(LogLevel level) : level_(level) {}
  ~LogMessage() { LogLine(level_, stream_.str()); }
  template <typename T>
  LogMessage& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace mesa::daemon

// A statement (no dangling else); the message is only built when the level is enabled.
#define MESA_LOG(level)                                                                           \
  for (bool mesa_log_once_ = static_cast<int>(::mesa::daemon::LogLevel::level) <=                \
                             static_cast<int>(::mesa::daemon::GetLogLevel());                     \
       mesa_log_once_; mesa_log_once_ = false)                                                    \
  ::mesa::daemon::LogMessage(::mesa::daemon::LogLevel::level)
