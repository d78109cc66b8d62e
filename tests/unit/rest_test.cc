#include <gtest/gtest.h>

#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "rest/validate.h"

namespace mesa::rest {
namespace {

TEST(ChangeIdTest, EncodesReverseHexVectors) {
  ChangeIdBytes zero{};
  EXPECT_EQ(EncodeChangeId(zero), "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
  EXPECT_EQ(EncodeChangeId(zero), kVirtualRootChangeId);
  ChangeIdBytes seq = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                       0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
  EXPECT_EQ(EncodeChangeId(seq), "zyxwvutsrqponmlkzyxwvutsrqponmlk");
  ChangeIdBytes ff;
  ff.fill(0xff);
  EXPECT_EQ(EncodeChangeId(ff), std::string(32, 'k'));
}

TEST(ChangeIdTest, DecodeRoundTripsAndAcceptsUpperCase) {
  auto bytes = DecodeChangeId("zyxwvutsrqponmlkzyxwvutsrqponmlk");
  ASSERT_TRUE(bytes);
  EXPECT_EQ((*bytes)[0], 0x01);
  EXPECT_EQ((*bytes)[7], 0xef);
  EXPECT_TRUE(DecodeChangeId("ZYXWVUTSRQPONMLKZYXWVUTSRQPONMLK"));
  EXPECT_FALSE(DecodeChangeId("zyxwvutsrqponmlkzyxwvutsrqponml"));    // 31 chars
  EXPECT_FALSE(DecodeChangeId("zyxwvutsrqponmlkzyxwvutsrqponmla"));   // 'a' is not in the alphabet
  for (int i = 0; i < 100; ++i) {
    std::string id = NewChangeId();
    auto decoded = DecodeChangeId(id);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(EncodeChangeId(*decoded), id);
    EXPECT_NE(id, kVirtualRootChangeId);
  }
}

TEST(ChangeIdTest, PatternIsLowerCaseOnly) {
  EXPECT_TRUE(IsValidChangeId("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"));
  EXPECT_FALSE(IsValidChangeId("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
  EXPECT_FALSE(IsValidChangeId(""));
  EXPECT_FALSE(IsValidChangeId("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"));
}

TEST(ChangeIdTest, SyntheticIdMatchesJj) {
  // Vector computed with jj's synthetic_change_id_from_git_commit_id.
  EXPECT_EQ(SyntheticChangeIdFromCommit("24a160cbe2004d0ce2a9d2b3e7de5ddeb2b3b064"),
            "xtzmnmvmsoopsolsnmvoquvswzoxzzvs");
}

TEST(EncodingTest, Base64RoundTripAndStrictness) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(*Base64Decode("Zm9vYg=="), "foob");
  EXPECT_FALSE(Base64Decode("Zm9vYg="));     // bad padding
  EXPECT_FALSE(Base64Decode("Hello, world!"));
  EXPECT_FALSE(Base64Decode("Zm9v YmFy"));   // whitespace
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(*Base64Decode(Base64Encode(all)), all);
  EXPECT_EQ(*Base64UrlDecode(Base64UrlEncodeNoPad(all)), all);
}

TEST(EncodingTest, Sha256AndHmacVectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

TEST(ValidateTest, RepoPaths) {
  EXPECT_TRUE(ValidateRepoPath("src/main.c", "path").ok());
  EXPECT_EQ(*ValidateRepoPath("src/dir/", "path"), "src/dir");
  for (const char* bad : {"", "/etc/passwd", "a/../b", "..", "./a", "a//b", ".git/config", "x/.GIT/y", "a\nb"}) {
    auto r = ValidateRepoPath(bad, "path");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(ErrorInfoFromStatus(r.status()).http_status, 400);
    }
  }
  EXPECT_EQ(*NormalizeReadPath("/", "path"), "");
  EXPECT_EQ(*NormalizeReadPath("/src", "path"), "src");
}

TEST(ValidateTest, NamesAndOids) {
  EXPECT_TRUE(IsValidBookmarkName("main"));
  EXPECT_TRUE(IsValidBookmarkName("feature/auth"));
  for (const char* bad : {"", "/x", "x/", "a..b", "a b", "a~", "x.lock", ".hidden", "a//b", "@"})
    EXPECT_FALSE(IsValidBookmarkName(bad)) << bad;
  EXPECT_TRUE(IsValidRepoName("my-repo_1.2"));
  EXPECT_FALSE(IsValidRepoName("a/b"));
  EXPECT_FALSE(IsValidRepoName(std::string(101, 'a')));
  EXPECT_FALSE(IsValidRepoName(".."));
  EXPECT_TRUE(IsValidCommitOid(std::string(40, 'a')));
  EXPECT_FALSE(IsValidCommitOid(std::string(40, 'A')));
}

TEST(TimeFormatTest, FormatsAndParses) {
  EXPECT_EQ(FormatRfc3339Millis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Millis(1699334716123), "2023-11-07T05:25:16.123Z");
  auto t = ParseRfc3339("2023-11-07T05:31:56Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->unix_seconds, 1699335116);
  auto off = ParseRfc3339("2023-11-07T06:31:56.5+01:00");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->unix_seconds, 1699335116);
  EXPECT_EQ(off->offset_minutes, 60);
  EXPECT_EQ(FormatRfc3339Seconds(1699335116, 60), "2023-11-07T06:31:56+01:00");
  EXPECT_FALSE(ParseRfc3339("2023-11-07"));
  EXPECT_FALSE(ParseRfc3339("yesterday"));
}

TEST(ApiErrorTest, CarriesHttpStatusCodeAndDetails) {
  auto st = ApiError(409, "MERGE_CONFLICT", "boom", {{"conflict_paths", {"a"}}});
  auto info = ErrorInfoFromStatus(st);
  EXPECT_EQ(info.http_status, 409);
  EXPECT_EQ(info.code, "MERGE_CONFLICT");
  EXPECT_EQ(info.message, "boom");
  EXPECT_EQ(info.details["conflict_paths"][0], "a");
  auto env = ErrorEnvelope(info);
  EXPECT_EQ(env["error"]["code"], "MERGE_CONFLICT");
  auto parsed = ParseErrorEnvelope(409, env.dump());
  EXPECT_EQ(parsed.code, "MERGE_CONFLICT");
  EXPECT_EQ(parsed.details, info.details);
  EXPECT_EQ(ParseErrorEnvelope(502, "<html>bad gateway</html>").code, "INTERNAL_ERROR");
}

}  // namespace
}  // namespace mesa::rest
