// API keys, scopes, access tokens, webhook targets and webhook delivery over real HTTP, against
// an in-process server (the delivery worker runs inside the HttpServer) and a local receiver.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "rest/access_token.h"
#include "rest/encoding.h"
#include "tests/http/http_fixture.h"
#include "tests/http/webhook_receiver.h"

namespace mesa::testing {
namespace {

using nlohmann::json;
const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
const json kApiEvents = json::array({"repo.created", "repo.updated", "repo.deleted", "bookmark.created",
                                     "bookmark.deleted", "bookmark.moved", "bookmark.merged", "change.created",
                                     "change.evolved", "push"});

json File(const std::string& path, const std::string& content) {
  return {{"path", path}, {"content", rest::Base64Encode(content)}, {"encoding", "base64"}};
}

void ExpectError(const Resp& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  ASSERT_TRUE(r.json.is_object()) << r.body;
  EXPECT_EQ(r.json["error"]["code"], code) << r.body;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Checks an envelope against the SDK's schema (dist/webhooks/schemas.js) for the API events.
void ExpectEnvelope(const json& e, const std::string& org_slug) {
  ASSERT_TRUE(e.is_object());
  for (const char* k : {"id", "type", "occurred_at"}) ASSERT_TRUE(e[k].is_string()) << k << e.dump();
  EXPECT_TRUE(e["id"].get<std::string>().starts_with("evt_"));
  EXPECT_EQ(e["organization"]["slug"], org_slug);
  for (const char* k : {"id", "slug", "name"}) EXPECT_TRUE(e["organization"][k].is_string());
  ASSERT_TRUE(e["repository"].is_object()) << e.dump();
  for (const char* k : {"id", "name", "url"}) EXPECT_TRUE(e["repository"][k].is_string());
  const json& d = e["data"];
  const std::string type = e["type"];
  auto repo_info = [](const json& r) {
    for (const char* k : {"id", "name", "default_bookmark", "head_change_id", "created_at"}) EXPECT_TRUE(r[k].is_string()) << k;
    EXPECT_TRUE(r["tags"].is_object());
  };
  auto bookmark_info = [](const json& b) {
    EXPECT_TRUE(b["name"].is_string());
    EXPECT_TRUE(b["is_default"].is_boolean());
    EXPECT_EQ(b["change_id"].get<std::string>().size(), 32u);
    EXPECT_EQ(b["commit_oid"].get<std::string>().size(), 40u);
  };
  auto change_info = [](const json& c) {
    for (const char* k : {"id", "current_commit_oid", "message", "created_at", "updated_at"}) EXPECT_TRUE(c[k].is_string()) << k;
    for (const char* k : {"author", "committer"}) {
      EXPECT_TRUE(c[k]["name"].is_string());
      EXPECT_TRUE(c[k]["email"].is_string());
      EXPECT_TRUE(c[k]["date"].is_string());
    }
    EXPECT_TRUE(c["parents"].is_array());
  };
  if (type == "repo.created" || type == "repo.deleted") {
    repo_info(d["repo"]);
  } else if (type == "repo.updated") {
    repo_info(d["repo"]);
    for (const char* k : {"before", "after"}) {
      EXPECT_TRUE(d[k]["name"].is_string());
      EXPECT_TRUE(d[k]["default_bookmark"].is_string());
      EXPECT_TRUE(d[k]["tags"].is_object());
    }
  } else if (type.starts_with("bookmark.")) {
    bookmark_info(d["bookmark"]);
    if (type == "bookmark.moved") {
      EXPECT_TRUE(d["from"]["change_id"].is_string());
      EXPECT_TRUE(d["from"]["commit_oid"].is_string());
    }
  } else if (type == "change.created" || type == "change.evolved") {
    change_info(d["change"]);
    if (type == "change.evolved") {
      EXPECT_TRUE(d["previous_current_commit_oid"].is_string());
    }
  } else if (type == "push") {
    ASSERT_TRUE(d["updates"].is_array());
    EXPECT_FALSE(d["updates"].empty());
    for (const auto& u : d["updates"]) {
      EXPECT_TRUE(u["ref"].get<std::string>().starts_with("refs/heads/"));
      EXPECT_EQ(u["ref"], "refs/heads/" + u["bookmark"].get<std::string>());
      EXPECT_TRUE(u["before"].is_null() || u["before"].is_string());
      EXPECT_TRUE(u["after"].is_null() || u["after"].is_string());
      EXPECT_TRUE(u["action"] == "created" || u["action"] == "updated" || u["action"] == "deleted");
    }
    EXPECT_EQ(d["reconciliation"].size(), 6u);
    for (const auto& [k, v] : d["reconciliation"].items()) EXPECT_TRUE(v.is_number()) << k;
  } else {
    ADD_FAILURE() << "unexpected event type " << type;
  }
}

class WebhooksTest : public HttpFixture {
 protected:
  Resp Send(const std::string& method, const std::string& path, const json& body, const std::string& key = "") {
    return Call(method, path, &body, key);
  }
  json CreateRepo(const std::string& name, const std::string& key = "") {
    json body = {{"name", name}};
    Resp r = Call("POST", "/v1/acme/repos", &body, key);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json;
  }
  json CreateChange(const std::string& repo, const std::string& base, const std::string& path,
                    const std::string& content) {
    Resp r = Post("/v1/acme/" + repo + "/changes",
                  {{"base_change_id", base}, {"message", "m"}, {"files", json::array({File(path, content)})},
                   {"author", {{"name", "A"}, {"email", "a@example.com"}}}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json;
  }
  // A webhook target on `receiver` at `path`; registers its secret with the receiver.
  json CreateTarget(const std::string& path, json extra = json::object()) {
    json body = {{"url", receiver_.Url(path)}, {"events", kApiEvents}};
    body.update(extra);
    Resp r = Post("/v1/acme/webhook-targets", body);
    EXPECT_EQ(r.status, 201) << r.body;
    receiver_.SetSecret(path, r.json.value("secret", ""));
    return r.json;
  }
  std::string KeyId(const std::string& secret) { return Call("GET", "/v1/whoami", nullptr, secret).json["key_id"]; }
  std::string Token(const std::string& key, std::vector<std::string> scopes,
                    std::optional<std::vector<std::string>> repos = std::nullopt, int64_t ttl = 600,
                    int64_t now = 0) {
    rest::AccessTokenParams p;
    p.key_id = KeyId(key);
    p.raw_api_key = key;
    p.scopes = std::move(scopes);
    p.repos = std::move(repos);
    p.ttl_seconds = ttl;
    p.now_seconds = now;
    return rest::SignAccessToken(p);
  }

  WebhookReceiver receiver_;
};

// ---- webhook targets ----

TEST_F(WebhooksTest, TargetCrudShapesAndValidation) {
  json repo = CreateRepo("alpha");
  Resp created = Post("/v1/acme/webhook-targets", {{"url", receiver_.Url("/a")}});
  ASSERT_EQ(created.status, 201) << created.body;
  const json& t = created.json;
  EXPECT_EQ(t.size(), 8u) << t.dump();
  for (const char* k : {"id", "name", "url", "events", "repo_ids", "created_at", "updated_at", "secret"})
    EXPECT_TRUE(t.contains(k)) << k;
  const std::string secret = t["secret"];
  EXPECT_TRUE(secret.starts_with("whsec_")) << secret;
  EXPECT_GE(secret.size(), 40u);
  EXPECT_TRUE(t["name"].is_null());
  EXPECT_EQ(t["events"], json::array({"push"}));  // the default
  EXPECT_TRUE(t["repo_ids"].is_null());
  const std::string id = t["id"];

  Resp got = Get("/v1/acme/webhook-targets/" + id);
  ASSERT_EQ(got.status, 200);
  json without_secret = t;
  without_secret.erase("secret");
  EXPECT_EQ(got.json, without_secret);
  Resp list = Get("/v1/acme/webhook-targets");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json["webhook_targets"], json::array({without_secret}));
  EXPECT_EQ(list.json["has_more"], false);
  EXPECT_TRUE(list.json["next_cursor"].is_null());

  Resp patched = Patch("/v1/acme/webhook-targets/" + id,
                       {{"name", "ci"}, {"events", {"push", "change.created", "push"}}, {"repo_ids", {repo["id"]}},
                        {"url", receiver_.Url("/b")}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.json["name"], "ci");
  EXPECT_EQ(patched.json["events"], json::array({"push", "change.created"}));
  EXPECT_EQ(patched.json["repo_ids"], json::array({repo["id"]}));
  EXPECT_EQ(patched.json["url"], receiver_.Url("/b"));
  EXPECT_EQ(patched.json["created_at"], t["created_at"]);
  EXPECT_FALSE(patched.json.contains("secret"));
  // Only the fields sent change; null name and null repo_ids clear (org-wide).
  Resp cleared = Patch("/v1/acme/webhook-targets/" + id, {{"name", nullptr}, {"repo_ids", nullptr}});
  ASSERT_EQ(cleared.status, 200) << cleared.body;
  EXPECT_TRUE(cleared.json["name"].is_null());
  EXPECT_TRUE(cleared.json["repo_ids"].is_null());
  EXPECT_EQ(cleared.json["events"], json::array({"push", "change.created"}));

  for (const json& bad : {json{{"url", "ftp://example.com/x"}}, json{{"url", "not a url"}}, json::object(),
                          json{{"url", "http://"}}, json{{"url", receiver_.Url("/x")}, {"events", json::array()}},
                          json{{"url", receiver_.Url("/x")}, {"events", {"sync_run.enqueued"}}},
                          json{{"url", receiver_.Url("/x")}, {"repo_ids", json::array()}},
                          json{{"url", receiver_.Url("/x")}, {"repo_ids", {"repo_nope"}}},
                          json{{"url", 5}}}) {
    ExpectError(Post("/v1/acme/webhook-targets", bad), 400, "VALIDATION_ERROR");
  }
  ExpectError(Patch("/v1/acme/webhook-targets/" + id, {{"url", "file:///etc/passwd"}}), 400, "VALIDATION_ERROR");
  ExpectError(Patch("/v1/acme/webhook-targets/" + id, {{"events", nullptr}}), 400, "VALIDATION_ERROR");
  ExpectError(Get("/v1/acme/webhook-targets/wht_nope"), 404, "WEBHOOK_TARGET_NOT_FOUND");
  ExpectError(Patch("/v1/acme/webhook-targets/wht_nope", {{"name", "x"}}), 404, "WEBHOOK_TARGET_NOT_FOUND");
  ExpectError(Send("PUT", "/v1/acme/webhook-targets", json(json::object())), 405, "METHOD_NOT_ALLOWED");

  // Pagination.
  Post("/v1/acme/webhook-targets", {{"url", receiver_.Url("/c")}});
  Resp page1 = Get("/v1/acme/webhook-targets?limit=1");
  ASSERT_EQ(page1.json["webhook_targets"].size(), 1u);
  EXPECT_EQ(page1.json["has_more"], true);
  Resp page2 = Get("/v1/acme/webhook-targets?limit=1&cursor=" + page1.json["next_cursor"].get<std::string>());
  ASSERT_EQ(page2.json["webhook_targets"].size(), 1u);
  EXPECT_NE(page2.json["webhook_targets"][0]["id"], page1.json["webhook_targets"][0]["id"]);
  ExpectError(Get("/v1/acme/webhook-targets?limit=0"), 400, "VALIDATION_ERROR");
  // No response after creation carries the secret.
  EXPECT_EQ(Get("/v1/acme/webhook-targets").body.find(secret), std::string::npos);

  EXPECT_EQ(Delete("/v1/acme/webhook-targets/" + id).json, json({{"success", true}}));
  ExpectError(Delete("/v1/acme/webhook-targets/" + id), 404, "WEBHOOK_TARGET_NOT_FOUND");
}

TEST_F(WebhooksTest, TargetsNeedAdminAndRespectRepoRestrictions) {
  json mine = CreateRepo("mine");
  CreateRepo("theirs");
  json org_wide = CreateTarget("/org");
  for (const std::string& key : {NewKey({"read"}), NewKey({"write"}), NewKey({"read", "write"})}) {
    ExpectError(Call("GET", "/v1/acme/webhook-targets", nullptr, key), 403, "FORBIDDEN");
    json body = {{"url", receiver_.Url("/x")}};
    ExpectError(Call("POST", "/v1/acme/webhook-targets", &body, key), 403, "FORBIDDEN");
    ExpectError(Call("DELETE", "/v1/acme/webhook-targets/" + org_wide["id"].get<std::string>(), nullptr, key), 403,
                "FORBIDDEN");
  }
  std::string restricted = NewKey({"admin"}, std::vector<std::string>{mine["id"]});
  json org_body = {{"url", receiver_.Url("/r")}};
  ExpectError(Call("POST", "/v1/acme/webhook-targets", &org_body, restricted), 403, "FORBIDDEN");
  json own_body = {{"url", receiver_.Url("/r")}, {"repo_ids", {mine["id"]}}};
  Resp own = Call("POST", "/v1/acme/webhook-targets", &own_body, restricted);
  ASSERT_EQ(own.status, 201) << own.body;
  Resp listed = Call("GET", "/v1/acme/webhook-targets", nullptr, restricted);
  ASSERT_EQ(listed.json["webhook_targets"].size(), 1u);
  EXPECT_EQ(listed.json["webhook_targets"][0]["id"], own.json["id"]);
  ExpectError(Call("GET", "/v1/acme/webhook-targets/" + org_wide["id"].get<std::string>(), nullptr, restricted), 404,
              "WEBHOOK_TARGET_NOT_FOUND");
  json widen = {{"repo_ids", nullptr}};
  ExpectError(Call("PATCH", "/v1/acme/webhook-targets/" + own.json["id"].get<std::string>(), &widen, restricted), 403,
              "FORBIDDEN");
  EXPECT_EQ(Get("/v1/acme/webhook-targets").json["webhook_targets"].size(), 2u);  // the org admin sees both
}

// ---- events and delivery ----

TEST_F(WebhooksTest, SignedEventForEveryOperation) {
  json target = CreateTarget("/all");
  json repo = CreateRepo("alpha");
  json c1 = CreateChange("alpha", kRoot, "f", "1\n2\n3\n");
  Resp moved = Patch("/v1/acme/alpha/bookmarks/main", {{"change_id", c1["id"]}});
  ASSERT_EQ(moved.status, 200);
  Resp evolved = Patch("/v1/acme/alpha/changes/" + c1["id"].get<std::string>(), {{"message", "rewritten"}});
  ASSERT_EQ(evolved.status, 200);
  json c2 = CreateChange("alpha", c1["id"], "g", "x\n");
  ASSERT_EQ(Post("/v1/acme/alpha/bookmarks", {{"name", "feature/x"}, {"change_id", c2["id"]}}).status, 201);
  json c3 = CreateChange("alpha", c1["id"], "h", "y\n");
  Patch("/v1/acme/alpha/bookmarks/main", {{"change_id", c3["id"]}});
  Resp merged = Post("/v1/acme/alpha/bookmarks/merge", {{"target", "main"}, {"source", "feature/x"}});
  ASSERT_EQ(merged.status, 200) << merged.body;
  ASSERT_EQ(merged.json["merge_type"], "merge_commit");
  ASSERT_EQ(Post("/v1/acme/alpha/bookmarks", {{"name", "tmp"}, {"change_id", c2["id"]}}).status, 201);
  ASSERT_EQ(Delete("/v1/acme/alpha/bookmarks/tmp").status, 200);
  ASSERT_EQ(Patch("/v1/acme/alpha", {{"name", "beta"}, {"tags", {{"env", "prod"}}}}).status, 200);
  ASSERT_EQ(Delete("/v1/acme/beta").status, 200);

  std::set<std::string> want;
  for (const auto& e : kApiEvents) want.insert(e.get<std::string>());
  ASSERT_TRUE(receiver_.WaitFor("/all", [&](const std::vector<ReceivedWebhook>& got) {
    std::set<std::string> types;
    for (const auto& r : got) types.insert(r.json.value("type", ""));
    return types == want && got.size() >= 22;
  })) << receiver_.Received("/all").size();
  // Let stragglers arrive, then check every request.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto got = receiver_.Received("/all");
  std::set<std::string> ids;
  std::map<std::string, std::vector<json>> by_type;
  for (const auto& r : got) {
    EXPECT_TRUE(r.signature_ok) << r.verify_error << " " << r.signature;
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_TRUE(ids.insert(r.json["id"]).second) << "an event was delivered twice";
    ExpectEnvelope(r.json, "acme");
    EXPECT_EQ(r.json["organization"]["name"], "Acme Inc");
    EXPECT_EQ(r.json["repository"]["id"], repo["id"]);
    by_type[r.json["type"]].push_back(r.json["data"]);
  }
  // Exact payloads of a few events.
  EXPECT_EQ(by_type["repo.created"].size(), 1u);
  EXPECT_EQ(by_type["repo.created"][0]["repo"]["head_change_id"], kRoot);
  ASSERT_EQ(by_type["bookmark.created"].size(), 3u);  // main (with the repo), feature/x, tmp
  EXPECT_EQ(by_type["bookmark.created"][0]["bookmark"]["name"], "main");
  EXPECT_EQ(by_type["bookmark.created"][0]["bookmark"]["commit_oid"], std::string(40, '0'));
  ASSERT_EQ(by_type["change.created"].size(), 4u);  // c1, c2, c3 and the merge
  json first_move;
  for (const auto& d : by_type["bookmark.moved"]) {
    if (d["from"]["change_id"] == kRoot) first_move = d;
  }
  ASSERT_TRUE(first_move.is_object());
  EXPECT_EQ(first_move["bookmark"]["change_id"], c1["id"]);
  EXPECT_EQ(first_move["bookmark"]["commit_oid"], c1["current_commit_oid"]);
  EXPECT_EQ(first_move["from"]["commit_oid"], std::string(40, '0'));
  ASSERT_EQ(by_type["change.evolved"].size(), 1u);
  EXPECT_EQ(by_type["change.evolved"][0]["previous_current_commit_oid"], c1["current_commit_oid"]);
  EXPECT_EQ(by_type["change.evolved"][0]["change"]["current_commit_oid"], evolved.json["current_commit_oid"]);
  EXPECT_EQ(by_type["change.evolved"][0]["change"]["message"], "rewritten");
  ASSERT_EQ(by_type["bookmark.merged"].size(), 1u);
  EXPECT_EQ(by_type["bookmark.merged"][0]["bookmark"]["change_id"], merged.json["change_id"]);
  EXPECT_EQ(by_type["bookmark.merged"][0]["bookmark"]["commit_oid"], merged.json["commit_oid"]);
  ASSERT_EQ(by_type["repo.updated"].size(), 1u);
  EXPECT_EQ(by_type["repo.updated"][0]["before"]["name"], "alpha");
  EXPECT_EQ(by_type["repo.updated"][0]["after"]["name"], "beta");
  EXPECT_EQ(by_type["repo.updated"][0]["after"]["tags"], json({{"env", "prod"}}));
  ASSERT_EQ(by_type["bookmark.deleted"].size(), 1u);
  EXPECT_EQ(by_type["bookmark.deleted"][0]["bookmark"]["name"], "tmp");
  EXPECT_EQ(by_type["repo.deleted"].size(), 1u);
  // Pushes: main created (root -> c1), main followed the rewrite, feature/x created, main
  // moved to c3, main merged, tmp created, tmp deleted.
  std::vector<std::string> actions;
  for (const auto& d : by_type["push"]) {
    for (const auto& u : d["updates"]) actions.push_back(u["bookmark"].get<std::string>() + ":" + u["action"].get<std::string>());
  }
  std::multiset<std::string> got_actions(actions.begin(), actions.end());
  EXPECT_EQ(got_actions, (std::multiset<std::string>{"main:created", "main:updated", "feature/x:created", "main:updated",
                                                      "main:updated", "tmp:created", "tmp:deleted"}));
  auto stats = store_->GetOutboxStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pending, 0);
  EXPECT_EQ(stats->failed, 0);
}

TEST_F(WebhooksTest, TargetsFilterByEventTypeAndRepo) {
  json a = CreateRepo("a");
  json b = CreateRepo("b");
  CreateTarget("/only-a-push", {{"events", {"push"}}, {"repo_ids", {a["id"]}}});
  CreateTarget("/changes", {{"events", {"change.created"}}});
  for (const std::string name : {"a", "b"}) {
    json c = CreateChange(name, kRoot, "f", name);
    Patch("/v1/acme/" + name + "/bookmarks/main", {{"change_id", c["id"]}});
  }
  ASSERT_TRUE(receiver_.WaitFor("/changes", [](const auto& got) { return got.size() >= 2; }));
  ASSERT_TRUE(receiver_.WaitFor("/only-a-push", [](const auto& got) { return got.size() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto pushes = receiver_.Received("/only-a-push");
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushes[0].json["type"], "push");
  EXPECT_EQ(pushes[0].json["repository"]["id"], a["id"]);
  auto changes = receiver_.Received("/changes");
  ASSERT_EQ(changes.size(), 2u);
  for (const auto& r : changes) EXPECT_EQ(r.json["type"], "change.created");
}

TEST_F(WebhooksTest, RetriesKeepTheEventIdAndResign) {
  CreateTarget("/flaky", {{"events", {"repo.created"}}});
  receiver_.FailFirst("/flaky", 2, 500);
  CreateRepo("r1");
  ASSERT_TRUE(receiver_.WaitFor("/flaky", [](const auto& got) { return got.size() >= 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto got = receiver_.Received("/flaky");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].answered, 500);
  EXPECT_EQ(got[1].answered, 500);
  EXPECT_EQ(got[2].answered, 200);
  for (const auto& r : got) {
    EXPECT_TRUE(r.signature_ok) << r.verify_error;
    EXPECT_EQ(r.body, got[0].body);  // same event id, same bytes
  }
  auto stats = store_->GetOutboxStats();
  EXPECT_EQ(stats->pending, 0);
}

class WebhooksGiveUpTest : public WebhooksTest {
  void ConfigureServer(server::HttpServerOptions& o) override { o.webhooks.max_attempts = 3; }
};

TEST_F(WebhooksGiveUpTest, StopsAfterMaxAttempts) {
  CreateTarget("/down", {{"events", {"repo.created"}}});
  receiver_.SetStatus("/down", 503);
  CreateRepo("r1");
  ASSERT_TRUE(receiver_.WaitFor("/down", [](const auto& got) { return got.size() >= 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // > the whole backoff: no 4th attempt
  EXPECT_EQ(receiver_.Received("/down").size(), 3u);
  auto stats = store_->GetOutboxStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pending, 0);
  EXPECT_EQ(stats->failed, 1);
}

TEST_F(WebhooksTest, DeliveryNeverBlocksTheApiAndStopIsFast) {
  CreateTarget("/slow", {{"events", {"repo.created", "change.created"}}});
  receiver_.SetDelayMs("/slow", 1500);
  auto t0 = std::chrono::steady_clock::now();
  CreateRepo("quick");
  CreateChange("quick", kRoot, "f", "x");
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(ms, 1000) << "API calls waited for webhook delivery";
  // Both attempts are in flight at the receiver now; stopping must not wait for them.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto s0 = std::chrono::steady_clock::now();
  http_->Stop();
  thread_.join();
  double stop_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count();
  EXPECT_LT(stop_ms, 1000) << "stopping waited for in-flight deliveries";
  // The abandoned attempts are still in the outbox (delivered after a restart).
  auto stats = store_->GetOutboxStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pending, 2);
}

TEST_F(WebhooksTest, DeletingATargetDropsItsPendingDeliveries) {
  json t = CreateTarget("/gone", {{"events", {"repo.created"}}});
  receiver_.SetStatus("/gone", 500);
  CreateRepo("r1");
  ASSERT_TRUE(receiver_.WaitFor("/gone", [](const auto& got) { return !got.empty(); }));
  ASSERT_EQ(Delete("/v1/acme/webhook-targets/" + t["id"].get<std::string>()).status, 200);
  auto stats = store_->GetOutboxStats();
  EXPECT_EQ(stats->pending + stats->failed, 0);
}

// Delivery off: the outbox rows stay put, so they can be counted exactly.
class OutboxTest : public WebhooksTest {
  void ConfigureServer(server::HttpServerOptions& o) override { o.webhooks.enabled = false; }
};

TEST_F(OutboxTest, AnEventExistsIffItsMutationCommitted) {
  auto pending = [&] { return store_->GetOutboxStats()->pending; };
  CreateRepo("before-targets");
  EXPECT_EQ(pending(), 0);  // no targets: nothing is recorded
  CreateTarget("/t");
  CreateTarget("/u", {{"events", {"push"}}});
  CreateRepo("s");
  EXPECT_EQ(pending(), 2);  // repo.created + bookmark.created (main), for /t only
  ExpectError(Post("/v1/acme/repos", {{"name", "s"}}), 409, "REPO_ALREADY_EXISTS");
  json c = CreateChange("s", kRoot, "f", "x");
  EXPECT_EQ(pending(), 3);
  ExpectError(Post("/v1/acme/s/changes", {{"base_change_id", std::string(32, 'k')}}), 404, "CHANGE_NOT_FOUND");
  ExpectError(Post("/v1/acme/s/bookmarks", {{"name", "main"}, {"change_id", kRoot}}), 409, "BOOKMARK_ALREADY_EXISTS");
  ExpectError(Delete("/v1/acme/s/bookmarks/main"), 409, "DEFAULT_BOOKMARK");
  EXPECT_EQ(pending(), 3);
  ASSERT_EQ(Patch("/v1/acme/s/bookmarks/main", {{"change_id", c["id"]}}).status, 200);
  EXPECT_EQ(pending(), 5 + 1);  // bookmark.moved + push to /t, push to /u
  ASSERT_EQ(Patch("/v1/acme/s/bookmarks/main", {{"change_id", c["id"]}}).status, 200);
  EXPECT_EQ(pending(), 6);  // not moved: no event
  ExpectError(Patch("/v1/acme/s/changes/" + c["id"].get<std::string>(),
                    {{"message", "x"}, {"base_commit_oid", std::string(40, 'a')}}),
              409, "STALE_BASE_COMMIT");
  ExpectError(Patch("/v1/acme/s", {{"name", "before-targets"}}), 409, "REPO_ALREADY_EXISTS");
  EXPECT_EQ(pending(), 6);
  ASSERT_EQ(Patch("/v1/acme/s", {{"tags", json::object()}}).status, 200);
  EXPECT_EQ(pending(), 6);  // nothing changed: no repo.updated

  auto due = store_->DueDeliveries(rest::NowUnixMillis() + 1000, 100, {});
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 6u);
  std::map<std::string, std::set<std::string>> targets_by_event;
  for (const auto& d : *due) {
    json body = json::parse(d.body);
    EXPECT_EQ(body["id"], d.event_id);
    EXPECT_EQ(body["type"], d.event_type);
    EXPECT_EQ(d.attempts, 0);
    ExpectEnvelope(body, "acme");
    targets_by_event[d.event_id].insert(d.target_id);
  }
  EXPECT_EQ(targets_by_event.size(), 5u);  // the push went to both targets under one event id
}

// ---- access tokens ----

TEST_F(WebhooksTest, AccessTokensActWithinTheirScopes) {
  json open = CreateRepo("open");
  CreateRepo("secret");
  // An admin key's token asking for read only: reads, cannot write.
  std::string read_token = Token(key_, {"read"});
  Resp who = Call("GET", "/v1/whoami", nullptr, read_token);
  ASSERT_EQ(who.status, 200) << who.body;
  EXPECT_EQ(who.json["scopes"], json::array({"read"}));
  EXPECT_EQ(who.json["key_id"], KeyId(key_));
  EXPECT_EQ(who.json["key_name"], "test-admin");
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, read_token).json["repos"].size(), 2u);
  json body = {{"name", "nope"}};
  ExpectError(Call("POST", "/v1/acme/repos", &body, read_token), 403, "FORBIDDEN");
  ExpectError(Call("GET", "/v1/acme/api-keys", nullptr, read_token), 403, "FORBIDDEN");

  // Scopes are clamped to the key's: a read key's token asking for admin can only read.
  std::string read_key = NewKey({"read"});
  std::string greedy = Token(read_key, {"read", "write", "admin"});
  EXPECT_EQ(Call("GET", "/v1/whoami", nullptr, greedy).json["scopes"], json::array({"read"}));
  ExpectError(Call("POST", "/v1/acme/repos", &body, greedy), 403, "FORBIDDEN");
  ExpectError(Call("GET", "/v1/acme/webhook-targets", nullptr, greedy), 403, "FORBIDDEN");
  std::string nothing = Token(read_key, {"admin"});
  EXPECT_EQ(Call("GET", "/v1/whoami", nullptr, nothing).json["scopes"], json::array());
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, nothing), 403, "FORBIDDEN");

  // A write token works for writes.
  std::string write_token = Token(key_, {"read", "write"});
  json made = {{"name", "by-token"}};
  EXPECT_EQ(Call("POST", "/v1/acme/repos", &made, write_token).status, 201);

  // repos: full org/repo names; others (unknown names, other orgs) grant nothing.
  std::string scoped = Token(key_, {"read", "write"}, std::vector<std::string>{"acme/open", "acme/missing", "other/secret"});
  EXPECT_EQ(Call("GET", "/v1/acme/open", nullptr, scoped).status, 200);
  ExpectError(Call("GET", "/v1/acme/secret", nullptr, scoped), 404, "REPO_NOT_FOUND");
  Resp listed = Call("GET", "/v1/acme/repos", nullptr, scoped);
  ASSERT_EQ(listed.json["repos"].size(), 1u);
  EXPECT_EQ(listed.json["repos"][0]["name"], "open");
  ExpectError(Call("POST", "/v1/acme/repos", &body, scoped), 403, "FORBIDDEN");  // restricted: no repo creation

  // A repo-restricted key's token never sees beyond the key's repos, whatever it asks for.
  std::string restricted_key = NewKey({"read"}, std::vector<std::string>{open["id"]});
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, Token(restricted_key, {"read"})).json["repos"].size(), 1u);
  std::string other = Token(restricted_key, {"read"}, std::vector<std::string>{"acme/secret"});
  ExpectError(Call("GET", "/v1/acme/secret", nullptr, other), 404, "REPO_NOT_FOUND");
  ExpectError(Call("GET", "/v1/acme/open", nullptr, other), 404, "REPO_NOT_FOUND");
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, other).json["repos"].size(), 0u);

  // last_used_at is recorded for a key used only through a token.
  Resp fresh = Post("/v1/acme/api-keys", {{"name", "token-only"}, {"scopes", {"read"}}});
  ASSERT_EQ(fresh.status, 201);
  rest::AccessTokenParams p;
  p.key_id = fresh.json["id"];
  p.raw_api_key = fresh.json["key"];
  p.scopes = {"read"};
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, rest::SignAccessToken(p)).status, 200);
  bool seen = false;
  Resp keys = Get("/v1/acme/api-keys");
  for (const auto& k : keys.json["api_keys"]) {
    if (k["id"] != fresh.json["id"]) continue;
    seen = true;
    EXPECT_TRUE(k["last_used_at"].is_string()) << k.dump();
  }
  EXPECT_TRUE(seen);
}

