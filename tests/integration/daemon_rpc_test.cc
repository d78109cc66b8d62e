// Every mesad RPC through the C++ client against a real mesa-server: over TCP loopback
// (remote mode) and in-process (embedded mode).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <thread>

#include "mesa/client.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "rest/webhook_signature.h"
#include "tests/integration/daemon_fixture.h"

namespace mesa::testing {
namespace {

const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";

dv1::FileOp File(const std::string& path, const std::string& content, const std::string& mode = "") {
  dv1::FileOp f;
  f.set_path(path);
  f.set_content(content);
  f.set_mode(mode);
  return f;
}

class DaemonRpcTest : public ::testing::TestWithParam<ApiMode> {
 protected:
  void SetUp() override {
    if (GetParam() == ApiMode::kRemote) {
      server_ = std::make_unique<MesaServerProcess>(dir_.path());
      mesad_ = std::make_unique<MesadProcess>(dir_.path(), server_->api_url());
      dv1::LoginRequest login;
      login.set_api_key(server_->key());
      login.set_user_agent("rpc-test/1");
      session_ = mesad_->NewClient()->sessions().login(login).session_id();
      org_ = "acme";
    } else {
      mesad_ = std::make_unique<MesadProcess>(dir_.path());
      org_ = "root";  // the embedded store names the org after the local user
    }
    client_ = mesad_->NewClient();
  }

  v1::Change NewChange(const std::string& repo, const std::string& base, std::vector<dv1::FileOp> files,
                       const std::string& message = "m") {
    dv1::CreateChangeRequest req;
    req.set_repo(repo);
    req.set_base_change_id(base);
    req.set_message(message);
    for (auto& f : files) *req.add_files() = std::move(f);
    return client_->changes().create(req);
  }

