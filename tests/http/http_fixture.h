// A real mesa-server (store + API + HTTP listener) on a loopback port, in this process,
// and a small JSON client for it.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <string>
#include <thread>

#include "nlohmann/json.hpp"
#include "server/api/service.h"
#include "server/http/http_server.h"
#include "server/store/store.h"
#include "tests/unit/test_util.h"

namespace mesa::testing {

struct Resp {
  int status = 0;
  std::string body;
  std::string content_type;
  nlohmann::json json;  // parsed when the body is JSON
  std::string ErrorCode() const { return json.contains("error") ? json["error"].value("code", "") : ""; }
};

class HttpFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  Resp Call(const std::string& method, const std::string& path, const nlohmann::json* body = nullptr,
            const std::string& key = "", const httplib::Headers& extra = {});
  // A body argument for Call: the temporary lives until the end of the calling expression.
  static const nlohmann::json* Body(const nlohmann::json& body) { return &body; }
  Resp Get(const std::string& path, const httplib::Headers& extra = {}) { return Call("GET", path, nullptr, "", extra); }
  Resp Post(const std::string& path, const nlohmann::json& body) { return Call("POST", path, &body); }
  Resp Patch(const std::string& path, const nlohmann::json& body) { return Call("PATCH", path, &body); }
  Resp Delete(const std::string& path) { return Call("DELETE", path); }
  Resp Raw(const std::string& method, const std::string& path, const std::string& body,
           const std::string& key = "");

  // Creates an API key in the fixture org.
  std::string NewKey(std::vector<std::string> scopes, std::optional<std::vector<std::string>> repo_ids = std::nullopt);

  // Adjusts the server options before the server starts (webhook delivery is fast by default here).
  virtual void ConfigureServer(server::HttpServerOptions& options) {}

  TempDir dir_;
  std::unique_ptr<server::Store> store_;
  std::unique_ptr<server::api::ApiService> api_;
  std::unique_ptr<server::HttpServer> http_;
  std::thread thread_;
  server::Org org_;
  std::string key_;  // admin
  std::string access_log_;
  int port_ = 0;
};

}  // namespace mesa::testing