TEST_F(WebhooksTest, InvalidAccessTokensAre401) {
  CreateRepo("open");
  std::string key = NewKey({"read", "write"});
  std::string good = Token(key, {"read"});
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, good).status, 200);
  int64_t now = rest::NowUnixMillis() / 1000;
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, Token(key, {"read"}, std::nullopt, 60, now - 3600)), 401,
              "UNAUTHENTICATED");                                                                      // expired
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, Token(key, {"read"}, std::nullopt, 90000)), 401,
              "UNAUTHENTICATED");                                                                      // > 24 h
  std::string tampered = good;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'a' ? 'b' : 'a';
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, tampered), 401, "UNAUTHENTICATED");
  // Signed by one key, naming another in kid.
  rest::AccessTokenParams p;
  p.key_id = KeyId(key_);
  p.raw_api_key = key;
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, rest::SignAccessToken(p)), 401, "UNAUTHENTICATED");
  p.key_id = "key_doesnotexist";
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, rest::SignAccessToken(p)), 401, "UNAUTHENTICATED");
  // Revoking the key invalidates its tokens.
  std::string key_id = KeyId(key);
  ASSERT_EQ(Delete("/v1/acme/api-keys/" + key_id).status, 200);
  ExpectError(Call("GET", "/v1/acme/repos", nullptr, good), 401, "UNAUTHENTICATED");
  ExpectError(Call("GET", "/v1/whoami", nullptr, good), 401, "UNAUTHENTICATED");
  // Tokens never reach the access log.
  EXPECT_EQ(ReadFile(access_log_).find(good.substr(0, 20)), std::string::npos);
}

