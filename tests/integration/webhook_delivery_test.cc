// mesa-server as a process delivering webhooks to a local receiver: a signed event for every
// operation type, retries after 500s with the same event id, the durable outbox surviving
// kill -9, and prompt shutdown with deliveries in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "rest/encoding.h"
#include "tests/http/webhook_receiver.h"
#include "tests/unit/test_util.h"

namespace mesa::testing {
namespace {

using nlohmann::json;
const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
const json kApiEvents = json::array({"repo.created", "repo.updated", "repo.deleted", "bookmark.created",
                                     "bookmark.deleted", "bookmark.moved", "bookmark.merged", "change.created",
                                     "change.evolved", "push"});

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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `mesa-server serve --config CONFIG`, stderr appended to `stderr_path`.
class ServerProcess {
 public:
  ServerProcess(const std::string& config, const std::string& stderr_path, int port) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a test process that dies early
      int fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd >= 0) dup2(fd, 2);
      execl(ServerBin().c_str(), "mesa-server", "serve", "--config", config.c_str(), nullptr);
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
  // Returns the wait status.
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

class WebhookProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.path() + "/store";
    std::string out;
    ASSERT_EQ(RunCommand(ServerBin() + " init --data " + data_ + " --org acme", &out), 0) << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    key_ = out.substr(out.rfind('\n') + 1);
    port_ = FreePort();
    config_ = dir_.path() + "/mesa-server.yaml";
    std::ofstream(config_) << "data: " << data_ << "\n"
                           << "listen: 127.0.0.1:" << port_ << "\n"
                           << "access_log: " << dir_.path() << "/access.log\n"
                           << "public_url: http://mesa.test:" << port_ << "\n"
                           << "webhook_max_attempts: 50\n"
                           << "webhook_backoff_initial_ms: 100\n"
                           << "webhook_backoff_max_ms: 400\n"
                           << "webhook_timeout_ms: 2000\n";
    stderr_ = dir_.path() + "/server.stderr";
  }

  std::unique_ptr<ServerProcess> Start() { return std::make_unique<ServerProcess>(config_, stderr_, port_); }

  httplib::Result Send(const std::string& method, const std::string& path, const json& body = nullptr) {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_read_timeout(10, 0);
    httplib::Headers auth = {{"Authorization", "Bearer " + key_}};
    if (method == "GET") return cli.Get(path, auth);
    if (method == "DELETE") return cli.Delete(path, auth);
    if (method == "PATCH") return cli.Patch(path, auth, body.dump(), "application/json");
    return cli.Post(path, auth, body.dump(), "application/json");
  }
  json Ok(const std::string& method, const std::string& path, const json& body = nullptr) {
    auto r = Send(method, path, body);
    EXPECT_TRUE(r) << method << " " << path;
    if (!r) return nullptr;
    EXPECT_LT(r->status, 300) << method << " " << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  json CreateChange(const std::string& repo, const std::string& base, const std::string& path) {
    return Ok("POST", "/v1/acme/" + repo + "/changes",
              {{"base_change_id", base},
               {"message", "m"},
               {"files", json::array({{{"path", path}, {"content", rest::Base64Encode(path)}}})},
               {"author", {{"name", "A"}, {"email", "a@example.com"}}}});
  }
  // One target per path on the receiver, subscribed to every API event type.
  void AddTarget(const std::string& path) {
    json t = Ok("POST", "/v1/acme/webhook-targets", {{"url", receiver_.Url(path)}, {"events", kApiEvents}, {"name", path}});
    receiver_.SetSecret(path, t.value("secret", ""));
  }
  // Operations producing all ten API event types: kEventsPerRun events.
  static constexpr size_t kEventsPerRun = 20;
  void EveryOperation(const std::string& name) {
    Ok("POST", "/v1/acme/repos", {{"name", name}});                                    // repo.created, bookmark.created
    json c1 = CreateChange(name, kRoot, "a");                                          // change.created
    Ok("PATCH", "/v1/acme/" + name + "/bookmarks/main", {{"change_id", c1["id"]}});    // bookmark.moved, push
    Ok("PATCH", "/v1/acme/" + name + "/changes/" + c1["id"].get<std::string>(), {{"message", "again"}});  // change.evolved, push
    json c2 = CreateChange(name, c1["id"], "b");
    Ok("POST", "/v1/acme/" + name + "/bookmarks", {{"name", "topic"}, {"change_id", c2["id"]}});  // bookmark.created, push
    json c3 = CreateChange(name, c1["id"], "c");
    Ok("PATCH", "/v1/acme/" + name + "/bookmarks/main", {{"change_id", c3["id"]}});
    Ok("POST", "/v1/acme/" + name + "/bookmarks/merge", {{"target", "main"}, {"source", "topic"}});  // bookmark.merged
    Ok("DELETE", "/v1/acme/" + name + "/bookmarks/topic");                              // bookmark.deleted, push
    Ok("PATCH", "/v1/acme/" + name, {{"tags", {{"stage", "done"}}}});                   // repo.updated
    Ok("DELETE", "/v1/acme/" + name);                                                   // repo.deleted
  }
  static std::set<std::string> Types(const std::vector<ReceivedWebhook>& got) {
    std::set<std::string> out;
    for (const auto& r : got) out.insert(r.json.value("type", ""));
    return out;
  }
  static std::set<std::string> AllTypes() {
    std::set<std::string> out;
    for (const auto& e : kApiEvents) out.insert(e.get<std::string>());
    return out;
  }

  TempDir dir_;
  std::string data_, key_, config_, stderr_;
  int port_ = 0;
  WebhookReceiver receiver_;
};

TEST_F(WebhookProcessTest, SignedEventsRetriesAndRestart) {
  auto server = Start();
  AddTarget("/ok");
  AddTarget("/flaky");
  AddTarget("/down");
  receiver_.FailFirst("/flaky", 2, 500);
  receiver_.SetStatus("/down", 503);

  EveryOperation("first");
  // Every operation type arrives at /ok, signed; /flaky sees each event three times.
  const size_t events = kEventsPerRun;
  ASSERT_TRUE(receiver_.WaitFor("/ok", [&](const auto&) { return receiver_.Delivered("/ok").size() >= events; }, 20000))
      << receiver_.Delivered("/ok").size();
  EXPECT_EQ(Types(receiver_.Received("/ok")), AllTypes());
  ASSERT_TRUE(receiver_.WaitFor("/flaky", [&](const auto&) { return receiver_.Delivered("/flaky").size() >= events; },
                                20000));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing more may come
  EXPECT_EQ(receiver_.Delivered("/ok").size(), events);
  for (const auto& r : receiver_.Received()) {
    EXPECT_TRUE(r.signature_ok) << r.path << ": " << r.verify_error;
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.json["organization"]["slug"], "acme");
    EXPECT_TRUE(r.json["repository"]["url"].get<std::string>().starts_with("http://mesa.test:"));
  }
  std::map<std::string, std::vector<ReceivedWebhook>> flaky_by_id;
  for (const auto& r : receiver_.Received("/flaky")) flaky_by_id[r.json["id"]].push_back(r);
  EXPECT_EQ(flaky_by_id.size(), events);
  for (const auto& [id, attempts] : flaky_by_id) {
    ASSERT_EQ(attempts.size(), 3u) << id;
    EXPECT_EQ(attempts[0].answered, 500);
    EXPECT_EQ(attempts[1].answered, 500);
    EXPECT_EQ(attempts[2].answered, 200);
    EXPECT_EQ(attempts[0].body, attempts[2].body);  // the same event on every attempt
  }
  // The same event (id) went to every target.
  std::set<std::string> ok_ids;
  for (const auto& [id, type] : receiver_.Delivered("/ok")) ok_ids.insert(id);
  std::set<std::string> flaky_ids;
  for (const auto& [id, type] : receiver_.Delivered("/flaky")) flaky_ids.insert(id);
  EXPECT_EQ(ok_ids, flaky_ids);
  // /down has been refusing everything: all of it is pending.
  EXPECT_TRUE(receiver_.Delivered("/down").empty());
  std::set<std::string> refused;
  for (const auto& r : receiver_.Received("/down")) refused.insert(r.json["id"]);
  EXPECT_FALSE(refused.empty());

