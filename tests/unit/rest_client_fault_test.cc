// The REST client's retry policy against an in-process fake HTTP peer. A fake is used here
// only because a real mesa-server cannot be made to answer 503 then 200 on demand, or to
// drop a connection mid-request (fault injection); hence "FaultInjection" in the names.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "daemon/remote/rest_client.h"
#include "rest/api_error.h"

namespace mesa::daemon {
namespace {

class FakePeer {
 public:
  FakePeer() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakePeer() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  Endpoint endpoint() const { return {"http://127.0.0.1:" + std::to_string(port_) + "/v1", ""}; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// Accepts connections and closes each one as soon as the request headers arrived.
class ClosingPeer {
 public:
  ClosingPeer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        (void)!read(c, buf, sizeof buf);
        ++accepted_;
        close(c);
      }
    });
  }
  ~ClosingPeer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  Endpoint endpoint() const { return {"http://127.0.0.1:" + std::to_string(port_) + "/v1", ""}; }
  int accepted() const { return accepted_; }

 private:
  int fd_;
  int port_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
};

RestClientOptions FastRetries() {
  RestClientOptions o;
  o.max_attempts = 4;
  o.backoff_initial_ms = 5;
  o.backoff_max_ms = 20;
  o.connect_timeout_ms = 2000;
  o.request_timeout_ms = 5000;
  return o;
}

rest::RestRequest Get(const std::string& path) { return {"GET", path, {}, std::nullopt, ""}; }
rest::RestRequest Post(const std::string& path) { return {"POST", path, {}, nlohmann::json{{"name", "x"}}, ""}; }

TEST(RestClientFaultInjection, IdempotentGetSurvives503Then200) {
  FakePeer peer;
  std::atomic<int> hits{0};
  peer.server().Get("/v1/whoami", [&](const httplib::Request& req, httplib::Response& res) {
    EXPECT_EQ(req.get_header_value("Authorization"), "Bearer mesa_k");
    EXPECT_EQ(req.get_header_value("User-Agent"), "mesad/test suffix/1");
    if (++hits <= 2) {
      res.status = 503;
      res.set_content(R"({"error":{"code":"UNAVAILABLE","message":"busy"}})", "application/json");
      return;
    }
    res.set_content(R"({"org":{"id":"o","slug":"s","name":"n"},"key_id":null,"key_name":null,"scopes":[]})",
                    "application/json");
  });
  RestClientOptions o = FastRetries();
  o.user_agent = "mesad/test";
  RestClient client(o);
  auto r = client.Call(peer.endpoint(), "mesa_k", "suffix/1", Get("/whoami"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(hits, 3);
}

TEST(RestClientFaultInjection, PostIsNotRepeatedAfter503) {
  FakePeer peer;
  std::atomic<int> hits{0};
  peer.server().Post("/v1/acme/repos", [&](const httplib::Request&, httplib::Response& res) {
    ++hits;
    res.status = 503;
    res.set_content(R"({"error":{"code":"UNAVAILABLE","message":"busy","trace_id":"t1"}})", "application/json");
  });
  RestClient client(FastRetries());
  auto r = client.Call(peer.endpoint(), "k", "", Post("/acme/repos"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(hits, 1);
  auto info = rest::ErrorInfoFromStatus(r.status());
  EXPECT_EQ(info.http_status, 503);
  EXPECT_EQ(info.code, "UNAVAILABLE");
  EXPECT_EQ(info.trace_id, "t1");
}

TEST(RestClientFaultInjection, GetGivesUpAfterMaxAttemptsWithTheLastError) {
  FakePeer peer;
  std::atomic<int> hits{0};
  peer.server().Get("/v1/x", [&](const httplib::Request&, httplib::Response& res) {
    ++hits;
    res.status = 502;
  });
  RestClient client(FastRetries());
  auto r = client.Call(peer.endpoint(), "k", "", Get("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(hits, 4);
  EXPECT_EQ(rest::ErrorInfoFromStatus(r.status()).http_status, 502);
}

TEST(RestClientFaultInjection, ClosedConnectionRetriesGetButNotPost) {
  ClosingPeer peer;
  RestClient client(FastRetries());
  auto get = client.Call(peer.endpoint(), "k", "", Get("/x"));
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(rest::ErrorInfoFromStatus(get.status()).code, "BACKEND_UNREACHABLE");
  EXPECT_EQ(peer.accepted(), 4);
  int before = peer.accepted();
  auto post = client.Call(peer.endpoint(), "k", "", Post("/x"));
  ASSERT_FALSE(post.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(peer.accepted() - before, 1);
}

TEST(RestClientFaultInjection, RetryAfterIsHonoured) {
  FakePeer peer;
  std::atomic<int> hits{0};
  peer.server().Get("/v1/x", [&](const httplib::Request&, httplib::Response& res) {
    if (++hits == 1) {
      res.status = 429;
      res.set_header("Retry-After", "1");
      return;
    }
    res.set_content("{}", "application/json");
  });
  RestClient client(FastRetries());
  auto start = std::chrono::steady_clock::now();
  auto r = client.Call(peer.endpoint(), "k", "", Get("/x"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(950));
}

TEST(RestClientFaultInjection, NothingListeningIsUnreachableAndConnectRetriesEvenPost) {
  int port;
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    close(fd);
  }
  RestClient client(FastRetries());
  auto r = client.Call({"http://127.0.0.1:" + std::to_string(port) + "/v1", ""}, "k", "", Post("/x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(rest::ErrorInfoFromStatus(r.status()).code, "BACKEND_UNREACHABLE");
  EXPECT_EQ(client.total_requests(), 4);  // nothing was sent, so even POST may be tried again
}

TEST(RetryDelayTest, BackoffIsBoundedAndRetryAfterWins) {
  RestClientOptions o;
  o.backoff_initial_ms = 100;
  o.backoff_max_ms = 1000;
  for (int attempt = 0; attempt < 10; ++attempt) {
    int64_t d = RetryDelayMs(attempt, o, "");
    EXPECT_GE(d, 0);
    EXPECT_LE(d, std::min<int64_t>(1000, 100ll << attempt));
  }
  EXPECT_EQ(RetryDelayMs(0, o, "3"), 3000);
  EXPECT_LE(RetryDelayMs(0, o, "Wed, 21 Oct 2015 07:28:00 GMT"), 0);  // a past date: retry now
}

}  // namespace
}  // namespace mesa::daemon