// ---- scopes, repo restrictions, revocation, secrecy ----

TEST_F(WebhooksTest, ReadKeyCannotWriteAnything) {
  json repo = CreateRepo("r");
  json c = CreateChange("r", kRoot, "f", "x");
  Patch("/v1/acme/r/bookmarks/main", {{"change_id", c["id"]}});
  Post("/v1/acme/r/bookmarks", {{"name", "b"}, {"change_id", c["id"]}});
  std::string read = NewKey({"read"});
  const std::string cid = c["id"];
  struct W {
    std::string method, path;
    json body;
  } writes[] = {
      {"POST", "/v1/acme/repos", {{"name", "x"}}},
      {"PATCH", "/v1/acme/repos/tags", {{"repo_ids", {repo["id"]}}, {"action", "set"}, {"key", "k"}, {"value", "v"}}},
      {"PATCH", "/v1/acme/r", {{"name", "renamed"}}},
      {"DELETE", "/v1/acme/r", nullptr},
      {"POST", "/v1/acme/r/bookmarks", {{"name", "n"}, {"change_id", cid}}},
      {"PATCH", "/v1/acme/r/bookmarks/b", {{"change_id", kRoot}}},
      {"DELETE", "/v1/acme/r/bookmarks/b", nullptr},
      {"POST", "/v1/acme/r/bookmarks/merge", {{"target", "main"}, {"source", "b"}}},
      {"POST", "/v1/acme/r/changes", {{"base_change_id", kRoot}}},
      {"PATCH", "/v1/acme/r/changes/" + cid, {{"message", "x"}}},
      {"GET", "/v1/acme/api-keys", nullptr},
      {"POST", "/v1/acme/api-keys", {{"name", "x"}}},
      {"DELETE", "/v1/acme/api-keys/" + KeyId(key_), nullptr},
      {"GET", "/v1/acme/webhook-targets", nullptr},
      {"POST", "/v1/acme/webhook-targets", {{"url", "http://127.0.0.1:1/x"}}},
  };
  for (const auto& w : writes) {
    Resp r = Call(w.method, w.path, w.body.is_null() ? nullptr : &w.body, read);
    EXPECT_EQ(r.status, 403) << w.method << " " << w.path << " " << r.body;
    EXPECT_EQ(r.ErrorCode(), "FORBIDDEN") << w.method << " " << w.path;
  }
  // Nothing changed.
  EXPECT_EQ(Get("/v1/acme/r").json["name"], "r");
  EXPECT_EQ(Get("/v1/acme/r").json["tags"], json::object());
  EXPECT_EQ(Get("/v1/acme/r/bookmarks").json["bookmarks"].size(), 2u);
  EXPECT_EQ(Get("/v1/acme/r/changes/" + cid).json["message"], "m");
  EXPECT_EQ(Get("/v1/acme/repos").json["repos"].size(), 1u);
  // A write key can write but not manage keys or webhooks; nor can a write key mint an admin key.
  std::string write = NewKey({"write"});
  EXPECT_EQ(Send("POST", "/v1/acme/repos", json({{"name", "w"}}), write).status, 201);
  ExpectError(Send("POST", "/v1/acme/api-keys", json({{"scopes", {"admin"}}}), write), 403, "FORBIDDEN");
  // Reads work with read.
  for (const std::string& path : std::vector<std::string>{"/v1/acme", "/v1/acme/repos", "/v1/acme/r", "/v1/acme/r/bookmarks",
                                                          "/v1/acme/r/changes", "/v1/acme/r/content", "/v1/acme/r/changes/" + cid})
    EXPECT_EQ(Call("GET", path, nullptr, read).status, 200) << path;
}

