#include "daemon/session/session_manager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/log.h"
#include "daemon/status_macros.h"
#include "rest/api_error.h"
#include "rest/encoding.h"
#include "rest/time_format.h"

namespace mesa::daemon {

namespace dv1 = ::mesa::daemon::v1;

absl::StatusOr<Endpoint> ParseApiUrl(const std::string& api_url) {
  if (api_url.rfind("unix:", 0) == 0) {
    std::string path = api_url.substr(5);
    if (path.empty() || path.front() != '/')
      return rest::LocalError(absl::StatusCode::kInvalidArgument, "INVALID_API_URL", "api_url: unix: needs an absolute socket path");
    return Endpoint{"http://localhost/v1", path};
  }
  if (api_url.rfind("http://", 0) != 0 && api_url.rfind("https://", 0) != 0)
    return rest::LocalError(absl::StatusCode::kInvalidArgument, "INVALID_API_URL",
                            "api_url must start with http://, https:// or unix:");
  std::string base = api_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return Endpoint{base, ""};
}

// ---- Session ----

absl::StatusOr<mesa::v1::Whoami> Session::Whoami(bool refresh) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (whoami_ && !refresh) return *whoami_;
  }
  MESA_ASSIGN_OR_RETURN(nlohmann::json j, CallJson(rest::WhoamiCall()));
  mesa::v1::Whoami who;
  rest::FromJson(j, &who);
  std::lock_guard<std::mutex> lock(mu_);
  whoami_ = who;
  return who;
}

absl::StatusOr<std::string> Session::Org() {
  if (!record_.org.empty()) return record_.org;
  MESA_ASSIGN_OR_RETURN(mesa::v1::Whoami who, Whoami(false));
  if (who.org().slug().empty())
    return rest::LocalError(absl::StatusCode::kFailedPrecondition, "ORG_RESOLUTION_FAILED", "/whoami named no organization");
  return who.org().slug();
}

absl::StatusOr<RestResponse> Session::Call(const rest::RestRequest& request,
                                           const std::function<bool(const char*, size_t)>& sink) {
  return rest_->Call(endpoint_, record_.api_key, record_.user_agent, request, sink);
}

absl::StatusOr<nlohmann::json> Session::CallJson(const rest::RestRequest& request) {
  MESA_ASSIGN_OR_RETURN(RestResponse response, Call(request));
  return RestClient::Json(response);
}

dv1::Session Session::ToProto(bool is_default) const {
  dv1::Session s;
  s.set_id(record_.id);
  s.set_uid(record_.uid);
  s.set_api_url(record_.embedded ? "embedded" : record_.api_url);
  s.set_org(record_.org);
  s.set_user_agent(record_.user_agent);
  s.set_is_default(is_default);
  s.set_embedded(record_.embedded);
  s.set_created_at(rest::FormatRfc3339Millis(record_.created_at_ms));
  std::lock_guard<std::mutex> lock(mu_);
  if (whoami_) {
    s.set_resolved_org(whoami_->org().slug());
    s.set_key_id(whoami_->key_id());
  }
  return s;
}

// ---- SessionManager ----

absl::StatusOr<Endpoint> SessionManager::EndpointFor(const SessionRecord& r) const {
  if (r.embedded) {
    if (!options_.embedded)
      return rest::LocalError(absl::StatusCode::kUnavailable, "EMBEDDED_OFF",
                              "this session uses the embedded store, which is off (api_url is configured)");
    return options_.embedded->endpoint();
  }
  return ParseApiUrl(r.api_url);
}

absl::Status SessionManager::Load() {
  std::string path = options_.state_dir + "/sessions.json";
  std::ifstream in(path);
  if (!in) return absl::OkStatus();
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (!j.is_object()) {
    MESA_LOG(kError) << path << " is not valid JSON; starting without saved sessions";
    return absl::OkStatus();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : j.value("sessions", nlohmann::json::array())) {
    SessionRecord r;
    r.id = s.value("id", "");
    r.uid = s.value("uid", 0u);
    r.api_key = s.value("api_key", "");
    r.api_url = s.value("api_url", "");
    r.org = s.value("org", "");
    r.user_agent = s.value("user_agent", "");
    r.webhook_secret = s.value("webhook_secret", "");
    r.embedded = s.value("embedded", false);
    r.provisioned_key_id = s.value("provisioned_key_id", "");
    r.created_at_ms = s.value("created_at_ms", int64_t{0});
    auto ep = EndpointFor(r);
    if (!ep.ok()) {
      MESA_LOG(kWarning) << "session " << r.id << " of uid " << r.uid << " not restored: " << ep.status().message();
      continue;
    }
    sessions_[r.id] = std::make_shared<Session>(r, *ep, options_.rest);
  }
  const nlohmann::json defaults = j.value("defaults", nlohmann::json::object());
  for (auto& [uid, id] : defaults.items()) {
    if (sessions_.count(id.get<std::string>())) defaults_[static_cast<uid_t>(std::stoul(uid))] = id.get<std::string>();
  }
  MESA_LOG(kInfo) << "restored " << sessions_.size() << " session(s)";
  return absl::OkStatus();
}