  TempDir dir_;
  std::unique_ptr<MesaServerProcess> server_;
  std::unique_ptr<MesadProcess> mesad_;
  std::unique_ptr<Client> client_;
  std::string session_;
  std::string org_;
};

TEST_P(DaemonRpcTest, WhoamiOrgAndSessions) {
  v1::Whoami who = client_->sessions().whoami();
  EXPECT_EQ(who.org().slug(), org_);
  EXPECT_TRUE(who.has_key_id());
  EXPECT_EQ(client_->org().num_repos(), 0);
  auto sessions = client_->sessions().list();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0].is_default());
  EXPECT_EQ(sessions[0].resolved_org(), org_);
  EXPECT_EQ(sessions[0].embedded(), GetParam() == ApiMode::kEmbedded);
  // The key itself is never returned.
  if (server_) {
    EXPECT_EQ(sessions[0].DebugString().find(server_->key()), std::string::npos);
  }
  // Credentials stay inside mesad: sessions.json is 0600 and no key reaches the log.
  struct stat st {};
  ASSERT_EQ(stat((mesad_->dir() + "/state/sessions.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((mesad_->dir() + "/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(mesad_->Log().find("mesa_"), std::string::npos) << mesad_->Log();
  auto status = client_->status();
  EXPECT_EQ(status.api_mode(), GetParam() == ApiMode::kEmbedded ? "embedded" : "remote");
  EXPECT_TRUE(status.backend_reachable());
  EXPECT_EQ(status.sessions(), 1);
  try {
    mesad_->NewClient("ses_doesnotexist")->repos().list();
    FAIL() << "expected NotFoundError";
  } catch (const NotFoundError& e) {
    EXPECT_EQ(e.code(), "SESSION_NOT_FOUND");
  }
}

// Logout of the default session promotes the newest other one; on the embedded store the key
// mesad made for the uid dies with its session. Bad login input is a local INVALID_ARGUMENT
// (no HTTP status: no server was asked).
TEST_P(DaemonRpcTest, LogoutPromotesAnotherSessionAndRevokesProvisionedKeys) {
  v1::Whoami first = client_->sessions().whoami();  // provisions (embedded) or uses the login
  dv1::CreateApiKeyRequest extra;
  extra.set_name("second");
  extra.add_scopes("admin");
  v1::ApiKey second_key = client_->api_keys().create(extra);
  dv1::LoginRequest login;
  login.set_api_key(second_key.key());
  if (server_) login.set_api_url(server_->api_url());
  std::string second = client_->sessions().login(login).session_id();
  auto before = client_->sessions().list();
  ASSERT_EQ(before.size(), 2u);
  std::string first_id;
  for (const auto& s : before) {
    if (s.is_default()) first_id = s.id();
  }
  ASSERT_FALSE(first_id.empty());
  ASSERT_NE(first_id, second);

  client_->sessions().logout(first_id);
  auto after = client_->sessions().list();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id(), second);
  EXPECT_TRUE(after[0].is_default());
  EXPECT_EQ(client_->sessions().whoami().key_id(), second_key.id());

  if (!server_) {
    // The provisioned key of the first session is revoked now.
    dv1::ListApiKeysRequest revoked;
    revoked.set_status("revoked");
    auto keys = client_->api_keys().list_all(revoked);
    bool found = false;
    for (const auto& k : keys) found = found || k.id() == first.key_id();
    EXPECT_TRUE(found) << "key " << first.key_id() << " of the logged-out session is not revoked";
  }

  dv1::LoginRequest bad_url;
  bad_url.set_api_key("mesa_x");
  bad_url.set_api_url("ftp://example.com");
  try {
    client_->sessions().login(bad_url);
    FAIL() << "expected InvalidArgumentError";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.grpc_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(e.code(), "INVALID_API_URL");
    EXPECT_EQ(e.http_status(), 0);
  }
  EXPECT_EQ(client_->sessions().list().size(), 1u);  // nothing was added
}

TEST_P(DaemonRpcTest, ReposEveryRpc) {
  dv1::CreateRepoRequest create;
  create.set_name("alpha");
  (*create.mutable_tags())["team"] = "agents";
  v1::Repo alpha = client_->repos().create(create);
  EXPECT_EQ(alpha.name(), "alpha");
  EXPECT_EQ(alpha.org(), org_);
  EXPECT_EQ(alpha.head_change_id(), kRoot);
  EXPECT_FALSE(alpha.has_upstream());
  EXPECT_EQ(alpha.tags().at("team"), "agents");
  for (int i = 0; i < 4; ++i) client_->repos().create("r" + std::to_string(i));
  dv1::ListReposRequest page;
  page.set_limit(2);
  auto first = client_->repos().list(page);
  EXPECT_EQ(first.repos_size(), 2);
  EXPECT_TRUE(first.has_more());
  EXPECT_EQ(client_->repos().list_all(page).size(), 5u);
  dv1::ListReposRequest filtered;
  filtered.set_tags("team:agents");
  EXPECT_EQ(client_->repos().list(filtered).repos_size(), 1);
  EXPECT_EQ(client_->repos().get("alpha").id(), alpha.id());

  dv1::UpdateRepoRequest update;
  update.set_repo("alpha");
  update.set_name("beta");
  (*update.mutable_set_tags())["env"] = "prod";
  update.add_remove_tags("team");
  update.mutable_set_upstream()->set_url("https://example.com/x.git");
  update.mutable_set_upstream()->mutable_token()->set_token("s3cret");
  v1::Repo beta = client_->repos().update(update);
  EXPECT_EQ(beta.name(), "beta");
  EXPECT_EQ(beta.tags().size(), 1u);
  EXPECT_EQ(beta.upstream().auth_kind(), "token");
  EXPECT_EQ(beta.DebugString().find("s3cret"), std::string::npos);

  dv1::BulkUpdateRepoTagsRequest bulk;
  bulk.add_repo_ids(beta.id());
  bulk.set_action("set");
  bulk.set_key("tier");
  bulk.set_value("gold");
  EXPECT_EQ(client_->repos().bulk_update_tags(bulk), 1);
  EXPECT_EQ(client_->repos().get("beta").tags().at("tier"), "gold");

  client_->repos().remove("beta");
  EXPECT_THROW(client_->repos().get("beta"), NotFoundError);
  EXPECT_EQ(client_->org().num_repos(), 4);
}

TEST_P(DaemonRpcTest, ChangesContentDiffBookmarksMerge) {
  client_->repos().create("work");
  std::string big(5 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 2654435761u >> 13);
  v1::Change base = NewChange("work", kRoot, {File("f.txt", "1\n2\n3\n"), File("bin/run", "#!/bin/sh\n", "100755"),
                                             File("big.bin", big)}, "base");
  EXPECT_EQ(base.parents(0), kRoot);
  v1::Change target = NewChange("work", base.id(), {File("f.txt", "1\nT\n3\n")});
  v1::Change source = NewChange("work", base.id(), {File("f.txt", "1\nS\n3\n"), File("new.txt", "n")});
  client_->bookmarks().move("work", "main", target.id());
  EXPECT_EQ(client_->bookmarks().create("work", "feature/x", source.id()).name(), "feature/x");
  EXPECT_EQ(client_->bookmarks().get("work", "feature/x").change_id(), source.id());
  dv1::ListBookmarksRequest bl;
  bl.set_repo("work");
  bl.set_glob("feature/*");
  EXPECT_EQ(client_->bookmarks().list(bl).bookmarks_size(), 1);
  EXPECT_EQ(client_->bookmarks().list_all(dv1::ListBookmarksRequest(bl)).size(), 1u);

  // Content: JSON file, raw bytes (5 MiB, byte-exact), directory listing.
  dv1::GetContentRequest file;
  file.set_repo("work");
  file.set_path("bin/run");
  file.set_change_id(base.id());
  v1::Content run = client_->content().get(file);
  EXPECT_EQ(run.type(), "file");
  EXPECT_EQ(run.mode(), "100755");
  EXPECT_EQ(run.content(), "#!/bin/sh\n");
  EXPECT_EQ(client_->content().read("work", "big.bin", base.id()), big);
  dv1::GetContentRequest dir;
  dir.set_repo("work");
  dir.set_depth(2);
  v1::Content root = client_->content().get(dir);
  EXPECT_EQ(root.type(), "dir");
  EXPECT_EQ(root.child_count(), 3);
  EXPECT_EQ(root.entries_size(), 4);
  dv1::GetContentRequest missing = file;
  missing.set_path("nope");
  try {
    client_->content().get(missing);
    FAIL();
  } catch (const NotFoundError& e) {
    EXPECT_EQ(e.code(), "PATH_NOT_FOUND");
    EXPECT_EQ(e.http_status(), 404);
  }

  // Changes: get with files, update with a stale base → ConflictError, list.
  v1::Change got = client_->changes().get("work", base.id());
  EXPECT_EQ(got.files_size(), 3);
  dv1::UpdateChangeRequest upd;
  upd.set_repo("work");
  upd.set_change_id(target.id());
  upd.set_message("target v2");
  upd.set_base_commit_oid(target.current_commit_oid());
  *upd.add_files() = File("t.txt", "t");
  v1::Change target2 = client_->changes().update(upd);
  EXPECT_EQ(target2.id(), target.id());
  EXPECT_NE(target2.current_commit_oid(), target.current_commit_oid());
  try {
    client_->changes().update(upd);
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.code(), "STALE_BASE_COMMIT");
    EXPECT_EQ(e.http_status(), 409);
    EXPECT_EQ(e.grpc_code(), grpc::StatusCode::ABORTED);
  }
  dv1::ListChangesRequest lc;
  lc.set_repo("work");
  auto changes = client_->changes().list_all(lc);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].id(), target.id());

  // Diff: structured and unified.
  dv1::GetDiffRequest diff;
  diff.set_repo("work");
  diff.set_base_change_id(base.id());
  diff.set_head_change_id(source.id());
  v1::Diff d = client_->diffs().get(diff);
  EXPECT_EQ(d.stats().entries(), 2);
  EXPECT_EQ(d.entries(0).path(), "f.txt");
  EXPECT_EQ(d.entries(0).hunks(0).lines_size(), 4);
  EXPECT_NE(client_->diffs().unified(diff).find("+S\n"), std::string::npos);

  // Merge: conflict (typed, with hunk ids), then a per-hunk resolution.
  dv1::MergeBookmarksRequest merge;
  merge.set_repo("work");
  merge.set_target("main");
  merge.set_source("feature/x");
  std::string hunk;
  try {
    client_->bookmarks().merge(merge);
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.code(), "MERGE_CONFLICT");
    EXPECT_EQ(e.details()["conflict_paths"][0], "f.txt");
    hunk = e.details()["conflicts"][0]["hunks"][0]["hunk_id"];
  }
  auto* res = merge.add_resolutions();
  res->set_path("f.txt");
  auto* h = res->add_hunks();
  h->set_hunk_id(hunk);
  h->set_take("source");
  merge.set_delete_source(true);
  v1::MergeResult merged = client_->bookmarks().merge(merge);
  EXPECT_EQ(merged.merge_type(), "merge_commit");
  EXPECT_TRUE(merged.source_deleted());
  EXPECT_EQ(client_->content().read("work", "f.txt"), "1\nS\n3\n");
  EXPECT_EQ(client_->content().read("work", "t.txt"), "t");
  client_->bookmarks().create("work", "same", merged.change_id());
  dv1::MergeBookmarksRequest noop;
  noop.set_repo("work");
  noop.set_target("main");
  noop.set_source("same");
  EXPECT_EQ(client_->bookmarks().merge(noop).merge_type(), "no_op");
  EXPECT_TRUE(client_->bookmarks().move("work", "same", base.id()).has_from_change_id());
  client_->bookmarks().remove("work", "same");
  EXPECT_THROW(client_->bookmarks().get("work", "same"), NotFoundError);
}