TEST_F(WebhooksTest, RepoRestrictedKeySeesOnlyItsRepos) {
  json mine = CreateRepo("mine");
  json theirs = CreateRepo("theirs");
  json c = CreateChange("theirs", kRoot, "f", "secret data");
  Patch("/v1/acme/theirs/bookmarks/main", {{"change_id", c["id"]}});
  std::string key = NewKey({"read", "write", "admin"}, std::vector<std::string>{mine["id"]});
  const std::string cid = c["id"];
  for (const std::string& path : std::vector<std::string>{"/v1/acme/theirs", "/v1/acme/theirs/bookmarks", "/v1/acme/theirs/bookmarks/main", "/v1/acme/theirs/changes",
        "/v1/acme/theirs/changes/" + cid, "/v1/acme/theirs/content?path=f",
        "/v1/acme/theirs/diff?base_change_id=" + kRoot + "&head_change_id=" + cid, "/v1/acme/theirs/upstream/syncs"}) {
    Resp r = Call("GET", path, nullptr, key);
    ExpectError(r, 404, "REPO_NOT_FOUND");
    EXPECT_EQ(r.body.find("secret data"), std::string::npos);
  }
  ExpectError(Call("DELETE", "/v1/acme/theirs", nullptr, key), 404, "REPO_NOT_FOUND");
  json move = {{"change_id", kRoot}};
  ExpectError(Call("PATCH", "/v1/acme/theirs/bookmarks/main", &move, key), 404, "REPO_NOT_FOUND");
  Resp list = Call("GET", "/v1/acme/repos", nullptr, key);
  ASSERT_EQ(list.json["repos"].size(), 1u);
  EXPECT_EQ(list.json["repos"][0]["id"], mine["id"]);
  json tags = {{"repo_ids", {mine["id"], theirs["id"]}}, {"action", "set"}, {"key", "k"}, {"value", "v"}};
  EXPECT_EQ(Call("PATCH", "/v1/acme/repos/tags", &tags, key).json["updated"], 1);
  EXPECT_EQ(Get("/v1/acme/theirs").json["tags"], json::object());
  EXPECT_EQ(Call("GET", "/v1/acme/mine", nullptr, key).status, 200);
  // Its admin scope cannot widen itself: no org-wide keys, and keys beyond it are invisible.
  ExpectError(Send("POST", "/v1/acme/api-keys", json({{"name", "wide"}}), key), 403, "FORBIDDEN");
  Resp narrow = Send("POST", "/v1/acme/api-keys", json({{"repo_ids", {mine["id"]}}}), key);
  EXPECT_EQ(narrow.status, 201) << narrow.body;
  Resp keys = Call("GET", "/v1/acme/api-keys", nullptr, key);
  for (const auto& k : keys.json["api_keys"]) EXPECT_EQ(k["repo_ids"], json::array({mine["id"]}));
  ExpectError(Call("DELETE", "/v1/acme/api-keys/" + KeyId(key_), nullptr, key), 404, "API_KEY_NOT_FOUND");
}

