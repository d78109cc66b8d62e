#include "tests/http/http_fixture.h"

namespace mesa::testing {

void HttpFixture::SetUp() {
  auto store = server::Store::Open(dir_.path() + "/store");
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  auto org = store_->CreateOrg("acme", "Acme Inc");
  ASSERT_TRUE(org.ok());
  org_ = *org;
  key_ = NewKey({"admin"});
  api_ = std::make_unique<server::api::ApiService>(store_.get());
  server::HttpServerOptions opts;
  opts.threads = 8;
  opts.max_body_bytes = 1 << 20;
  access_log_ = dir_.path() + "/access.log";
  opts.access_log = access_log_;
  opts.webhooks.backoff_initial_ms = 50;
  opts.webhooks.backoff_max_ms = 400;
  opts.webhooks.timeout_ms = 2000;
  ConfigureServer(opts);
  http_ = std::make_unique<server::HttpServer>(api_.get(), opts);
  ASSERT_TRUE(http_->Bind("127.0.0.1:0").ok());
  port_ = http_->port();
  thread_ = std::thread([this] { http_->Run(); });
  // Ready when the port answers.
  httplib::Client probe("127.0.0.1", port_);
  for (int i = 0; i < 200 && !probe.Get("/v1/whoami"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

void HttpFixture::TearDown() {
  if (http_) http_->Stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

std::string HttpFixture::NewKey(std::vector<std::string> scopes, std::optional<std::vector<std::string>> repo_ids) {
  server::CreateKeyParams p;
  p.name = "test-" + scopes.front();
  p.scopes = std::move(scopes);
  p.repo_ids = std::move(repo_ids);
  auto k = store_->CreateApiKey(org_.id, p);
  EXPECT_TRUE(k.ok()) << k.status();
  return k.ok() ? k->secret : "";
}

Resp HttpFixture::Raw(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& key) {
  httplib::Client cli("127.0.0.1", port_);
  cli.set_read_timeout(30, 0);
  httplib::Headers headers = {{"Authorization", "Bearer " + (key.empty() ? key_ : key)}};
  httplib::Result r = method == "POST"    ? cli.Post(path, headers, body, "application/json")
                      : method == "PATCH" ? cli.Patch(path, headers, body, "application/json")
                                          : cli.Put(path, headers, body, "application/json");
  Resp out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  out.json = nlohmann::json::parse(out.body, nullptr, false);
  return out;
}

Resp HttpFixture::Call(const std::string& method, const std::string& path, const nlohmann::json* body,
                       const std::string& key, const httplib::Headers& extra) {
  httplib::Client cli("127.0.0.1", port_);
  cli.set_read_timeout(30, 0);
  httplib::Headers headers = extra;
  if (key != "-") headers.emplace("Authorization", "Bearer " + (key.empty() ? key_ : key));
  std::string payload = body ? body->dump() : "";
  httplib::Result r = method == "GET"      ? cli.Get(path, headers)
                      : method == "DELETE" ? cli.Delete(path, headers)
                      : method == "POST"   ? cli.Post(path, headers, payload, "application/json")
                      : method == "PATCH"  ? cli.Patch(path, headers, payload, "application/json")
                                           : cli.Put(path, headers, payload, "application/json");
  Resp out;
  EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  if (out.content_type.find("application/json") != std::string::npos)
    out.json = nlohmann::json::parse(out.body, nullptr, false);
  return out;
}

}  // namespace mesa::testing
