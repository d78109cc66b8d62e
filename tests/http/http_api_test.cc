// Every /v1 endpoint over real HTTP, success and failure, against a real store.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "rest/encoding.h"
#include "tests/http/http_fixture.h"

namespace mesa::testing {
namespace {

const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
using nlohmann::json;

json File(const std::string& path, const std::string& content, const char* mode = nullptr) {
  json f = {{"path", path}, {"content", rest::Base64Encode(content)}, {"encoding", "base64"}};
  if (mode) f["mode"] = mode;
  return f;
}

class ApiTest : public HttpFixture {
 protected:
  json CreateRepo(const std::string& name) {
    Resp r = Post("/v1/acme/repos", {{"name", name}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json;
  }
  json CreateChange(const std::string& repo, const std::string& base, json files, const std::string& message = "m") {
    Resp r = Post("/v1/acme/" + repo + "/changes",
                  {{"base_change_id", base}, {"message", message}, {"files", files},
                   {"author", {{"name", "A"}, {"email", "a@example.com"}}}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json;
  }
};

void ExpectError(const Resp& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_NE(r.content_type.find("application/json"), std::string::npos) << r.content_type;
  ASSERT_TRUE(r.json.is_object()) << r.body;
  ASSERT_TRUE(r.json.contains("error")) << r.body;
  EXPECT_EQ(r.json["error"]["code"], code) << r.body;
  EXPECT_TRUE(r.json["error"]["message"].is_string());
}

TEST_F(ApiTest, WhoamiAndOrg) {
  Resp r = Get("/v1/whoami");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json["org"]["slug"], "acme");
  EXPECT_EQ(r.json["org"]["name"], "Acme Inc");
  EXPECT_TRUE(r.json["key_id"].get<std::string>().starts_with("key_"));
  EXPECT_EQ(r.json["key_name"], "test-admin");
  EXPECT_EQ(r.json["scopes"], json::array({"admin"}));

  Resp org = Get("/v1/acme");
  ASSERT_EQ(org.status, 200);
  EXPECT_EQ(org.json["num_repos"], 0);
  EXPECT_TRUE(org.json["created_at"].is_string());
  ExpectError(Get("/v1/other-org"), 404, "ORG_NOT_FOUND");
}

TEST_F(ApiTest, AuthenticationFailures) {
  ExpectError(Call("GET", "/v1/whoami", nullptr, "-"), 401, "UNAUTHENTICATED");
  ExpectError(Call("GET", "/v1/whoami", nullptr, "mesa_notakey"), 401, "UNAUTHENTICATED");
  ExpectError(Call("GET", "/v1/whoami", nullptr, "-", {{"Authorization", "Basic abc"}}), 401, "UNAUTHENTICATED");
}

TEST_F(ApiTest, RepoCrudWithExactShape) {
  Resp created = Post("/v1/acme/repos", {{"name", "alpha"}, {"tags", {{"Team", "agents"}}}});
  ASSERT_EQ(created.status, 201);
  const json& repo = created.json;
  for (const char* field : {"id", "org", "name", "default_bookmark", "head_change_id", "upstream", "created_at", "tags"})
    EXPECT_TRUE(repo.contains(field)) << field;
  EXPECT_EQ(repo.size(), 8u);
  EXPECT_TRUE(repo["upstream"].is_null());
  EXPECT_EQ(repo["org"], "acme");
  EXPECT_EQ(repo["default_bookmark"], "main");
  EXPECT_EQ(repo["head_change_id"], kRoot);
  EXPECT_EQ(repo["tags"], json({{"team", "agents"}}));

  ExpectError(Post("/v1/acme/repos", {{"name", "alpha"}}), 409, "REPO_ALREADY_EXISTS");
  ExpectError(Post("/v1/acme/repos", {{"name", "bad/name"}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/repos", {{"name", 5}}), 400, "VALIDATION_ERROR");
  Resp generated = Post("/v1/acme/repos", json::object());
  ASSERT_EQ(generated.status, 201);
  EXPECT_FALSE(generated.json["name"].get<std::string>().empty());

  EXPECT_EQ(Get("/v1/acme/alpha").json, repo);
  Resp renamed = Patch("/v1/acme/alpha", {{"name", "beta"}, {"tags", {{"team", nullptr}, {"env", "prod"}}}});
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(renamed.json["name"], "beta");
  EXPECT_EQ(renamed.json["id"], repo["id"]);
  EXPECT_EQ(renamed.json["tags"], json({{"env", "prod"}}));
  ExpectError(Get("/v1/acme/alpha"), 404, "REPO_NOT_FOUND");
  ExpectError(Patch("/v1/acme/beta", {{"default_bookmark", "nope"}}), 404, "BOOKMARK_NOT_FOUND");

  Resp up = Patch("/v1/acme/beta", {{"upstream", {{"url", "https://example.com/x.git"}, {"auth", {{"kind", "token"}, {"token", "secret"}}}}}});
  ASSERT_EQ(up.status, 200);
  EXPECT_EQ(up.json["upstream"], json({{"url", "https://example.com/x.git"}, {"auth_kind", "token"}, {"latest_sync", nullptr}}));
  EXPECT_EQ(up.body.find("secret"), std::string::npos);
  EXPECT_TRUE(Patch("/v1/acme/beta", {{"upstream", nullptr}}).json["upstream"].is_null());

  Resp del = Delete("/v1/acme/beta");
  ASSERT_EQ(del.status, 200);
  EXPECT_EQ(del.json, json({{"success", true}}));
  ExpectError(Get("/v1/acme/beta"), 404, "REPO_NOT_FOUND");
  ExpectError(Delete("/v1/acme/beta"), 404, "REPO_NOT_FOUND");
}

TEST_F(ApiTest, RepoListPaginatesAndFilters) {
  for (int i = 0; i < 5; ++i) CreateRepo("r" + std::to_string(i));
  Patch("/v1/acme/r3", {{"tags", {{"env", "prod"}}}});
  std::vector<std::string> names;
  std::string cursor;
  int pages = 0;
  do {
    Resp r = Get("/v1/acme/repos?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.body;
    for (const auto& repo : r.json["repos"]) names.push_back(repo["name"]);
    EXPECT_EQ(r.json["has_more"], !r.json["next_cursor"].is_null());
    cursor = r.json["next_cursor"].is_null() ? "" : r.json["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names, (std::vector<std::string>{"r0", "r1", "r2", "r3", "r4"}));
  Resp filtered = Get("/v1/acme/repos?tags=env:prod");
  ASSERT_EQ(filtered.json["repos"].size(), 1u);
  EXPECT_EQ(filtered.json["repos"][0]["name"], "r3");
  ExpectError(Get("/v1/acme/repos?limit=0"), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/repos?limit=101"), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/repos?limit=ten"), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/repos?cursor=!!"), 400, "VALIDATION_ERROR");
  EXPECT_EQ(Get("/v1/acme").json["num_repos"], 5);

  json ids = json::array({Get("/v1/acme/r0").json["id"], Get("/v1/acme/r1").json["id"]});
  Resp bulk = Call("PATCH", "/v1/acme/repos/tags", Body(json({{"repo_ids", ids}, {"action", "set"}, {"key", "tier"}, {"value", "gold"}})));
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  EXPECT_EQ(bulk.json["updated"], 2);
  EXPECT_EQ(Get("/v1/acme/r0").json["tags"]["tier"], "gold");
  Resp removed = Patch("/v1/acme/repos/tags", {{"repo_ids", ids}, {"action", "remove"}, {"key", "tier"}});
  EXPECT_EQ(removed.json["updated"], 2);
  ExpectError(Patch("/v1/acme/repos/tags", {{"action", "set"}, {"key", "x"}}), 400, "VALIDATION_ERROR");
}

TEST_F(ApiTest, ChangesCreateGetPatchList) {
  CreateRepo("work");
  json c = CreateChange("work", kRoot, json::array({File("src/main.c", "int main(){}\n"), File("run.sh", "#!/bin/sh\n", "100755")}), "first");
  for (const char* field : {"id", "current_commit_oid", "is_conflicted", "message", "author", "committer", "parents", "created_at", "updated_at"})
    EXPECT_TRUE(c.contains(field)) << field;
  EXPECT_FALSE(c.contains("files"));
  EXPECT_EQ(c["message"], "first");
  EXPECT_EQ(c["author"]["name"], "A");
  EXPECT_EQ(c["committer"]["email"], "a@example.com");  // committer falls back to author
  EXPECT_EQ(c["parents"], json::array({kRoot}));
  const std::string id = c["id"];

  Resp got = Get("/v1/acme/work/changes/" + id);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.json["files"], json::array({"run.sh", "src/main.c"}));
  EXPECT_EQ(got.json["conflicts"], json::array());

  Resp patched = Patch("/v1/acme/work/changes/" + id,
                       {{"files", json::array({File("src/main.c", "int main(){return 0;}\n"), {{"path", "run.sh"}, {"action", "delete"}}})},
                        {"message", "second"}, {"base_commit_oid", c["current_commit_oid"]}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.json["id"], id);
  EXPECT_NE(patched.json["current_commit_oid"], c["current_commit_oid"]);
  EXPECT_EQ(patched.json["message"], "second");
  ExpectError(Patch("/v1/acme/work/changes/" + id, {{"files", json::array({File("x", "x")})}, {"base_commit_oid", c["current_commit_oid"]}}),
              409, "STALE_BASE_COMMIT");
  ExpectError(Patch("/v1/acme/work/changes/" + id, {{"files", json::array()}}), 400, "VALIDATION_ERROR");
  ExpectError(Patch("/v1/acme/work/changes/" + id, {{"base_commit_oid", "XYZ"}}), 400, "VALIDATION_ERROR");
  Resp cleared = Patch("/v1/acme/work/changes/" + id, {{"message", ""}});
  EXPECT_EQ(cleared.json["message"], "");

  json child = CreateChange("work", id, json::array({File("b", "b")}));
  Patch("/v1/acme/work/bookmarks/main", {{"change_id", child["id"]}});
  Resp list = Get("/v1/acme/work/changes");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json["changes"].size(), 2u);
  EXPECT_EQ(list.json["changes"][0]["id"], child["id"]);
  EXPECT_EQ(list.json["changes"][1]["id"], id);
  EXPECT_FALSE(list.json["changes"][0].contains("files"));
  EXPECT_EQ(list.json["has_more"], false);
  EXPECT_TRUE(list.json["next_cursor"].is_null());
  ExpectError(Get("/v1/acme/work/changes?bookmark=nope"), 404, "BOOKMARK_NOT_FOUND");
  ExpectError(Get("/v1/acme/work/changes/" + std::string(32, 'k')), 404, "CHANGE_NOT_FOUND");
  ExpectError(Get("/v1/acme/work/changes/not-a-change-id"), 400, "VALIDATION_ERROR");
}

TEST_F(ApiTest, BadChangeInputWritesNothing) {
  CreateRepo("strict");
  auto count = [&] { return store_->ListChanges(*store_->GetRepo(org_, "strict"), "main", std::nullopt, 100); };
  json base = CreateChange("strict", kRoot, json::array({File("a", "a")}));
  Patch("/v1/acme/strict/bookmarks/main", {{"change_id", base["id"]}});
  size_t before = count()->items.size();

  Resp bad_b64 = Post("/v1/acme/strict/changes", {{"base_change_id", base["id"]}, {"files", json::array({{{"path", "x"}, {"content", "Hello, world!"}}})}});
  ExpectError(bad_b64, 400, "VALIDATION_ERROR");
  EXPECT_EQ(bad_b64.json["error"]["details"]["errors"][0]["field"], "files[0].content");
  for (const char* path : {"../etc/passwd", "/abs", ".git/config", "a//b"}) {
    Resp r = Post("/v1/acme/strict/changes", {{"base_change_id", base["id"]}, {"files", json::array({File(path, "x")})}});
    ExpectError(r, 400, "VALIDATION_ERROR");
  }
  ExpectError(Post("/v1/acme/strict/changes", {{"files", json::array()}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/strict/changes", {{"base_change_id", "abc"}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/strict/changes", {{"base_change_id", std::string(32, 'k')}}), 404, "CHANGE_NOT_FOUND");
  ExpectError(Post("/v1/acme/strict/changes", {{"base_change_id", kRoot}, {"files", json::array({File("a", "a", "100777")})}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/strict/changes", {{"base_change_id", kRoot}, {"author", {{"name", "x"}}}}), 400, "VALIDATION_ERROR");
  ExpectError(Raw("POST", "/v1/acme/strict/changes", "{not json"), 400, "INVALID_JSON");
  ExpectError(Raw("POST", "/v1/acme/strict/changes", "[1,2]"), 400, "INVALID_JSON");
  ExpectError(Raw("POST", "/v1/acme/strict/changes", std::string(2 << 20, 'x')), 413, "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(count()->items.size(), before);
}

TEST_F(ApiTest, BookmarksIncludingSlashesAndMerge) {
  CreateRepo("bm");
  json a = CreateChange("bm", kRoot, json::array({File("f", "1\n2\n3\n")}));
  json b = CreateChange("bm", a["id"], json::array({File("f", "1\nB\n3\n")}));
  json c = CreateChange("bm", a["id"], json::array({File("f", "1\nC\n3\n")}));
  Patch("/v1/acme/bm/bookmarks/main", {{"change_id", b["id"]}});

  Resp created = Post("/v1/acme/bm/bookmarks", {{"name", "feature/auth"}, {"change_id", c["id"]}});
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json, json({{"name", "feature/auth"}, {"change_id", c["id"]}, {"is_default", false}}));
  ExpectError(Post("/v1/acme/bm/bookmarks", {{"name", "feature/auth"}, {"change_id", c["id"]}}), 409, "BOOKMARK_ALREADY_EXISTS");
  ExpectError(Post("/v1/acme/bm/bookmarks", {{"name", "bad name"}, {"change_id", c["id"]}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/bm/bookmarks", {{"name", "x"}, {"change_id", std::string(32, 'k')}}), 404, "CHANGE_NOT_FOUND");
  Resp root_bm = Post("/v1/acme/bm/bookmarks", {{"name", "empty"}, {"change_id", kRoot}});
  EXPECT_EQ(root_bm.status, 201);

  EXPECT_EQ(Get("/v1/acme/bm/bookmarks/feature%2Fauth").json["change_id"], c["id"]);
  Resp list = Get("/v1/acme/bm/bookmarks?glob=feat*");
  ASSERT_EQ(list.json["bookmarks"].size(), 1u);
  Resp all = Get("/v1/acme/bm/bookmarks?limit=1");
  EXPECT_EQ(all.json["has_more"], true);

  Resp conflict = Post("/v1/acme/bm/bookmarks/merge", {{"target", "main"}, {"source", "feature/auth"}});
  ExpectError(conflict, 409, "MERGE_CONFLICT");
  EXPECT_EQ(conflict.json["error"]["details"]["conflict_paths"], json::array({"f"}));
  std::string hunk = conflict.json["error"]["details"]["conflicts"][0]["hunks"][0]["hunk_id"];
  Resp merged = Post("/v1/acme/bm/bookmarks/merge",
                     {{"target", "main"}, {"source", "feature/auth"}, {"delete_source", true}, {"message", "join"},
                      {"resolutions", json::array({{{"path", "f"}, {"hunks", json::array({{{"hunk_id", hunk}, {"content", rest::Base64Encode("BC\n")}}})}}})}});
  ASSERT_EQ(merged.status, 200) << merged.body;
  EXPECT_EQ(merged.json["merge_type"], "merge_commit");
  EXPECT_EQ(merged.json["source_deleted"], true);
  EXPECT_EQ(merged.json["target"], "main");
  EXPECT_EQ(merged.json["is_conflicted"], false);
  Resp raw = Get("/v1/acme/bm/content?path=f&change_id=" + merged.json["change_id"].get<std::string>(), {{"Accept", "application/octet-stream"}});
  EXPECT_EQ(raw.body, "1\nBC\n3\n");
  ExpectError(Get("/v1/acme/bm/bookmarks/feature%2Fauth"), 404, "BOOKMARK_NOT_FOUND");
  Resp noop = Post("/v1/acme/bm/bookmarks", {{"name", "same"}, {"change_id", merged.json["change_id"]}});
  ASSERT_EQ(noop.status, 201);
  EXPECT_EQ(Post("/v1/acme/bm/bookmarks/merge", {{"target", "main"}, {"source", "same"}}).json["merge_type"], "no_op");
  ExpectError(Post("/v1/acme/bm/bookmarks/merge", {{"target", "main"}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/bm/bookmarks/merge", {{"target", "main"}, {"source", "ghost"}}), 404, "BOOKMARK_NOT_FOUND");

  Resp moved = Patch("/v1/acme/bm/bookmarks/same", {{"change_id", a["id"]}});
  ASSERT_EQ(moved.status, 200);
  EXPECT_EQ(moved.json["from_change_id"], merged.json["change_id"]);
  EXPECT_EQ(moved.json["change_id"], a["id"]);
  ExpectError(Patch("/v1/acme/bm/bookmarks/ghost", {{"change_id", a["id"]}}), 404, "BOOKMARK_NOT_FOUND");
  EXPECT_EQ(Delete("/v1/acme/bm/bookmarks/same").json, json({{"success", true}}));
  ExpectError(Delete("/v1/acme/bm/bookmarks/same"), 404, "BOOKMARK_NOT_FOUND");
  ExpectError(Delete("/v1/acme/bm/bookmarks/main"), 409, "DEFAULT_BOOKMARK");
}

TEST_F(ApiTest, ContentFileDirRawAndErrors) {
  CreateRepo("c");
  std::string binary("\x00\xff\x10" "binary", 9);
  json ch = CreateChange("c", kRoot, json::array({File("docs/a.md", "# A\n"), File("bin/x", binary, "100755"), File("top", "t")}));
  Patch("/v1/acme/c/bookmarks/main", {{"change_id", ch["id"]}});

  Resp file = Get("/v1/acme/c/content?path=docs/a.md");
  ASSERT_EQ(file.status, 200);
  EXPECT_EQ(file.json["type"], "file");
  EXPECT_EQ(file.json["name"], "a.md");
  EXPECT_EQ(file.json["path"], "docs/a.md");
  EXPECT_EQ(file.json["encoding"], "base64");
  EXPECT_EQ(file.json["content"], rest::Base64Encode("# A\n"));
  EXPECT_EQ(file.json["size"], 4);
  EXPECT_EQ(file.json["mode"], "100644");
  EXPECT_EQ(file.json["sha"].get<std::string>().size(), 40u);

  Resp raw = Get("/v1/acme/c/content?path=bin/x&change_id=" + ch["id"].get<std::string>(), {{"Accept", "application/octet-stream"}});
  ASSERT_EQ(raw.status, 200);
  EXPECT_EQ(raw.body, binary);
  EXPECT_EQ(raw.content_type, "application/octet-stream");

  Resp root = Get("/v1/acme/c/content");
  ASSERT_EQ(root.status, 200);
  EXPECT_EQ(root.json["type"], "dir");
  EXPECT_EQ(root.json["child_count"], 3);
  EXPECT_EQ(root.json["entries"].size(), 3u);
  for (const auto& e : root.json["entries"]) {
    if (e["type"] == "dir") {
      EXPECT_FALSE(e.contains("size"));
      EXPECT_FALSE(e.contains("mode"));
    } else {
      EXPECT_TRUE(e.contains("size"));
    }
  }
  EXPECT_EQ(Get("/v1/acme/c/content?depth=0").json["entries"].size(), 0u);
  EXPECT_EQ(Get("/v1/acme/c/content?depth=2").json["entries"].size(), 5u);
  EXPECT_EQ(Get("/v1/acme/c/content?path=docs&depth=1").json["entries"][0]["path"], "docs/a.md");
  EXPECT_EQ(Get("/v1/acme/c/content?change_id=" + kRoot).json["entries"].size(), 0u);

  ExpectError(Get("/v1/acme/c/content?path=docs", {{"Accept", "application/octet-stream"}}), 406, "NOT_ACCEPTABLE");
  ExpectError(Get("/v1/acme/c/content?path=missing"), 404, "PATH_NOT_FOUND");
  ExpectError(Get("/v1/acme/c/content?path=../x"), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/c/content?depth=11"), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/c/content?change_id=bogus"), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/c/content?change_id=" + std::string(32, 'k')), 404, "CHANGE_NOT_FOUND");
  ExpectError(Get("/v1/acme/nope/content"), 404, "REPO_NOT_FOUND");
}

TEST_F(ApiTest, DiffJsonAndUnifiedText) {
  CreateRepo("d");
  json a = CreateChange("d", kRoot, json::array({File("f.txt", "one\ntwo\n")}));
  json b = CreateChange("d", a["id"], json::array({File("f.txt", "one\n2\n"), File("g.txt", "new\n")}));
  std::string q = "/v1/acme/d/diff?base_change_id=" + a["id"].get<std::string>() + "&head_change_id=" + b["id"].get<std::string>();
  Resp d = Get(q);
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.json["stats"], json({{"entries", 2}, {"additions", 2}, {"deletions", 1}, {"changes", 3}, {"conflicted_entries", 0}, {"conflicted_hunks", 0}}));
  EXPECT_EQ(d.json["truncated"], false);
  EXPECT_EQ(d.json["conflicted_entries"], json::array());
  const json& e = d.json["entries"][0];
  EXPECT_EQ(e["path"], "f.txt");
  EXPECT_EQ(e["status"], "modified");
  EXPECT_TRUE(e["old_path"].is_null());
  EXPECT_TRUE(e["omitted_reason"].is_null());
  EXPECT_TRUE(e["conflict_hunks"].is_null());
  EXPECT_EQ(e["hunks"][0]["lines"], json::array({{{"kind", "context"}, {"text", "one"}}, {{"kind", "deleted"}, {"text", "two"}}, {{"kind", "added"}, {"text", "2"}}}));
  Resp text = Get(q, {{"Accept", "text/plain"}});
  ASSERT_EQ(text.status, 200);
  EXPECT_NE(text.content_type.find("text/plain"), std::string::npos);
  EXPECT_NE(text.body.find("--- a/f.txt\n+++ b/f.txt\n"), std::string::npos);
  EXPECT_NE(text.body.find("+new\n"), std::string::npos);
  ExpectError(Get("/v1/acme/d/diff?base_change_id=" + kRoot), 400, "VALIDATION_ERROR");
  ExpectError(Get(q + "&conflicts=maybe"), 400, "VALIDATION_ERROR");
  EXPECT_EQ(Get("/v1/acme/d/diff?base_change_id=" + kRoot + "&head_change_id=" + kRoot).json["entries"], json::array());
}

TEST_F(ApiTest, ScopesAndRepoRestrictions) {
  CreateRepo("open");
  CreateRepo("secret");
  std::string read = NewKey({"read"});
  std::string write = NewKey({"write"});
  ExpectError(Call("POST", "/v1/acme/repos", Body(json({{"name", "x"}})), read), 403, "FORBIDDEN");
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, read).status, 200);
  EXPECT_EQ(Call("POST", "/v1/acme/repos", Body(json({{"name", "by-writer"}})), write).status, 201);
  ExpectError(Call("GET", "/v1/acme/api-keys", nullptr, write), 403, "FORBIDDEN");

  std::string open_id = Get("/v1/acme/open").json["id"];
  std::string restricted = NewKey({"read", "write"}, std::vector<std::string>{open_id});
  EXPECT_EQ(Call("GET", "/v1/acme/open", nullptr, restricted).status, 200);
  ExpectError(Call("GET", "/v1/acme/secret", nullptr, restricted), 404, "REPO_NOT_FOUND");
  Resp list = Call("GET", "/v1/acme/repos", nullptr, restricted);
  ASSERT_EQ(list.json["repos"].size(), 1u);
  EXPECT_EQ(list.json["repos"][0]["name"], "open");
}

TEST_F(ApiTest, ApiKeysLifecycle) {
  Resp created = Post("/v1/acme/api-keys", {{"name", "ci"}, {"scopes", json::array({"read"})}, {"expires_in_seconds", 3600}, {"tags", {{"Team", "x"}}}});
  ASSERT_EQ(created.status, 201) << created.body;
  std::string secret = created.json["key"];
  EXPECT_TRUE(secret.starts_with("mesa_"));
  EXPECT_EQ(created.json["tags"], json({{"team", "x"}}));
  EXPECT_EQ(Call("GET", "/v1/whoami", nullptr, secret).json["scopes"], json::array({"read"}));
  Resp list = Get("/v1/acme/api-keys");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.find(secret), std::string::npos);
  bool found = false;
  for (const auto& k : list.json["api_keys"]) found |= k["id"] == created.json["id"];
  EXPECT_TRUE(found);
  Resp tags = Patch("/v1/acme/api-keys/" + created.json["id"].get<std::string>(), {{"tags", {{"team", nullptr}, {"a", "b"}}}});
  EXPECT_EQ(tags.json, json({{"tags", {{"a", "b"}}}}));
  EXPECT_EQ(Delete("/v1/acme/api-keys/" + created.json["id"].get<std::string>()).json, json({{"success", true}}));
  ExpectError(Call("GET", "/v1/whoami", nullptr, secret), 401, "UNAUTHENTICATED");
  ExpectError(Delete("/v1/acme/api-keys/key_nope"), 404, "API_KEY_NOT_FOUND");
  ExpectError(Post("/v1/acme/api-keys", {{"scopes", json::array({"root"})}}), 400, "VALIDATION_ERROR");
  ExpectError(Post("/v1/acme/api-keys", {{"expires_in_seconds", 5}}), 400, "VALIDATION_ERROR");
}

TEST_F(ApiTest, RoutingErrorsAndAccessLog) {
  ExpectError(Get("/v2/whoami"), 404, "NOT_FOUND");
  ExpectError(Call("PUT", "/v1/acme/repos", Body(json(json::object()))), 405, "METHOD_NOT_ALLOWED");
  ExpectError(Get("/v1/acme/repos/x/y/z"), 404, "NOT_FOUND");
  ExpectError(Get("/v1/acme/c%zz"), 400, "VALIDATION_ERROR");
  // One access-log line per request, without credentials. A line is written once its response
  // is sent, so the last one may land just after the client has it.
  std::string log;
  for (int i = 0; i < 200; ++i) {
    std::ifstream in(access_log_);
    std::stringstream ss;
    ss << in.rdbuf();
    log = ss.str();
    if (std::count(log.begin(), log.end(), '\n') >= 4) break;  // the four requests above
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(log.find("method=GET path=/v2/whoami status=404"), std::string::npos) << log;
  EXPECT_NE(log.find("method=PUT path=/v1/acme/repos status=405"), std::string::npos);
  EXPECT_EQ(log.find(key_), std::string::npos);
  EXPECT_EQ(log.find("Bearer"), std::string::npos);
}

}  // namespace
}  // namespace mesa::testing