TEST_F(WebhooksTest, RevokedKeyIs401Everywhere) {
  Resp created = Post("/v1/acme/api-keys", {{"name", "short-lived"}, {"scopes", {"admin"}}});
  ASSERT_EQ(created.status, 201);
  const std::string secret = created.json["key"];
  EXPECT_EQ(Call("GET", "/v1/acme/repos", nullptr, secret).status, 200);
  ASSERT_EQ(Delete("/v1/acme/api-keys/" + created.json["id"].get<std::string>()).status, 200);
  for (const std::string path : {"/v1/whoami", "/v1/acme", "/v1/acme/repos", "/v1/acme/api-keys", "/v1/acme/webhook-targets"})
    ExpectError(Call("GET", path, nullptr, secret), 401, "UNAUTHENTICATED");
  ExpectError(Send("POST", "/v1/acme/repos", json({{"name", "x"}}), secret), 401, "UNAUTHENTICATED");
  // Listed as revoked, not as active.
  bool revoked = false;
  Resp revoked_list = Get("/v1/acme/api-keys?status=revoked");
  for (const auto& k : revoked_list.json["api_keys"]) revoked |= k["id"] == created.json["id"];
  EXPECT_TRUE(revoked);
  Resp active = Get("/v1/acme/api-keys");
  for (const auto& k : active.json["api_keys"]) EXPECT_NE(k["id"], created.json["id"]);
}