TEST_P(DaemonRpcTest, ErrorClassesCarryHttpStatusAndCode) {
  try {
    client_->repos().create("bad/name");
    FAIL();
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.http_status(), 400);
    EXPECT_EQ(e.code(), "VALIDATION_ERROR");
    EXPECT_EQ(e.grpc_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(e.details()["errors"][0]["field"], "name");
  }
  client_->repos().create("dup");
  try {
    client_->repos().create("dup");
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.code(), "REPO_ALREADY_EXISTS");
  }
  try {
    client_->repos().get("");
    FAIL();
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.http_status(), 0);  // refused by mesad before any request
  }
  // Per-call org override: another org is invisible to this key.
  auto other = mesad_->NewClient(session_, "someone-else");
  try {
    other->repos().list();
    FAIL();
  } catch (const NotFoundError& e) {
    EXPECT_EQ(e.code(), "ORG_NOT_FOUND");
  }
  EXPECT_EQ(mesad_->NewClient(session_, org_)->repos().get("dup").name(), "dup");
  dv1::CreateApiKeyRequest read_only;
  read_only.add_scopes("read");
  read_only.set_name("ro");
  v1::ApiKey ro = client_->api_keys().create(read_only);
  EXPECT_TRUE(ro.key().starts_with("mesa_"));
  dv1::LoginRequest login;
  login.set_api_key(ro.key());
  if (server_) login.set_api_url(server_->api_url());
  auto ro_session = client_->sessions().login(login).session_id();
  try {
    mesad_->NewClient(ro_session)->repos().create("nope");
    FAIL();
  } catch (const AuthorizationError& e) {
    EXPECT_EQ(e.http_status(), 403);
  }
  EXPECT_EQ(mesad_->NewClient(ro_session)->repos().get("dup").name(), "dup");
  dv1::LoginRequest bad;
  bad.set_api_key("mesa_not_a_real_key");
  if (server_) bad.set_api_url(server_->api_url());
  auto bad_session = client_->sessions().login(bad).session_id();
  try {
    mesad_->NewClient(bad_session)->sessions().whoami();
    FAIL();
  } catch (const AuthenticationError& e) {
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_EQ(e.code(), "UNAUTHENTICATED");
  }
  client_->sessions().logout(bad_session);
  EXPECT_THROW(mesad_->NewClient(bad_session)->repos().list(), NotFoundError);
}

