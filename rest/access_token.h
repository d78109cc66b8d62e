// Mesa access tokens as @mesadev/sdk 0.38.0 signs them locally from an API key
// (`mesa.tokens.create()`, dist/api/access-token.js):
//
//   header    {"alg":"HS256","typ":"mesa-at+jwt","kid":"<api_key_id>.v1"}
//   payload   {"iss":"<api_key_id>","aud":"mesa-api","scopes":[...],
//              "repos":["org/repo",...]|null,            (0.43+: "repo_ids":[...] instead)
//              "iat":<s>,"exp":<s>,"jti":"<uuid>"}
//   signature base64url_nopad(HMAC-SHA256(key, "<b64url header>.<b64url payload>"))
//   key       the UTF-8 bytes of base64url_nopad(SHA-256(raw API key)): exactly the value a
//             server stores for the key, so it can verify without ever holding the key.
//
// Lifetime at most 24 h (checked at verification). Shared by mesa-server (verifying) and the
// daemon/client (signing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace mesa::rest {

inline constexpr std::string_view kAccessTokenType = "mesa-at+jwt";
inline constexpr std::string_view kAccessTokenAudience = "mesa-api";
inline constexpr std::string_view kAccessTokenAlgorithm = "HS256";
inline constexpr std::string_view kAccessTokenKidSuffix = ".v1";
inline constexpr int64_t kAccessTokenMaxTtlSeconds = 24 * 60 * 60;
// An `iat` up to this far in the future is tolerated (client clocks drift).
inline constexpr int64_t kAccessTokenClockSkewSeconds = 60;

struct AccessTokenClaims {
  std::string key_id;  // from the kid header (== iss)
  std::vector<std::string> scopes;
  std::optional<std::vector<std::string>> repos;     // full "org/repo" names; nullopt: no restriction
  std::optional<std::vector<std::string>> repo_ids;  // the 0.43+ alternative to repos
  int64_t iat = 0;
  int64_t exp = 0;
  std::string jti;
};

// base64url_nopad(SHA-256(raw_api_key)): the HMAC key (as UTF-8 text) of the key's tokens.
std::string AccessTokenSigningSecret(std::string_view raw_api_key);

// True for a compact JWS shape: three non-empty base64url parts separated by two dots.
// (API keys never contain dots.)
bool LooksLikeAccessToken(std::string_view credential);

// The API key id named by the token's `kid` header ("<id>.v1"). Checks the header
// (alg HS256, typ mesa-at+jwt) but not the signature: use it to find the verification secret.
// Every failure is 401 UNAUTHENTICATED.
absl::StatusOr<std::string> AccessTokenKeyId(std::string_view token);

// Verifies signature (constant-time), header, aud, iss == key id, iat/exp (exp > now, lifetime
// <= 24 h, iat not in the future beyond the skew) and the claim types. Every failure is
// 401 UNAUTHENTICATED; the message says why without echoing the token.
absl::StatusOr<AccessTokenClaims> VerifyAccessToken(std::string_view token, std::string_view signing_secret,
                                                    int64_t now_seconds);

struct AccessTokenParams {
  std::string key_id;
  std::string raw_api_key;
  std::vector<std::string> scopes = {"read", "write"};
  std::optional<std::vector<std::string>> repos;
  int64_t ttl_seconds = 3600;
  int64_t now_seconds = 0;  // 0: the current time
  std::string jti;          // "": random
};

// Signs a token exactly as the SDK does (for clients of the daemon and for tests).
std::string SignAccessToken(const AccessTokenParams& params);

// The requested scopes a key with `key_scopes` may grant (read < write < admin): unknown and
// duplicate scopes are dropped, order is kept.
std::vector<std::string> ClampScopes(const std::vector<std::string>& requested,
                                     const std::vector<std::string>& key_scopes);

// 1 read, 2 write, 3 admin, 0 otherwise; ScopeLevel of a list is its highest member.
int ScopeLevel(std::string_view scope);
int ScopeLevel(const std::vector<std::string>& scopes);

}  // namespace mesa::rest
