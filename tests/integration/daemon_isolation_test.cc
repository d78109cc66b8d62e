// Another local user (a uid with no account, switched to in a child process) can neither
// see nor use root's sessions, repos or org; identity comes from SO_PEERCRED only.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>

#include "mesa/client.h"
#include "nlohmann/json.hpp"
#include "tests/integration/daemon_fixture.h"

namespace mesa::testing {
namespace {

constexpr uid_t kOtherUid = 45123;
std::string g_self;

// Child side: runs as kOtherUid and prints one JSON object describing what it saw.
int ChildMain(const std::string& socket, const std::string& root_session) {
  if (setgroups(0, nullptr) != 0 || setgid(kOtherUid) != 0 || setuid(kOtherUid) != 0) return 90;
  nlohmann::json out;
  ClientOptions o;
  o.socket = socket;
  auto attempt = [&](const char* name, auto&& fn) {
    try {
      out[name] = {{"ok", true}, {"value", fn()}};
    } catch (const ApiError& e) {
      out[name] = {{"ok", false}, {"code", e.code()}, {"grpc", static_cast<int>(e.grpc_code())}};
    } catch (const MesaError& e) {
      out[name] = {{"ok", false}, {"code", e.code()}};
    }
  };
  Client client(o);
  attempt("sessions", [&] {
    nlohmann::json ids = nlohmann::json::array();
    for (const auto& s : client.sessions().list()) ids.push_back({{"id", s.id()}, {"uid", s.uid()}});
    return ids;
  });
  attempt("all_sessions", [&] { return client.sessions().list(true).size(); });
  ClientOptions stolen = o;
  stolen.session_id = root_session;
  Client thief(stolen);
  attempt("stolen_whoami", [&] { return thief.sessions().whoami().org().slug(); });
  attempt("stolen_repos", [&] { return thief.repos().list().repos_size(); });
  attempt("logout_root", [&] {
    client.sessions().logout(root_session);
    return true;
  });
  attempt("whoami", [&] { return client.sessions().whoami().org().slug(); });
  attempt("repos", [&] {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& r : client.repos().list_all()) names.push_back(r.name());
    return names;
  });
  attempt("get_secret", [&] { return client.repos().get("secret").id(); });
  ClientOptions other_org = o;
  other_org.org = "root";
  Client cross(other_org);
  attempt("cross_org", [&] { return cross.repos().get("secret").id(); });
  std::cout << out.dump() << std::endl;
  return 0;
}

nlohmann::json RunAsOtherUid(const std::string& socket, const std::string& root_session) {
  std::string out;
  int rc = RunCommand(g_self + " --as-other-uid " + socket + " " + (root_session.empty() ? "-" : root_session), &out);
  EXPECT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_TRUE(j.is_object()) << out;
  return j;
}

class IsolationTest : public ::testing::TestWithParam<ApiMode> {
 protected:
  void SetUp() override {
    if (getuid() != 0) GTEST_SKIP() << "needs root to switch to another uid";
    chmod(dir_.path().c_str(), 0755);  // the other user must reach the socket
  }
  TempDir dir_;
};

TEST_P(IsolationTest, OtherUidSeesNothingOfRoot) {
  std::unique_ptr<MesaServerProcess> server;
  std::unique_ptr<MesadProcess> mesad;
  std::string root_session;
  if (GetParam() == ApiMode::kRemote) {
    server = std::make_unique<MesaServerProcess>(dir_.path());
    mesad = std::make_unique<MesadProcess>(dir_.path(), server->api_url());
    dv1::LoginRequest login;
    login.set_api_key(server->key());
    root_session = mesad->NewClient()->sessions().login(login).session_id();
  } else {
    mesad = std::make_unique<MesadProcess>(dir_.path());
    mesad->NewClient()->sessions().whoami();  // provisions root's session and org
    root_session = mesad->NewClient()->sessions().list()[0].id();
  }
  auto root = mesad->NewClient();
  root->repos().create("secret");

  nlohmann::json seen = RunAsOtherUid(mesad->socket(), root_session);
  // Root's sessions are invisible, unusable and cannot be logged out by the other uid.
  for (const auto& s : seen["sessions"]["value"]) {
    EXPECT_NE(s["id"], root_session);
    EXPECT_EQ(s["uid"], kOtherUid);
  }
  EXPECT_EQ(seen["all_sessions"]["code"], "FORBIDDEN");
  EXPECT_EQ(seen["stolen_whoami"]["code"], "SESSION_NOT_FOUND");
  EXPECT_EQ(seen["stolen_repos"]["code"], "SESSION_NOT_FOUND");
  EXPECT_EQ(seen["logout_root"]["code"], "SESSION_NOT_FOUND");
  EXPECT_EQ(root->sessions().whoami().org().slug(), GetParam() == ApiMode::kRemote ? "acme" : "root");

  if (GetParam() == ApiMode::kRemote) {
    // Not logged in: nothing to fall back on.
    EXPECT_EQ(seen["whoami"]["code"], "NOT_LOGGED_IN");
    EXPECT_EQ(seen["repos"]["code"], "NOT_LOGGED_IN");
  } else {
    // The embedded store gives the other user an org of their own, without root's repos.
    EXPECT_EQ(seen["whoami"]["value"], "uid-" + std::to_string(kOtherUid)) << seen.dump();
    EXPECT_EQ(seen["repos"]["value"], nlohmann::json::array());
    EXPECT_EQ(seen["get_secret"]["code"], "REPO_NOT_FOUND");
    EXPECT_EQ(seen["cross_org"]["code"], "ORG_NOT_FOUND");
    // And root still sees only its own session.
    auto mine = root->sessions().list();
    ASSERT_EQ(mine.size(), 1u);
    EXPECT_EQ(mine[0].uid(), 0u);
    EXPECT_EQ(root->sessions().list(true).size(), 2u);  // root may list everything
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, IsolationTest, ::testing::Values(ApiMode::kRemote, ApiMode::kEmbedded),
                         [](const auto& info) { return info.param == ApiMode::kRemote ? "Remote" : "Embedded"; });

}  // namespace
}  // namespace mesa::testing

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--as-other-uid")
    return mesa::testing::ChildMain(argv[2], std::string(argv[3]) == "-" ? "" : argv[3]);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  mesa::testing::g_self = std::string(self, n > 0 ? static_cast<size_t>(n) : 0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
