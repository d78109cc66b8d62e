// A local webhook receiver for tests: a cpp-httplib server on a loopback port that records
// every POST (headers, body, the signature check result) and answers as scripted per path.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "rest/time_format.h"
#include "rest/webhook_signature.h"

namespace mesa::testing {

struct ReceivedWebhook {
  std::string path;
  std::string signature;     // x-mesa-signature
  std::string content_type;  // content-type
  std::string body;
  nlohmann::json json;
  int answered = 0;           // the status this receiver replied with
  bool signature_ok = false;  // verified with the secret registered for the path
  std::string verify_error;
};

class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~WebhookReceiver() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  int port() const { return port_; }
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // Signatures of requests to `path` are verified with `secret` (rest::VerifyWebhookSignature).
  void SetSecret(const std::string& path, const std::string& secret) {
    std::lock_guard<std::mutex> lock(mu_);
    secrets_[path] = secret;
  }
  // Answer `status` to every request on `path` from now on (default 200).
  void SetStatus(const std::string& path, int status) {
    std::lock_guard<std::mutex> lock(mu_);
    status_[path] = status;
  }
  // Answer `status` to the first `times` requests of each event id on `path`.
  void FailFirst(const std::string& path, int times, int status = 500) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_first_[path] = {times, status};
  }
  void SetDelayMs(const std::string& path, int ms) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ms_[path] = ms;
  }

  std::vector<ReceivedWebhook> Received(const std::string& path = "") const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ReceivedWebhook> out;
    for (const auto& r : received_) {
      if (path.empty() || r.path == path) out.push_back(r);
    }
    return out;
  }

  // Waits until `done(requests to path)` holds; false on timeout. `done` runs without the
  // receiver's lock, so it may call the receiver.
  bool WaitFor(const std::string& path, const std::function<bool(const std::vector<ReceivedWebhook>&)>& done,
               int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      size_t seen;
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen = received_.size();
      }
      if (done(Received(path))) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return received_.size() != seen; });
    }
  }

  // Delivered (answered 2xx) event ids → types on `path`.
  std::map<std::string, std::string> Delivered(const std::string& path) const {
    std::map<std::string, std::string> out;
    for (const auto& r : Received(path)) {
      if (r.answered >= 200 && r.answered < 300 && r.json.is_object()) out[r.json.value("id", "")] = r.json.value("type", "");
    }
    return out;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    ReceivedWebhook r;
    r.path = req.path;
    r.signature = req.get_header_value("x-mesa-signature");
    r.content_type = req.get_header_value("content-type");
    r.body = req.body;
    r.json = nlohmann::json::parse(req.body, nullptr, false);
    int delay = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto secret = secrets_.find(r.path);
      if (secret != secrets_.end()) {
        absl::Status st = rest::VerifyWebhookSignature(secret->second, r.signature, r.body, rest::NowUnixMillis() / 1000);
        r.signature_ok = st.ok();
        r.verify_error = std::string(st.message());
      }
      r.answered = status_.count(r.path) ? status_[r.path] : 200;
      auto ff = fail_first_.find(r.path);
      if (ff != fail_first_.end() && r.json.is_object()) {
        int& seen = attempts_[r.path + "#" + r.json.value("id", "")];
        if (seen++ < ff->second.first) r.answered = ff->second.second;
      }
      if (delay_ms_.count(r.path)) delay = delay_ms_[r.path];
    }
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    res.status = r.answered;
    res.set_content("{}", "application/json");
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back(std::move(r));
    }
    cv_.notify_all();
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> secrets_;
  std::map<std::string, int> status_;
  std::map<std::string, std::pair<int, int>> fail_first_;
  std::map<std::string, int> delay_ms_;
  std::map<std::string, int> attempts_;
  std::vector<ReceivedWebhook> received_;
};

}  // namespace mesa::testing
