// Mesa webhook signatures, as @mesadev/sdk 0.38.0 verifies them:
//   x-mesa-signature: t=<unix seconds>,sha256=<lowercase hex HMAC-SHA256(secret, "<t>." + body)>
// The secret's UTF-8 bytes (whsec_ prefix included) are the HMAC key. Shared by mesa-server
// (signing), mesad and the client library (verifying).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mesa::rest {

inline constexpr std::string_view kWebhookSignatureHeader = "x-mesa-signature";
inline constexpr int64_t kWebhookToleranceSeconds = 300;

std::string WebhookSignatureHex(std::string_view secret, int64_t timestamp, std::string_view body);

// The full header value for `body` signed at `timestamp`.
std::string SignWebhook(std::string_view secret, int64_t timestamp, std::string_view body);

// OK when `header` carries a valid signature of `body` no older than `tolerance` seconds
// (and not more than `tolerance` in the future). Errors: UNAUTHENTICATED with code
// WEBHOOK_VERIFICATION_FAILED and a reason. Comparison is constant-time.
absl::Status VerifyWebhookSignature(std::string_view secret, std::string_view header, std::string_view body,
                                    int64_t now_seconds, int64_t tolerance = kWebhookToleranceSeconds);

}  // namespace mesa::rest
