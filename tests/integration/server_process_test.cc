// mesa-server as a process: init output, readiness, git clone of the store, kill -9 safety.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "nlohmann/json.hpp"
#include "rest/encoding.h"
#include "tests/unit/test_util.h"

namespace mesa::testing {
namespace {

using nlohmann::json;
const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";

std::string ServerBin() {
  const char* bin = getenv("MESA_SERVER_BIN");
  return bin ? bin : MESA_SERVER_BIN;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class ServerProcess {
 public:
  ServerProcess(const std::string& data, int port) : port_(port) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a test process that dies early
      std::string listen = "127.0.0.1:" + std::to_string(port);
      std::string log = data + "/access.log";
      execl(ServerBin().c_str(), "mesa-server", "serve", "--data", data.c_str(), "--listen", listen.c_str(),
            "--access-log", log.c_str(), nullptr);
      _exit(127);
    }
    httplib::Client cli("127.0.0.1", port);
    for (int i = 0; i < 400; ++i) {
      if (cli.Get("/v1/whoami")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "mesa-server did not answer on port " << port;
  }
  ~ServerProcess() { Kill(SIGTERM); }
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int port_;
};

std::string Init(const std::string& data) {
  std::string out;
  EXPECT_EQ(RunCommand(ServerBin() + " init --data " + data + " --org acme", &out), 0) << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') + 1);
}

TEST(ServerProcessTest, InitPrintsKeyLastAndStoresOnlyItsHash) {
  TempDir dir;
  std::string data = dir.path() + "/store";
  std::string key = Init(data);
  EXPECT_TRUE(key.starts_with("mesa_")) << key;
  EXPECT_EQ(key.size(), 45u);
  std::string grep;
  // The raw key appears nowhere in the store; its SHA-256 does.
  EXPECT_NE(RunCommand("grep -rqa " + key + " " + data), 0);
  std::string hash = rest::Base64UrlEncodeNoPad(rest::Sha256(key));
  EXPECT_EQ(RunCommand("grep -rqa -- " + hash + " " + data), 0);
}

TEST(ServerProcessTest, GitCloneFindsChangeIdHeaders) {
  TempDir dir;
  std::string data = dir.path() + "/store";
  std::string key = Init(data);
  int port = FreePort();
  ServerProcess server(data, port);
  httplib::Client cli("127.0.0.1", port);
  httplib::Headers auth = {{"Authorization", "Bearer " + key}};
  auto repo = cli.Post("/v1/acme/repos", auth, R"({"name":"cloned"})", "application/json");
  ASSERT_EQ(repo->status, 201);
  std::string repo_id = json::parse(repo->body)["id"];
  json body = {{"base_change_id", kRoot}, {"message", "hello"},
               {"files", json::array({{{"path", "hello.txt"}, {"content", rest::Base64Encode("hi\n")}}})}};
  auto c1 = cli.Post("/v1/acme/cloned/changes", auth, body.dump(), "application/json");
  ASSERT_EQ(c1->status, 201);
  std::string id1 = json::parse(c1->body)["id"];
  body["base_change_id"] = id1;
  body["message"] = "second";
  auto c2 = cli.Post("/v1/acme/cloned/changes", auth, body.dump(), "application/json");
  std::string id2 = json::parse(c2->body)["id"];
  ASSERT_EQ(cli.Patch("/v1/acme/cloned/bookmarks/main", auth, json({{"change_id", id2}}).dump(), "application/json")->status, 200);

  std::string clone = dir.path() + "/clone";
  ASSERT_EQ(RunCommand("git clone -q " + data + "/repos/" + repo_id + ".git " + clone + " 2>&1"), 0);
  std::string log;
  ASSERT_EQ(RunCommand("git -C " + clone + " log --format=%H main", &log), 0);
  std::string headers;
  ASSERT_EQ(RunCommand("git -C " + clone + " cat-file commit HEAD", &headers), 0);
  EXPECT_NE(headers.find("\nchange-id " + id2 + "\n"), std::string::npos) << headers;
  ASSERT_EQ(RunCommand("git -C " + clone + " cat-file commit HEAD~1", &headers), 0);
  EXPECT_NE(headers.find("\nchange-id " + id1 + "\n"), std::string::npos) << headers;
  std::string fsck;
  EXPECT_EQ(RunCommand("git -C " + clone + " fsck --strict 2>&1", &fsck), 0) << fsck;
  std::string file;
  RunCommand("cat " + clone + "/hello.txt", &file);
  EXPECT_EQ(file, "hi\n");
}

TEST(ServerProcessTest, KillNineLeavesNoHalfAppliedRequest) {
  TempDir dir;
  std::string data = dir.path() + "/store";
  std::string key = Init(data);
  int port = FreePort();
  auto server = std::make_unique<ServerProcess>(data, port);
  httplib::Headers auth = {{"Authorization", "Bearer " + key}};
  {
    httplib::Client cli("127.0.0.1", port);
    ASSERT_EQ(cli.Post("/v1/acme/repos", auth, R"({"name":"k"})", "application/json")->status, 201);
  }
  // Writers create changes and move bookmarks until the server is killed mid-flight.
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0};
  std::mutex mu;
  std::vector<std::string> acked_ids;
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_read_timeout(5, 0);
      for (int i = 0; !stop; ++i) {
        std::string content(2048, static_cast<char>('a' + w));
        json body = {{"base_change_id", kRoot}, {"message", "w"},
                     {"files", json::array({{{"path", "w" + std::to_string(w) + "/" + std::to_string(i)}, {"content", rest::Base64Encode(content)}}})}};
        auto r = cli.Post("/v1/acme/k/changes", auth, body.dump(), "application/json");
        if (!r || r->status != 201) continue;
        std::string id = json::parse(r->body)["id"];
        auto b = cli.Post("/v1/acme/k/bookmarks", auth, json({{"name", "b" + std::to_string(w) + "-" + std::to_string(i)}, {"change_id", id}}).dump(), "application/json");
        if (!b || b->status != 201) continue;
        std::lock_guard<std::mutex> lock(mu);
        acked_ids.push_back(id);
        ++acknowledged;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  server->Kill(SIGKILL);
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GT(acknowledged.load(), 10);

  server = std::make_unique<ServerProcess>(data, port);
  httplib::Client cli("127.0.0.1", port);
  // Every acknowledged change is there, every bookmark resolves, and refs agree with bookmarks.
  for (const auto& id : acked_ids) {
    auto r = cli.Get("/v1/acme/k/changes/" + id, auth);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << id;
  }
  std::string cursor;
  int bookmarks = 0;
  std::string repo_id = json::parse(cli.Get("/v1/acme/k", auth)->body)["id"];
  do {
    auto r = cli.Get("/v1/acme/k/bookmarks?limit=100" + (cursor.empty() ? "" : "&cursor=" + cursor), auth);
    json page = json::parse(r->body);
    for (const auto& b : page["bookmarks"]) {
      ++bookmarks;
      auto ch = cli.Get("/v1/acme/k/changes/" + b["change_id"].get<std::string>(), auth);
      ASSERT_EQ(ch->status, 200) << b.dump();
      if (b["change_id"] == kRoot) continue;
      std::string ref;
      RunCommand("git --git-dir=" + data + "/repos/" + repo_id + ".git rev-parse refs/heads/" + b["name"].get<std::string>(), &ref);
      EXPECT_EQ(ref, json::parse(ch->body)["current_commit_oid"].get<std::string>() + "\n") << b.dump();
    }
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
  } while (!cursor.empty());
  EXPECT_GE(bookmarks, acknowledged.load() + 1);
  std::string fsck;
  EXPECT_EQ(RunCommand("git --git-dir=" + data + "/repos/" + repo_id + ".git fsck --connectivity-only 2>&1", &fsck), 0) << fsck;
}

}  // namespace
}  // namespace mesa::testing