TEST_F(WebhooksTest, KeyNeverAppearsAfterCreation) {
  // Everything the server writes to stderr in this test is captured.
  std::stringstream captured;
  std::streambuf* old = std::cerr.rdbuf(captured.rdbuf());
  std::string all_bodies;
  auto record = [&](const Resp& r) {
    all_bodies += r.body;
    return r;
  };
  CreateTarget("/keys");
  Resp created = record(Post("/v1/acme/api-keys", {{"name", "ci"}, {"scopes", {"read", "write"}}, {"tags", {{"team", "x"}}}}));
  ASSERT_EQ(created.status, 201);
  const std::string secret = created.json["key"];
  const std::string id = created.json["id"];
  all_bodies.clear();  // the creation response is the one place the key appears
  record(Call("GET", "/v1/whoami", nullptr, secret));
  record(Send("POST", "/v1/acme/repos", json({{"name", "k"}}), secret));
  record(Call("GET", "/v1/acme/repos?limit=0", nullptr, secret));
  record(Get("/v1/acme/api-keys?status=all"));
  record(Get("/v1/acme/api-keys?query=ci"));
  record(Patch("/v1/acme/api-keys/" + id, {{"tags", {{"team", nullptr}}}}));
  record(Call("GET", "/v1/acme/api-keys", nullptr, secret));  // 403
  record(Call("GET", "/v1/acme/repos", nullptr, secret + "x"));  // 401
  record(Delete("/v1/acme/api-keys/" + id));
  record(Call("GET", "/v1/whoami", nullptr, secret));  // 401
  ASSERT_TRUE(receiver_.WaitFor("/keys", [](const auto& got) { return !got.empty(); }));
  std::cerr.rdbuf(old);
  EXPECT_EQ(all_bodies.find(secret), std::string::npos);
  EXPECT_EQ(all_bodies.find(rest::AccessTokenSigningSecret(secret)), std::string::npos);  // nor its hash
  EXPECT_EQ(captured.str().find(secret), std::string::npos);
  EXPECT_EQ(ReadFile(access_log_).find(secret), std::string::npos);
  for (const auto& r : receiver_.Received()) EXPECT_EQ(r.body.find(secret), std::string::npos);
}

}  // namespace
}  // namespace mesa::testing
