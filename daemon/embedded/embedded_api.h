// The embedded default: mesa-server's store and API run inside mesad on a private Unix socket
// (0600, under the state dir), reached through the same REST client as a remote API. Each
// local user gets an org of their own, named after their user name.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "daemon/remote/rest_client.h"
#include "server/api/service.h"
#include "server/http/http_server.h"
#include "server/store/store.h"

namespace mesa::daemon {

struct UserCredential {
  std::string org_slug;
  std::string api_key;
  std::string key_id;
};

class EmbeddedApi {
 public:
  // `dir` holds the store (dir/store), the socket (dir/api.sock) and dir/owners.json.
  static absl::StatusOr<std::unique_ptr<EmbeddedApi>> Start(const std::string& dir, const std::string& access_log);
  ~EmbeddedApi();

  Endpoint endpoint() const { return {"http://mesa-embedded/v1", socket_path_}; }

  // The org of `uid` (created on first use) and a new admin key for it.
  absl::StatusOr<UserCredential> ProvisionUser(uid_t uid);
  // Revokes a key ProvisionUser made for `uid` (its session logged out).
  absl::Status RevokeProvisionedKey(uid_t uid, const std::string& key_id);

  server::Store* store() { return store_.get(); }

 private:
  EmbeddedApi() = default;
  absl::Status SaveOwners();

  std::string dir_;
  std::string socket_path_;
  std::unique_ptr<server::Store> store_;
  std::unique_ptr<server::api::ApiService> api_;
  std::unique_ptr<server::HttpServer> http_;
  std::thread thread_;
  std::mutex mu_;
  std::map<uid_t, std::string> owners_;  // uid -> org slug
};

// A valid org slug for a user name: lower case, [a-z0-9_-], at most 64 chars.
std::string SlugForUser(const std::string& user_name, uid_t uid);

}  // namespace mesa::daemon
