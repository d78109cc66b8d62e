// Webhook signatures and access tokens, checked against values computed independently here
// with OpenSSL's HMAC (not through rest/encoding), plus the event payload shapes.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <string>

#include "nlohmann/json.hpp"
#include "rest/access_token.h"
#include "rest/api_error.h"
#include "rest/webhook_signature.h"
#include "server/webhooks/delivery.h"
#include "server/webhooks/events.h"

namespace mesa::testing {
namespace {

using nlohmann::json;

// ---- independent helpers (OpenSSL directly) ----

std::string RawHmac(const std::string& key, const std::string& message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// base64url without padding via OpenSSL's EVP_EncodeBlock.
std::string B64Url(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string Sha256B64Url(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return B64Url(std::string(reinterpret_cast<char*>(digest), sizeof digest));
}

std::string ExpectedHeader(const std::string& secret, int64_t t, const std::string& body) {
  return "t=" + std::to_string(t) + ",sha256=" + Hex(RawHmac(secret, std::to_string(t) + "." + body));
}

std::string MesaCode(const absl::Status& st) { return rest::ErrorInfoFromStatus(st).code; }

// ---- webhook signatures ----

TEST(WebhookSignature, ReferenceVector) {
  // From the research notes (computed with the SDK's Python algorithm) and OpenSSL here.
  const std::string body = R"({"id":"evt_1","type":"push"})";
  const std::string want = "t=1700000000,sha256=82c4e397a4dea6a449e4d8bd7292c21cd1080a8f159db0d4127c45ccf6a87731";
  EXPECT_EQ(ExpectedHeader("whsec_test", 1700000000, body), want);
  EXPECT_EQ(rest::SignWebhook("whsec_test", 1700000000, body), want);
  EXPECT_TRUE(rest::VerifyWebhookSignature("whsec_test", want, body, 1700000100).ok());
}

TEST(WebhookSignature, VectorsMatchOpenSsl) {
  struct Case {
    std::string secret;
    int64_t t;
    std::string body;
  } cases[] = {
      {"whsec_abc", 1, "{}"},
      {"whsec_" + std::string(40, 'Z'), 1795968892, R"({"id":"evt_x","type":"repo.created","data":{"repo":{}}})"},
      {"s", 4102444800, ""},
      {"whsec_ünïcødé", 1700000000, "{\"name\":\"caf\xc3\xa9 \xe2\x9c\x93\"}"},
      {"whsec_k", 1234567890, std::string(100000, 'x')},
  };
  for (const auto& c : cases) {
    std::string header = rest::SignWebhook(c.secret, c.t, c.body);
    EXPECT_EQ(header, ExpectedHeader(c.secret, c.t, c.body)) << c.secret;
    EXPECT_EQ(rest::WebhookSignatureHex(c.secret, c.t, c.body), header.substr(header.find("sha256=") + 7));
    EXPECT_TRUE(rest::VerifyWebhookSignature(c.secret, header, c.body, c.t).ok());
  }
}

TEST(WebhookSignature, VerifyRejects) {
  const std::string secret = "whsec_secret", body = R"({"id":"evt_1"})";
  const int64_t t = 1700000000;
  const std::string good = ExpectedHeader(secret, t, body);
  auto rejects = [&](const std::string& header, const std::string& b, int64_t now, const std::string& why) {
    absl::Status st = rest::VerifyWebhookSignature(secret, header, b, now);
    EXPECT_FALSE(st.ok()) << why;
    EXPECT_EQ(MesaCode(st), "WEBHOOK_VERIFICATION_FAILED") << why;
    EXPECT_NE(std::string(st.message()).find(why), std::string::npos) << st.message();
  };
  rejects(good, body + " ", t, "Invalid webhook signature");
  rejects(ExpectedHeader("whsec_other", t, body), body, t, "Invalid webhook signature");
  rejects("t=" + std::to_string(t + 1) + good.substr(good.find(',')), body, t, "Invalid webhook signature");
  rejects(good, body, t + 301, "outside tolerance");
  rejects(good, body, t - 301, "outside tolerance");
  rejects("", body, t, "Missing signature header");
  rejects("sha256=" + Hex(RawHmac(secret, "x")), body, t, "Malformed");
  rejects("t=0,sha256=" + Hex(RawHmac(secret, "0." + body)), body, t, "Malformed");
  rejects("t=abc,sha256=00", body, t, "Malformed");
  rejects("t=" + std::to_string(t), body, t, "Malformed");
  rejects("t=" + std::to_string(t) + ",sha256=" + Hex(RawHmac(secret, std::to_string(t) + "." + body)).substr(2), body, t,
          "Invalid webhook signature");
  EXPECT_EQ(MesaCode(rest::VerifyWebhookSignature("", good, body, t)), "MISSING_WEBHOOK_SECRET");
  // Within tolerance on both edges; upper-case hex is accepted.
  EXPECT_TRUE(rest::VerifyWebhookSignature(secret, good, body, t + 300).ok());
  EXPECT_TRUE(rest::VerifyWebhookSignature(secret, good, body, t - 300).ok());
  std::string upper = good;
  for (size_t i = upper.find("sha256=") + 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  EXPECT_TRUE(rest::VerifyWebhookSignature(secret, upper, body, t).ok());
}

// ---- access tokens ----

const std::string kRawKey = "mesa_0123456789abcdefghijABCDEFGHIJ0123456789";
const int64_t kNow = 1800000000;

struct TokenSpec {
  json header = {{"alg", "HS256"}, {"typ", "mesa-at+jwt"}, {"kid", "key_abc.v1"}};
  json payload = {{"iss", "key_abc"},  {"aud", "mesa-api"}, {"scopes", {"read", "write"}},
                  {"repos", nullptr},  {"iat", kNow - 10},  {"exp", kNow + 3600},
                  {"jti", "00000000-0000-4000-8000-000000000000"}};
  std::string raw_key = kRawKey;
};

// Signs as dist/api/access-token.js does, with OpenSSL.
std::string MakeToken(const TokenSpec& s) {
  std::string input = B64Url(s.header.dump()) + "." + B64Url(s.payload.dump());
  return input + "." + B64Url(RawHmac(Sha256B64Url(s.raw_key), input));
}

absl::StatusOr<rest::AccessTokenClaims> Verify(const std::string& token, const std::string& raw_key = kRawKey,
                                               int64_t now = kNow) {
  return rest::VerifyAccessToken(token, Sha256B64Url(raw_key), now);
}

void ExpectUnauthenticated(const absl::StatusOr<rest::AccessTokenClaims>& r, const std::string& why) {
  ASSERT_FALSE(r.ok()) << why;
  auto info = rest::ErrorInfoFromStatus(r.status());
  EXPECT_EQ(info.http_status, 401) << why;
  EXPECT_EQ(info.code, "UNAUTHENTICATED") << why;
}

TEST(AccessToken, SigningSecretIsTheStoredHash) {
  EXPECT_EQ(rest::AccessTokenSigningSecret(kRawKey), Sha256B64Url(kRawKey));
  EXPECT_EQ(rest::AccessTokenSigningSecret(kRawKey).size(), 43u);
}

TEST(AccessToken, ValidTokenYieldsClaims) {
  TokenSpec s;
  s.payload["repos"] = {"acme/alpha", "acme/beta"};
  std::string token = MakeToken(s);
  EXPECT_TRUE(rest::LooksLikeAccessToken(token));
  EXPECT_FALSE(rest::LooksLikeAccessToken(kRawKey));
  EXPECT_FALSE(rest::LooksLikeAccessToken("a.b"));
  EXPECT_FALSE(rest::LooksLikeAccessToken("a..c"));
  auto kid = rest::AccessTokenKeyId(token);
  ASSERT_TRUE(kid.ok()) << kid.status();
  EXPECT_EQ(*kid, "key_abc");
  auto claims = Verify(token);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->key_id, "key_abc");
  EXPECT_EQ(claims->scopes, (std::vector<std::string>{"read", "write"}));
  ASSERT_TRUE(claims->repos.has_value());
  EXPECT_EQ(*claims->repos, (std::vector<std::string>{"acme/alpha", "acme/beta"}));
  EXPECT_FALSE(claims->repo_ids.has_value());
  EXPECT_EQ(claims->exp, kNow + 3600);
  EXPECT_EQ(claims->jti, "00000000-0000-4000-8000-000000000000");

  // repos: null means no repository restriction; repo_ids (0.43+) is accepted too.
  TokenSpec unrestricted;
  auto u = Verify(MakeToken(unrestricted));
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->repos.has_value());
  TokenSpec by_id;
  by_id.payload.erase("repos");
  by_id.payload["repo_ids"] = {"repo_1"};
  auto i = Verify(MakeToken(by_id));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(*i->repo_ids, std::vector<std::string>{"repo_1"});
}

TEST(AccessToken, SignAccessTokenRoundTrips) {
  rest::AccessTokenParams p;
  p.key_id = "key_abc";
  p.raw_api_key = kRawKey;
  p.scopes = {"read"};
  p.repos = std::vector<std::string>{"acme/x"};
  p.ttl_seconds = 60;
  p.now_seconds = kNow;
  std::string token = rest::SignAccessToken(p);
  auto claims = Verify(token);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->scopes, std::vector<std::string>{"read"});
  EXPECT_EQ(claims->exp - claims->iat, 60);
  // The same token, rebuilt independently from its own header and payload, has the same signature.
  std::string input = token.substr(0, token.rfind('.'));
  EXPECT_EQ(token.substr(token.rfind('.') + 1), B64Url(RawHmac(Sha256B64Url(kRawKey), input)));
}

TEST(AccessToken, Expired) {
  TokenSpec s;
  s.payload["iat"] = kNow - 7200;
  s.payload["exp"] = kNow - 3600;
  auto r = Verify(MakeToken(s));
  ExpectUnauthenticated(r, "expired");
  EXPECT_NE(std::string(r.status().message()).find("expired"), std::string::npos);
  s.payload["exp"] = kNow;  // exp is exclusive
  ExpectUnauthenticated(Verify(MakeToken(s)), "exp == now");
  s.payload["exp"] = kNow + 1;
  EXPECT_TRUE(Verify(MakeToken(s)).ok());
}

TEST(AccessToken, LifetimeAndIssuedAt) {
  TokenSpec s;
  s.payload["iat"] = kNow;
  s.payload["exp"] = kNow + 86400;
  EXPECT_TRUE(Verify(MakeToken(s)).ok());
  s.payload["exp"] = kNow + 86401;
  ExpectUnauthenticated(Verify(MakeToken(s)), "ttl over 24h");
  s.payload["iat"] = kNow + 3600;  // issued in the future
  s.payload["exp"] = kNow + 7200;
  ExpectUnauthenticated(Verify(MakeToken(s)), "future iat");
  s.payload["iat"] = kNow + 30;  // within the clock skew
  EXPECT_TRUE(Verify(MakeToken(s)).ok());
  s.payload["exp"] = "soon";
  ExpectUnauthenticated(Verify(MakeToken(s)), "string exp");
  s.payload["exp"] = 1.5e9;
  ExpectUnauthenticated(Verify(MakeToken(s)), "float exp");
  s.payload.erase("exp");
  ExpectUnauthenticated(Verify(MakeToken(s)), "no exp");
}

TEST(AccessToken, Tampered) {
  TokenSpec s;
  std::string token = MakeToken(s);
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  // Another payload (admin scopes) under the original signature.
  TokenSpec admin = s;
  admin.payload["scopes"] = {"admin"};
  std::string forged = token.substr(0, dot1 + 1) + B64Url(admin.payload.dump()) + token.substr(dot2);
  ExpectUnauthenticated(Verify(forged), "payload swapped");
  // One flipped signature character; a truncated signature; a signature with padding.
  std::string flipped = token;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  ExpectUnauthenticated(Verify(flipped), "signature flipped");
  ExpectUnauthenticated(Verify(token.substr(0, token.size() - 2)), "signature truncated");
  ExpectUnauthenticated(Verify(token + "="), "signature padded");
  // Signed with another key's secret.
  TokenSpec other = s;
  other.raw_key = "mesa_someotherkey";
  ExpectUnauthenticated(Verify(MakeToken(other)), "other key");
  // alg none / an unsigned token.
  TokenSpec none = s;
  none.header["alg"] = "none";
  ExpectUnauthenticated(Verify(MakeToken(none)), "alg none");
  ExpectUnauthenticated(Verify(token.substr(0, dot2 + 1)), "no signature");
  TokenSpec hs512 = s;
  hs512.header["alg"] = "HS512";
  ExpectUnauthenticated(Verify(MakeToken(hs512)), "alg HS512");
  TokenSpec jwt = s;
  jwt.header["typ"] = "JWT";
  ExpectUnauthenticated(Verify(MakeToken(jwt)), "typ JWT");
  TokenSpec aud = s;
  aud.payload["aud"] = "someone-else";
  ExpectUnauthenticated(Verify(MakeToken(aud)), "aud");
  TokenSpec iss = s;
  iss.payload["iss"] = "key_other";
  ExpectUnauthenticated(Verify(MakeToken(iss)), "iss differs from kid");
  TokenSpec scopes = s;
  scopes.payload["scopes"] = "admin";
  ExpectUnauthenticated(Verify(MakeToken(scopes)), "scopes not an array");
  TokenSpec both = s;
  both.payload["repos"] = {"acme/a"};
  both.payload["repo_ids"] = {"repo_1"};
  ExpectUnauthenticated(Verify(MakeToken(both)), "repos and repo_ids");
  for (const char* junk : {"", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "not base64.x.y"})
    ExpectUnauthenticated(Verify(junk), junk);
}

TEST(AccessToken, WrongKid) {
  // The kid names the key whose secret verifies the token: another key's id means another
  // secret (so the signature fails), and the header format is strict.
  TokenSpec s;
  s.header["kid"] = "key_other.v1";
  s.payload["iss"] = "key_other";
  std::string token = MakeToken(s);
  auto kid = rest::AccessTokenKeyId(token);
  ASSERT_TRUE(kid.ok());
  EXPECT_EQ(*kid, "key_other");
  ExpectUnauthenticated(Verify(token, "mesa_the_real_key_other"), "kid of a key that did not sign it");
  for (const char* bad : {"key_abc", "key_abc.v2", ".v1", "key_abc.V1"}) {
    TokenSpec b;
    b.header["kid"] = bad;
    std::string t = MakeToken(b);
    EXPECT_FALSE(rest::AccessTokenKeyId(t).ok()) << bad;
    ExpectUnauthenticated(Verify(t), bad);
  }
  TokenSpec missing;
  missing.header.erase("kid");
  EXPECT_FALSE(rest::AccessTokenKeyId(MakeToken(missing)).ok());
}

TEST(AccessToken, ClampedScopes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(rest::ClampScopes({"read", "write"}, {"admin"}), (V{"read", "write"}));
  EXPECT_EQ(rest::ClampScopes({"read", "write"}, {"read"}), (V{"read"}));
  EXPECT_EQ(rest::ClampScopes({"admin"}, {"read", "write"}), V{});
  EXPECT_EQ(rest::ClampScopes({"admin", "write", "read"}, {"write"}), (V{"write", "read"}));
  EXPECT_EQ(rest::ClampScopes({"read", "read", "root", ""}, {"admin"}), V{"read"});
  EXPECT_EQ(rest::ClampScopes({}, {"admin"}), V{});
  EXPECT_EQ(rest::ScopeLevel(V{"read", "admin"}), 3);
  EXPECT_EQ(rest::ScopeLevel(V{}), 0);
}

// ---- delivery backoff and event shapes ----

TEST(WebhookDelivery, ExponentialBackoffIsCapped) {
  server::webhooks::DeliveryOptions o;
  o.backoff_initial_ms = 100;
  o.backoff_max_ms = 1000;
  EXPECT_EQ(server::webhooks::BackoffMs(o, 1), 100);
  EXPECT_EQ(server::webhooks::BackoffMs(o, 2), 200);
  EXPECT_EQ(server::webhooks::BackoffMs(o, 3), 400);
  EXPECT_EQ(server::webhooks::BackoffMs(o, 4), 800);
  EXPECT_EQ(server::webhooks::BackoffMs(o, 5), 1000);
  EXPECT_EQ(server::webhooks::BackoffMs(o, 60), 1000);
}

TEST(WebhookEvents, PayloadShapes) {
  namespace wh = server::webhooks;
  server::Org org{"org_1", "acme", "Acme", 0};
  server::Repo repo;
  repo.id = "repo_1";
  repo.name = "alpha";
  repo.default_bookmark = "main";
  repo.head_change_id = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
  json env = wh::Envelope("evt_1", "repo.created", 0, org, &repo, "http://h:1", {{"repo", wh::RepoInfo(repo)}});
  EXPECT_EQ(env["repository"], json({{"id", "repo_1"}, {"name", "alpha"}, {"url", "http://h:1/v1/acme/alpha"}}));
  EXPECT_EQ(env["organization"], json({{"id", "org_1"}, {"slug", "acme"}, {"name", "Acme"}}));
  EXPECT_EQ(env["occurred_at"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(env["data"]["repo"]["tags"], json::object());
  EXPECT_TRUE(wh::Envelope("evt_2", "push", 0, org, nullptr, "", json::object())["repository"].is_null());

  EXPECT_EQ(wh::BookmarkInfo("main", true, repo.head_change_id, "")["commit_oid"], std::string(40, '0'));
  EXPECT_FALSE(wh::PushPayload({{"main", "", ""}}).has_value());
  EXPECT_FALSE(wh::PushPayload({{"main", "abc", "abc"}}).has_value());
  auto push = wh::PushPayload({{"a", "", "c1"}, {"b", "c1", "c2"}, {"c", "c2", ""}});
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ((*push)["updates"][0], json({{"ref", "refs/heads/a"}, {"bookmark", "a"}, {"before", nullptr}, {"after", "c1"}, {"action", "created"}}));
  EXPECT_EQ((*push)["updates"][1]["action"], "updated");
  EXPECT_EQ((*push)["updates"][2], json({{"ref", "refs/heads/c"}, {"bookmark", "c"}, {"before", "c2"}, {"after", nullptr}, {"action", "deleted"}}));
  EXPECT_EQ((*push)["reconciliation"].size(), 6u);
  EXPECT_EQ(wh::kEventTypes.size(), 14u);
  EXPECT_TRUE(wh::IsEventType("bookmark.merged"));
  EXPECT_FALSE(wh::IsEventType("sync_run.enqueued"));
}

}  // namespace
}  // namespace mesa::testing