absl::Status SessionManager::Persist() {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, s] : sessions_) {
    const SessionRecord& r = s->record();
    list.push_back({{"id", r.id}, {"uid", r.uid}, {"api_key", r.api_key}, {"api_url", r.api_url}, {"org", r.org},
                    {"user_agent", r.user_agent}, {"webhook_secret", r.webhook_secret}, {"embedded", r.embedded},
                    {"provisioned_key_id", r.provisioned_key_id}, {"created_at_ms", r.created_at_ms}});
  }
  nlohmann::json defaults = nlohmann::json::object();
  for (const auto& [uid, id] : defaults_) defaults[std::to_string(uid)] = id;
  std::string data = nlohmann::json{{"sessions", list}, {"defaults", defaults}}.dump(2);
  std::string path = options_.state_dir + "/sessions.json";
  std::string tmp = path + ".tmp";
  // Credentials: created 0600 from the start, fsynced, then renamed over the old file.
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return rest::InternalError("cannot write " + tmp + ": " + strerror(errno));
  fchmod(fd, 0600);
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) return rest::InternalError("cannot save sessions to " + path);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Session>> SessionManager::Login(uid_t uid, const dv1::LoginRequest& req) {
  std::string key = req.api_key();
  while (!key.empty() && isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  if (key.empty()) return rest::LocalError(absl::StatusCode::kInvalidArgument, "API_KEY_REQUIRED", "api_key is required");
  SessionRecord r;
  r.id = "ses_" + rest::RandomAlphanumeric(20);
  r.uid = uid;
  r.api_key = key;
  r.api_url = req.api_url().empty() ? options_.default_api_url : req.api_url();
  r.embedded = r.api_url.empty();
  r.org = req.org();
  r.user_agent = req.user_agent();
  r.webhook_secret = req.webhook_secret();
  r.created_at_ms = rest::NowUnixMillis();
  MESA_ASSIGN_OR_RETURN(Endpoint ep, EndpointFor(r));
  auto session = std::make_shared<Session>(r, ep, options_.rest);
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[r.id] = session;
  if (req.make_default() || !defaults_.count(uid)) defaults_[uid] = r.id;
  MESA_RETURN_IF_ERROR(Persist());
  MESA_LOG(kInfo) << "uid " << uid << " logged in: session " << r.id << " ("
                  << (r.embedded ? std::string("embedded") : r.api_url) << ")";
  return session;
}

absl::Status SessionManager::Logout(uid_t uid, const std::string& session_id) {
  std::unique_lock<std::mutex> lock(mu_);
  std::string id = session_id;
  if (id.empty()) {
    auto d = defaults_.find(uid);
    if (d == defaults_.end()) return rest::LocalError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND", "no default session");
    id = d->second;
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->uid() != uid)
    return rest::LocalError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND", "session '" + id + "' not found");
  const std::string provisioned_key = it->second->record().provisioned_key_id;
  sessions_.erase(it);
  if (defaults_.count(uid) && defaults_[uid] == id) {
    // The newest remaining session of this uid becomes the default, if there is one.
    defaults_.erase(uid);
    std::shared_ptr<Session> next;
    for (const auto& [other_id, s] : sessions_) {
      if (s->uid() == uid && (!next || s->record().created_at_ms > next->record().created_at_ms)) next = s;
    }
    if (next) defaults_[uid] = next->record().id;
  }
  MESA_LOG(kInfo) << "uid " << uid << " logged out session " << id;
  absl::Status persisted = Persist();
  lock.unlock();
  // The key mesad made for this uid on the embedded store dies with its session; a later call
  // provisions a fresh one.
  if (!provisioned_key.empty() && options_.embedded) {
    if (auto st = options_.embedded->RevokeProvisionedKey(uid, provisioned_key); !st.ok())
      MESA_LOG(kWarning) << "revoking the embedded key of uid " << uid << " failed: " << st.message();
  }
  return persisted;
}

std::vector<dv1::Session> SessionManager::List(uid_t caller, bool all_users) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<dv1::Session> out;
  for (const auto& [id, s] : sessions_) {
    if (s->uid() != caller && !(all_users && caller == 0)) continue;
    auto d = defaults_.find(s->uid());
    out.push_back(s->ToProto(d != defaults_.end() && d->second == id));
  }
  return out;
}

int SessionManager::Count(uid_t caller) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& [id, s] : sessions_) n += caller == 0 || s->uid() == caller;
  return n;
}

absl::StatusOr<std::shared_ptr<Session>> SessionManager::Resolve(uid_t uid, const std::string& session_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!session_id.empty()) {
      auto it = sessions_.find(session_id);
      if (it == sessions_.end() || it->second->uid() != uid)
        return rest::LocalError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND", "session '" + session_id + "' not found");
      return it->second;
    }
    auto d = defaults_.find(uid);
    if (d != defaults_.end()) return sessions_.at(d->second);
    if (!options_.embedded)
      return rest::LocalError(absl::StatusCode::kUnauthenticated, "NOT_LOGGED_IN",
                              "no session: log in first (mesa login)");
  }
  // First call of a local user on the embedded store: give them an org and a key.
  MESA_ASSIGN_OR_RETURN(UserCredential cred, options_.embedded->ProvisionUser(uid));
  std::lock_guard<std::mutex> lock(mu_);
  auto d = defaults_.find(uid);
  if (d != defaults_.end()) return sessions_.at(d->second);  // a concurrent call won
  SessionRecord r;
  r.id = "ses_" + rest::RandomAlphanumeric(20);
  r.uid = uid;
  r.api_key = cred.api_key;
  r.embedded = true;
  r.provisioned_key_id = cred.key_id;
  r.org = cred.org_slug;
  r.created_at_ms = rest::NowUnixMillis();
  auto session = std::make_shared<Session>(r, options_.embedded->endpoint(), options_.rest);
  sessions_[r.id] = session;
  defaults_[uid] = r.id;
  MESA_RETURN_IF_ERROR(Persist());
  return session;
}

}  // namespace mesa::daemon
