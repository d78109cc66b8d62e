#include "rest/webhook_signature.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "rest/api_error.h"
#include "rest/encoding.h"

namespace mesa::rest {
namespace {

absl::Status Fail(std::string_view reason) {
  return LocalError(absl::StatusCode::kUnauthenticated, "WEBHOOK_VERIFICATION_FAILED", reason);
}

}  // namespace

std::string WebhookSignatureHex(std::string_view secret, int64_t timestamp, std::string_view body) {
  std::string message = std::to_string(timestamp) + "." + std::string(body);
  return HexEncode(HmacSha256(secret, message));
}

std::string SignWebhook(std::string_view secret, int64_t timestamp, std::string_view body) {
  return "t=" + std::to_string(timestamp) + ",sha256=" + WebhookSignatureHex(secret, timestamp, body);
}

absl::Status VerifyWebhookSignature(std::string_view secret, std::string_view header, std::string_view body,
                                    int64_t now, int64_t tolerance) {
  if (secret.empty()) return LocalError(absl::StatusCode::kFailedPrecondition, "MISSING_WEBHOOK_SECRET", "no webhook secret configured");
  if (header.empty()) return Fail("Missing signature header");
  int64_t timestamp = 0;
  std::string signature;
  for (absl::string_view part : absl::StrSplit(absl::string_view(header.data(), header.size()), ',')) {
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) continue;
    absl::string_view key = part.substr(0, eq), value = part.substr(eq + 1);
    if (key == "t" && !absl::SimpleAtoi(value, &timestamp)) return Fail("Malformed signature header");
    if (key == "sha256") signature = std::string(value);
  }
  if (timestamp <= 0 || signature.empty()) return Fail("Malformed signature header");
  if (now - timestamp > tolerance || timestamp - now > tolerance) return Fail("Webhook timestamp outside tolerance window");
  std::string expected = WebhookSignatureHex(secret, timestamp, body);
  std::string given = signature;
  for (char& c : given) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!ConstantTimeEquals(given, expected)) return Fail("Invalid webhook signature");
  return absl::OkStatus();
}

}  // namespace mesa::rest
