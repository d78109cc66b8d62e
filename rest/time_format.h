#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mesa::rest {

int64_t NowUnixMillis();

// "2026-11-29T14:36:14.123Z" (UTC, millisecond precision).
std::string FormatRfc3339Millis(int64_t unix_millis);
// "2026-11-29T14:36:14+01:00" style from seconds and a UTC offset in minutes.
std::string FormatRfc3339Seconds(int64_t unix_seconds, int offset_minutes);

struct ParsedTime {
  int64_t unix_seconds = 0;
  int offset_minutes = 0;
};
// Accepts RFC 3339 date-times: fractional seconds, 'Z' or +hh:mm offsets.
std::optional<ParsedTime> ParseRfc3339(std::string_view text);

}  // namespace mesa::rest