  // More work, then kill -9 straight away: these events may not even have been attempted.
  EveryOperation("second");
  server->Kill(SIGKILL);
  server.reset();
  receiver_.SetStatus("/down", 200);
  server = Start();
  // After the restart, each target gets everything that was pending, signed, with the same ids.
  ASSERT_TRUE(receiver_.WaitFor("/down", [&](const auto&) { return receiver_.Delivered("/down").size() >= 2 * events; },
                                30000))
      << receiver_.Delivered("/down").size() << " of " << 2 * events;
  ASSERT_TRUE(receiver_.WaitFor("/ok", [&](const auto&) { return receiver_.Delivered("/ok").size() >= 2 * events; }, 20000));
  ASSERT_TRUE(receiver_.WaitFor("/flaky", [&](const auto&) { return receiver_.Delivered("/flaky").size() >= 2 * events; },
                                20000));
  auto down = receiver_.Delivered("/down");
  EXPECT_EQ(down, receiver_.Delivered("/ok"));
  EXPECT_EQ(down, receiver_.Delivered("/flaky"));
  for (const auto& id : refused) EXPECT_TRUE(down.count(id)) << id << " refused before the kill, never delivered after";
  for (const auto& r : receiver_.Received()) EXPECT_TRUE(r.signature_ok) << r.path << ": " << r.verify_error;

  // Neither the key nor webhook secrets' HMAC keys ever reached the server's logs.
  server.reset();
  std::string logs = ReadFile(stderr_) + ReadFile(dir_.path() + "/access.log");
  EXPECT_EQ(logs.find(key_), std::string::npos);
  EXPECT_EQ(logs.find("whsec_"), std::string::npos);
}

TEST_F(WebhookProcessTest, SigtermWithDeliveriesInFlightExitsPromptly) {
  auto server = Start();
  AddTarget("/slow");
  receiver_.SetDelayMs("/slow", 3000);
  auto t0 = std::chrono::steady_clock::now();
  Ok("POST", "/v1/acme/repos", {{"name", "r"}});
  CreateChange("r", kRoot, "f");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // attempts are now in flight
  auto s0 = std::chrono::steady_clock::now();
  int status = server->Kill(SIGTERM);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(secs, 1.5) << "shutdown waited for webhook deliveries";
}

}  // namespace
}  // namespace mesa::testing
