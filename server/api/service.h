// The Mesa REST v1 API over a Store: routing, authentication, scopes, error envelopes.
// Handlers are thin: read and validate input, call the store, render JSON.
#pragma once

#include <httplib.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/store/store.h"

namespace mesa::server::api {

struct Reply {
  int status = 200;
  nlohmann::json json;
  std::optional<std::string> raw;  // raw body instead of JSON
  std::string content_type = "application/json";
};

class ApiService {
 public:
  explicit ApiService(Store* store) : store_(store) {}

  Store* store() const { return store_; }

  // Serves one request; every failure is rendered as the Mesa error envelope.
  void Handle(const httplib::Request& req, httplib::Response& res);

  // Renders a status as the error envelope (500s get a trace id and a generic message;
  // the real message is logged with the trace id).
  static void RenderError(const absl::Status& status, httplib::Response& res);

 private:
  struct Call;
  absl::StatusOr<Reply> Route(Call& call);
  absl::StatusOr<Reply> RouteOrg(Call& call);
  absl::StatusOr<Reply> RouteRepo(Call& call);
  absl::StatusOr<Reply> RouteWebhookTargets(Call& call);
  // The key an access token acts as: its scopes and repositories clamped to the key's own.
  absl::StatusOr<ApiKey> ClampToToken(const ApiKey& key, const rest::AccessTokenClaims& claims, const Org& org);

  Store* store_;
};

// Splits "/v1/a/b%2Fc?x" into decoded segments {"v1","a","b/c"}; nullopt on bad escapes.
std::optional<std::vector<std::string>> SplitPath(std::string_view target);

}  // namespace mesa::server::api