TEST_P(DaemonRpcTest, ApiKeysAndWebhooks) {
  dv1::CreateApiKeyRequest create;
  create.set_name("ci");
  create.add_scopes("read");
  create.add_scopes("write");
  create.set_expires_in_seconds(3600);
  (*create.mutable_tags())["team"] = "x";
  v1::ApiKey key = client_->api_keys().create(create);
  EXPECT_FALSE(key.key().empty());
  auto listed = client_->api_keys().list_all();
  bool found = false;
  for (const auto& k : listed) {
    if (k.id() == key.id()) {
      found = true;
      EXPECT_TRUE(k.key().empty());
      EXPECT_TRUE(k.has_expires_at());
    }
  }
  EXPECT_TRUE(found);
  dv1::UpdateApiKeyRequest tags;
  tags.set_id(key.id());
  (*tags.mutable_set_tags())["a"] = "b";
  tags.add_remove_tags("team");
  EXPECT_EQ(client_->api_keys().update(tags), (std::map<std::string, std::string>{{"a", "b"}}));
  client_->api_keys().revoke(key.id());
  dv1::ListApiKeysRequest revoked;
  revoked.set_status("revoked");
  EXPECT_EQ(client_->api_keys().list(revoked).api_keys_size(), 1);

  // Webhook verification by mesad with an explicit secret, and the same locally.
  std::string secret = "whsec_test";
  std::string body = R"({"id":"evt_1","type":"push","occurred_at":"2026-01-01T00:00:00Z",)"
                     R"("organization":{"id":"org_1","slug":"acme","name":"Acme"},"repository":null,)"
                     R"("data":{"updates":[]}})";
  std::map<std::string, std::string> headers = {
      {"X-Mesa-Signature", rest::SignWebhook(secret, rest::NowUnixMillis() / 1000, body)}};
  v1::WebhookEvent event = client_->webhooks().verify(body, headers, secret);
  EXPECT_EQ(event.type(), "push");
  EXPECT_EQ(event.organization().slug(), "acme");
  EXPECT_EQ(Webhooks::VerifyLocally(secret, headers, body).id(), "evt_1");
  EXPECT_THROW(client_->webhooks().verify(body + " ", headers, secret), WebhookVerificationError);
  EXPECT_THROW(Webhooks::VerifyLocally("whsec_other", headers, body), WebhookVerificationError);
}

INSTANTIATE_TEST_SUITE_P(Modes, DaemonRpcTest, ::testing::Values(ApiMode::kRemote, ApiMode::kEmbedded),
                         [](const auto& info) { return info.param == ApiMode::kRemote ? "Remote" : "Embedded"; });

}  // namespace
}  // namespace mesa::testing
