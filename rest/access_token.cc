#include "rest/access_token.h"

#include <algorithm>

#include "nlohmann/json.hpp"
#include "rest/api_error.h"
#include "rest/encoding.h"
#include "rest/time_format.h"

namespace mesa::rest {
namespace {

using nlohmann::json;

absl::Status Invalid(std::string_view why = "invalid access token") {
  return ApiError(401, "UNAUTHENTICATED", why);
}

struct Parts {
  std::string_view header, payload, signature;
};

std::optional<Parts> Split(std::string_view token) {
  size_t a = token.find('.');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = token.find('.', a + 1);
  if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) return std::nullopt;
  Parts p{token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
  if (p.header.empty() || p.payload.empty() || p.signature.empty()) return std::nullopt;
  return p;
}

bool IsBase64UrlText(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::optional<json> DecodeJsonPart(std::string_view part) {
  if (!IsBase64UrlText(part)) return std::nullopt;
  auto raw = Base64UrlDecode(part);
  if (!raw) return std::nullopt;
  json j = json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::optional<std::vector<std::string>> StringArray(const json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& v : j) {
    if (!v.is_string()) return std::nullopt;
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::optional<int64_t> Seconds(const json& payload, const char* key) {
  if (!payload.contains(key)) return std::nullopt;
  const json& v = payload[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  return std::nullopt;
}

absl::StatusOr<std::string> KeyIdFromHeader(const json& header) {
  if (header.value("alg", "") != kAccessTokenAlgorithm) return Invalid();
  if (header.value("typ", "") != kAccessTokenType) return Invalid();
  if (!header.contains("kid") || !header["kid"].is_string()) return Invalid();
  std::string kid = header["kid"].get<std::string>();
  if (kid.size() <= kAccessTokenKidSuffix.size() || !kid.ends_with(kAccessTokenKidSuffix)) return Invalid();
  return kid.substr(0, kid.size() - kAccessTokenKidSuffix.size());
}

}  // namespace

std::string AccessTokenSigningSecret(std::string_view raw_api_key) {
  return Base64UrlEncodeNoPad(Sha256(raw_api_key));
}

bool LooksLikeAccessToken(std::string_view credential) {
  auto parts = Split(credential);
  return parts && IsBase64UrlText(parts->header) && IsBase64UrlText(parts->payload) &&
         IsBase64UrlText(parts->signature);
}

absl::StatusOr<std::string> AccessTokenKeyId(std::string_view token) {
  auto parts = Split(token);
  if (!parts) return Invalid();
  auto header = DecodeJsonPart(parts->header);
  if (!header) return Invalid();
  return KeyIdFromHeader(*header);
}

absl::StatusOr<AccessTokenClaims> VerifyAccessToken(std::string_view token, std::string_view signing_secret,
                                                    int64_t now) {
  auto parts = Split(token);
  if (!parts || signing_secret.empty()) return Invalid();
  auto header = DecodeJsonPart(parts->header);
  if (!header) return Invalid();
  auto key_id = KeyIdFromHeader(*header);
  if (!key_id.ok()) return key_id.status();

  // The signature covers the exact bytes sent; compare the canonical encodings in constant time.
  std::string signing_input = std::string(parts->header) + "." + std::string(parts->payload);
  std::string expected = Base64UrlEncodeNoPad(HmacSha256(signing_secret, signing_input));
  if (!ConstantTimeEquals(expected, parts->signature)) return Invalid();

  auto payload = DecodeJsonPart(parts->payload);
  if (!payload) return Invalid();
  const json& p = *payload;
  AccessTokenClaims claims;
  claims.key_id = *key_id;
  const json aud = p.value("aud", json());
  bool aud_ok = aud.is_string() ? aud.get<std::string>() == kAccessTokenAudience
                                : aud.is_array() && std::find(aud.begin(), aud.end(), json(kAccessTokenAudience)) != aud.end();
  if (!aud_ok) return Invalid();
  if (!p.contains("iss") || !p["iss"].is_string() || p["iss"].get<std::string>() != claims.key_id) return Invalid();
  auto iat = Seconds(p, "iat");
  auto exp = Seconds(p, "exp");
  if (!iat || !exp || *exp <= *iat) return Invalid();
  claims.iat = *iat;
  claims.exp = *exp;
  if (*exp - *iat > kAccessTokenMaxTtlSeconds) return Invalid("access token lifetime exceeds 24 hours");
  if (*iat > now + kAccessTokenClockSkewSeconds) return Invalid("access token is not valid yet");
  if (*exp <= now) return Invalid("access token has expired");

  auto scopes = p.contains("scopes") ? StringArray(p["scopes"]) : std::nullopt;
  if (!scopes) return Invalid();
  claims.scopes = std::move(*scopes);
  for (const char* field : {"repos", "repo_ids"}) {
    if (!p.contains(field) || p[field].is_null()) continue;
    auto list = StringArray(p[field]);
    if (!list) return Invalid();
    (std::string_view(field) == "repos" ? claims.repos : claims.repo_ids) = std::move(*list);
  }
  if (claims.repos && claims.repo_ids) return Invalid();  // mutually exclusive
  if (p.contains("jti") && p["jti"].is_string()) claims.jti = p["jti"].get<std::string>();
  return claims;
}

std::string SignAccessToken(const AccessTokenParams& in) {
  int64_t iat = in.now_seconds > 0 ? in.now_seconds : NowUnixMillis() / 1000;
  json header = {{"alg", kAccessTokenAlgorithm}, {"typ", kAccessTokenType},
                 {"kid", in.key_id + std::string(kAccessTokenKidSuffix)}};
  json payload = {{"iss", in.key_id},
                  {"aud", kAccessTokenAudience},
                  {"scopes", in.scopes},
                  {"repos", in.repos ? json(*in.repos) : json(nullptr)},
                  {"iat", iat},
                  {"exp", iat + in.ttl_seconds},
                  {"jti", in.jti.empty() ? RandomAlphanumeric(22) : in.jti}};
  std::string input = Base64UrlEncodeNoPad(header.dump()) + "." + Base64UrlEncodeNoPad(payload.dump());
  return input + "." + Base64UrlEncodeNoPad(HmacSha256(AccessTokenSigningSecret(in.raw_api_key), input));
}

int ScopeLevel(std::string_view scope) {
  if (scope == "read") return 1;
  if (scope == "write") return 2;
  if (scope == "admin") return 3;
  return 0;
}

int ScopeLevel(const std::vector<std::string>& scopes) {
  int best = 0;
  for (const auto& s : scopes) best = std::max(best, ScopeLevel(s));
  return best;
}

std::vector<std::string> ClampScopes(const std::vector<std::string>& requested,
                                     const std::vector<std::string>& key_scopes) {
  int ceiling = ScopeLevel(key_scopes);
  std::vector<std::string> out;
  for (const auto& s : requested) {
    int level = ScopeLevel(s);
    if (level == 0 || level > ceiling) continue;
    if (std::find(out.begin(), out.end(), s) != out.end()) continue;
    out.push_back(s);
  }
  return out;
}

}  // namespace mesa::rest
