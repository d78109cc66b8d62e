// Per-uid API sessions. A session holds a credential (only ever inside mesad), the API it
// talks to, an optional org override and user-agent suffix, and the /whoami answer, resolved
// lazily on first use and cached. Sessions persist in <state_dir>/sessions.json (0600, in a
// 0700 directory) so that mounts restored after a restart still have their credential.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/embedded/embedded_api.h"
#include "daemon/remote/rest_client.h"
#include "mesa/daemon/v1/api.pb.h"

namespace mesa::daemon {

struct SessionRecord {
  std::string id;
  uid_t uid = 0;
  std::string api_key;
  std::string api_url;  // empty for the embedded store
  std::string org;      // configured override
  std::string user_agent;
  std::string webhook_secret;
  bool embedded = false;
  std::string provisioned_key_id;  // the embedded store's key mesad made for this uid; revoked at logout
  int64_t created_at_ms = 0;
};

class Session {
 public:
  Session(SessionRecord record, Endpoint endpoint, RestClient* rest)
      : record_(std::move(record)), endpoint_(std::move(endpoint)), rest_(rest) {}

  const std::string& id() const { return record_.id; }
  uid_t uid() const { return record_.uid; }
  const SessionRecord& record() const { return record_; }
  const Endpoint& endpoint() const { return endpoint_; }

  // The org for calls without an override: the configured one, else /whoami's (cached).
  absl::StatusOr<std::string> Org();
  absl::StatusOr<mesa::v1::Whoami> Whoami(bool refresh);

  absl::StatusOr<RestResponse> Call(const rest::RestRequest& request,
                                    const std::function<bool(const char*, size_t)>& sink = nullptr);
  absl::StatusOr<nlohmann::json> CallJson(const rest::RestRequest& request);

  mesa::daemon::v1::Session ToProto(bool is_default) const;

 private:
  SessionRecord record_;
  Endpoint endpoint_;
  RestClient* rest_;
  mutable std::mutex mu_;
  std::optional<mesa::v1::Whoami> whoami_;
};

struct SessionManagerOptions {
  std::string state_dir;
  std::string default_api_url;  // empty: embedded
  EmbeddedApi* embedded = nullptr;
  RestClient* rest = nullptr;
};

class SessionManager {
 public:
  explicit SessionManager(SessionManagerOptions options) : options_(std::move(options)) {}

  absl::Status Load();

  absl::StatusOr<std::shared_ptr<Session>> Login(uid_t uid, const mesa::daemon::v1::LoginRequest& request);
  absl::Status Logout(uid_t uid, const std::string& session_id);
  std::vector<mesa::daemon::v1::Session> List(uid_t caller, bool all_users);

  // The caller's session `session_id`, or its default one (with the embedded store, a first
  // call provisions it). Another uid's session id is NOT_FOUND, exactly like a missing one.
  absl::StatusOr<std::shared_ptr<Session>> Resolve(uid_t uid, const std::string& session_id);

  int Count(uid_t caller) const;
  bool embedded_mode() const { return options_.default_api_url.empty(); }
  const std::string& default_api_url() const { return options_.default_api_url; }

 private:
  absl::StatusOr<Endpoint> EndpointFor(const SessionRecord& record) const;
  absl::Status Persist();  // callers hold mu_

  SessionManagerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::map<uid_t, std::string> defaults_;
};

// "https://host/v1" -> that URL; "unix:/path/api.sock" -> http over that socket.
absl::StatusOr<Endpoint> ParseApiUrl(const std::string& api_url);

}  // namespace mesa::daemon
