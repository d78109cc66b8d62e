#include "daemon/rpc/api_services.h"

#include "daemon/log.h"
#include "daemon/rpc/grpc_status.h"
#include "daemon/status_macros.h"
#include "rest/api_error.h"
#include "rest/codec.h"
#include "rest/time_format.h"
#include "rest/webhook_signature.h"

namespace mesa::daemon {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;
using grpc::ServerContext;
using grpc::Status;

struct Scope {
  PeerCred caller;
  std::shared_ptr<Session> session;
  std::string org;
};

absl::StatusOr<Scope> OpenScope(const RpcDeps& d, const ServerContext* ctx, const dv1::CallOptions& call,
                                bool need_org = true) {
  Scope s;
  MESA_ASSIGN_OR_RETURN(s.caller, d.peers->Caller(ctx));
  MESA_ASSIGN_OR_RETURN(s.session, d.sessions->Resolve(s.caller.uid, call.session_id()));
  if (!call.org().empty()) {
    s.org = call.org();
  } else if (need_org) {
    MESA_ASSIGN_OR_RETURN(s.org, s.session->Org());
  }
  return s;
}

absl::Status Need(const char* field, const std::string& value) {
  if (!value.empty()) return absl::OkStatus();
  return rest::LocalError(absl::StatusCode::kInvalidArgument, "VALIDATION_ERROR", std::string(field) + " is required");
}

// Forwards one REST operation: `build(org)` returns the REST request (or a validation error).
template <typename Resp, typename Build>
Status Forward(const RpcDeps& d, const ServerContext* ctx, const dv1::CallOptions& call, Build&& build, Resp* out) {
  return ToGrpcStatus([&]() -> absl::Status {
    MESA_ASSIGN_OR_RETURN(Scope scope, OpenScope(d, ctx, call));
    MESA_ASSIGN_OR_RETURN(rest::RestRequest req, build(scope.org));
    MESA_ASSIGN_OR_RETURN(nlohmann::json j, scope.session->CallJson(req));
    rest::FromJson(j, out);
    return absl::OkStatus();
  }());
}

using Req = absl::StatusOr<rest::RestRequest>;

class SessionsService final : public dv1::Sessions::Service {
 public:
  explicit SessionsService(const RpcDeps& d) : d_(d) {}
  Status Login(ServerContext* ctx, const dv1::LoginRequest* req, dv1::LoginResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, d_.peers->Caller(ctx));
      MESA_ASSIGN_OR_RETURN(auto session, d_.sessions->Login(caller.uid, *req));
      out->set_session_id(session->id());
      for (const auto& s : d_.sessions->List(caller.uid, false)) {
        if (s.id() == session->id()) *out->mutable_session() = s;
      }
      return absl::OkStatus();
    }());
  }
  Status Logout(ServerContext* ctx, const dv1::LogoutRequest* req, dv1::LogoutResponse*) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, d_.peers->Caller(ctx));
      return d_.sessions->Logout(caller.uid, req->session_id());
    }());
  }
  Status ListSessions(ServerContext* ctx, const dv1::ListSessionsRequest* req, dv1::ListSessionsResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, d_.peers->Caller(ctx));
      if (req->all_users() && caller.uid != 0)
        return rest::LocalError(absl::StatusCode::kPermissionDenied, "FORBIDDEN", "only root may list every user's sessions");
      for (auto& s : d_.sessions->List(caller.uid, req->all_users())) *out->add_sessions() = std::move(s);
      return absl::OkStatus();
    }());
  }
  Status Whoami(ServerContext* ctx, const dv1::WhoamiRequest* req, v1::Whoami* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(Scope scope, OpenScope(d_, ctx, req->call(), false));
      MESA_ASSIGN_OR_RETURN(*out, scope.session->Whoami(/*refresh=*/true));
      return absl::OkStatus();
    }());
  }

 private:
  RpcDeps d_;
};

class OrgsService final : public dv1::Orgs::Service {
 public:
  explicit OrgsService(const RpcDeps& d) : d_(d) {}
  Status GetOrg(ServerContext* ctx, const dv1::GetOrgRequest* req, v1::OrgSummary* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req { return rest::GetOrgCall(org); }, out);
  }

 private:
  RpcDeps d_;
};

class ReposService final : public dv1::Repos::Service {
 public:
  explicit ReposService(const RpcDeps& d) : d_(d) {}
  Status ListRepos(ServerContext* ctx, const dv1::ListReposRequest* req, dv1::ListReposResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req { return rest::ListReposCall(org, *req); }, out);
  }
  Status CreateRepo(ServerContext* ctx, const dv1::CreateRepoRequest* req, v1::Repo* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req { return rest::CreateRepoCall(org, *req); }, out);
  }
  Status GetRepo(ServerContext* ctx, const dv1::GetRepoRequest* req, v1::Repo* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::GetRepoCall(org, req->repo());
    }, out);
  }
  Status UpdateRepo(ServerContext* ctx, const dv1::UpdateRepoRequest* req, v1::Repo* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::UpdateRepoCall(org, *req);
    }, out);
  }
  Status DeleteRepo(ServerContext* ctx, const dv1::DeleteRepoRequest* req, dv1::SuccessResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::DeleteRepoCall(org, req->repo());
    }, out);
  }
  Status BulkUpdateRepoTags(ServerContext* ctx, const dv1::BulkUpdateRepoTagsRequest* req,
                            dv1::BulkUpdateRepoTagsResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("action", req->action()));
      MESA_RETURN_IF_ERROR(Need("key", req->key()));
      return rest::BulkUpdateRepoTagsCall(org, *req);
    }, out);
  }

 private:
  RpcDeps d_;
};

class BookmarksService final : public dv1::Bookmarks::Service {
 public:
  explicit BookmarksService(const RpcDeps& d) : d_(d) {}
  Status ListBookmarks(ServerContext* ctx, const dv1::ListBookmarksRequest* req, dv1::ListBookmarksResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::ListBookmarksCall(org, *req);
    }, out);
  }
  Status CreateBookmark(ServerContext* ctx, const dv1::CreateBookmarkRequest* req, v1::Bookmark* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::CreateBookmarkCall(org, *req);
    }, out);
  }
  Status GetBookmark(ServerContext* ctx, const dv1::GetBookmarkRequest* req, v1::Bookmark* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_RETURN_IF_ERROR(Need("name", req->name()));
      return rest::GetBookmarkCall(org, req->repo(), req->name());
    }, out);
  }
  Status MoveBookmark(ServerContext* ctx, const dv1::MoveBookmarkRequest* req, v1::Bookmark* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_RETURN_IF_ERROR(Need("name", req->name()));
      return rest::MoveBookmarkCall(org, *req);
    }, out);
  }
  Status DeleteBookmark(ServerContext* ctx, const dv1::DeleteBookmarkRequest* req, dv1::SuccessResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_RETURN_IF_ERROR(Need("name", req->name()));
      return rest::DeleteBookmarkCall(org, req->repo(), req->name());
    }, out);
  }
  Status MergeBookmarks(ServerContext* ctx, const dv1::MergeBookmarksRequest* req, v1::MergeResult* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::MergeBookmarksCall(org, *req);
    }, out);
  }

 private:
  RpcDeps d_;
};

class ChangesService final : public dv1::Changes::Service {
 public:
  explicit ChangesService(const RpcDeps& d) : d_(d) {}
  Status ListChanges(ServerContext* ctx, const dv1::ListChangesRequest* req, dv1::ListChangesResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::ListChangesCall(org, *req);
    }, out);
  }
  Status CreateChange(ServerContext* ctx, const dv1::CreateChangeRequest* req, v1::Change* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      return rest::CreateChangeCall(org, *req);
    }, out);
  }
  Status GetChange(ServerContext* ctx, const dv1::GetChangeRequest* req, v1::Change* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_RETURN_IF_ERROR(Need("change_id", req->change_id()));
      return rest::GetChangeCall(org, req->repo(), req->change_id());
    }, out);
  }
  Status UpdateChange(ServerContext* ctx, const dv1::UpdateChangeRequest* req, v1::Change* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_RETURN_IF_ERROR(Need("change_id", req->change_id()));
      return rest::UpdateChangeCall(org, *req);
    }, out);
  }

 private:
  RpcDeps d_;
};

class ContentService final : public dv1::Content::Service {
 public:
  explicit ContentService(const RpcDeps& d) : d_(d) {}
  Status GetContent(ServerContext* ctx, const dv1::GetContentRequest* req, v1::Content* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_ASSIGN_OR_RETURN(Scope scope, OpenScope(d_, ctx, req->call()));
      rest::RestRequest call = rest::GetContentCall(scope.org, *req);
      MESA_ASSIGN_OR_RETURN(RestResponse resp, scope.session->Call(call));
      if (req->raw()) {
        out->set_type("file");
        out->set_path(req->path());
        out->set_size(static_cast<int64_t>(resp.body.size()));
        out->set_content(std::move(resp.body));
        return absl::OkStatus();
      }
      MESA_ASSIGN_OR_RETURN(nlohmann::json j, RestClient::Json(resp));
      rest::FromJson(j, out);
      return absl::OkStatus();
    }());
  }

 private:
  RpcDeps d_;
};

class DiffsService final : public dv1::Diffs::Service {
 public:
  explicit DiffsService(const RpcDeps& d) : d_(d) {}
  Status GetDiff(ServerContext* ctx, const dv1::GetDiffRequest* req, dv1::GetDiffResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_RETURN_IF_ERROR(Need("repo", req->repo()));
      MESA_RETURN_IF_ERROR(Need("base_change_id", req->base_change_id()));
      MESA_RETURN_IF_ERROR(Need("head_change_id", req->head_change_id()));
      MESA_ASSIGN_OR_RETURN(Scope scope, OpenScope(d_, ctx, req->call()));
      MESA_ASSIGN_OR_RETURN(RestResponse resp, scope.session->Call(rest::GetDiffCall(scope.org, *req)));
      if (req->unified()) {
        out->set_unified(std::move(resp.body));
        return absl::OkStatus();
      }
      MESA_ASSIGN_OR_RETURN(nlohmann::json j, RestClient::Json(resp));
      rest::FromJson(j, out->mutable_diff());
      return absl::OkStatus();
    }());
  }

 private:
  RpcDeps d_;
};

class ApiKeysService final : public dv1::ApiKeys::Service {
 public:
  explicit ApiKeysService(const RpcDeps& d) : d_(d) {}
  Status ListApiKeys(ServerContext* ctx, const dv1::ListApiKeysRequest* req, dv1::ListApiKeysResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req { return rest::ListApiKeysCall(org, *req); }, out);
  }
  Status CreateApiKey(ServerContext* ctx, const dv1::CreateApiKeyRequest* req, v1::ApiKey* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req { return rest::CreateApiKeyCall(org, *req); }, out);
  }
  Status RevokeApiKey(ServerContext* ctx, const dv1::RevokeApiKeyRequest* req, dv1::SuccessResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("id", req->id()));
      return rest::RevokeApiKeyCall(org, req->id());
    }, out);
  }
  Status UpdateApiKey(ServerContext* ctx, const dv1::UpdateApiKeyRequest* req, dv1::UpdateApiKeyResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("id", req->id()));
      return rest::UpdateApiKeyCall(org, *req);
    }, out);
  }

 private:
  RpcDeps d_;
};

class WebhookTargetsService final : public dv1::WebhookTargets::Service {
 public:
  explicit WebhookTargetsService(const RpcDeps& d) : d_(d) {}
  Status ListWebhookTargets(ServerContext* ctx, const dv1::ListWebhookTargetsRequest* req,
                            dv1::ListWebhookTargetsResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req { return rest::ListWebhookTargetsCall(org, *req); }, out);
  }
  Status CreateWebhookTarget(ServerContext* ctx, const dv1::CreateWebhookTargetRequest* req, v1::WebhookTarget* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("url", req->url()));
      return rest::CreateWebhookTargetCall(org, *req);
    }, out);
  }
  Status GetWebhookTarget(ServerContext* ctx, const dv1::GetWebhookTargetRequest* req, v1::WebhookTarget* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("id", req->id()));
      return rest::GetWebhookTargetCall(org, req->id());
    }, out);
  }
  Status UpdateWebhookTarget(ServerContext* ctx, const dv1::UpdateWebhookTargetRequest* req, v1::WebhookTarget* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("id", req->id()));
      return rest::UpdateWebhookTargetCall(org, *req);
    }, out);
  }
  Status DeleteWebhookTarget(ServerContext* ctx, const dv1::DeleteWebhookTargetRequest* req, dv1::SuccessResponse* out) override {
    return Forward(d_, ctx, req->call(), [&](const std::string& org) -> Req {
      MESA_RETURN_IF_ERROR(Need("id", req->id()));
      return rest::DeleteWebhookTargetCall(org, req->id());
    }, out);
  }

 private:
  RpcDeps d_;
};

class WebhooksService final : public dv1::Webhooks::Service {
 public:
  explicit WebhooksService(const RpcDeps& d) : d_(d) {}
  Status Verify(ServerContext* ctx, const dv1::VerifyWebhookRequest* req, v1::WebhookEvent* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, d_.peers->Caller(ctx));
      std::string secret = req->secret();
      if (secret.empty()) {
        MESA_ASSIGN_OR_RETURN(auto session, d_.sessions->Resolve(caller.uid, req->call().session_id()));
        secret = session->record().webhook_secret;
      }
      std::string header;
      for (const auto& [name, value] : req->headers()) {
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower == rest::kWebhookSignatureHeader) header = value;
      }
      return rest::VerifyWebhook(secret, header, req->body(), rest::NowUnixMillis() / 1000, out);
    }());
  }

 private:
  RpcDeps d_;
};

class DaemonService final : public dv1::Daemon::Service {
 public:
  explicit DaemonService(const RpcDeps& d) : d_(d) {}
  grpc::Status Status(ServerContext* ctx, const dv1::StatusRequest*, dv1::StatusResponse* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, d_.peers->Caller(ctx));
      out->set_version(MESA_VERSION);
      out->set_uptime_seconds((rest::NowUnixMillis() - d_.started_at_ms) / 1000);
      out->set_sessions(d_.sessions->Count(caller.uid));
      out->set_api_mode(d_.sessions->embedded_mode() ? "embedded" : "remote");
      out->set_api_url(d_.sessions->embedded_mode() ? "embedded" : d_.sessions->default_api_url());
      out->set_mounts(d_.mount_count ? d_.mount_count(caller.uid) : 0);
      out->set_started_at(rest::FormatRfc3339Millis(d_.started_at_ms));
      if (d_.fill_status) d_.fill_status(caller.uid, out);
      // Reachability of the caller's default backend with one cheap call. No side effects:
      // a caller without a session is not given one (the embedded store would provision it);
      // the default endpoint is asked without a credential instead.
      std::shared_ptr<Session> session;
      for (const auto& s : d_.sessions->List(caller.uid, false)) {
        if (!s.is_default()) continue;
        if (auto found = d_.sessions->Resolve(caller.uid, s.id()); found.ok()) session = *found;
      }
      rest::RestRequest probe = rest::WhoamiCall();
      probe.timeout_ms = 3000;
      absl::Status reached = session ? session->Call(probe).status()
                                     : d_.rest->Call(d_.default_endpoint, "", "", probe).status();
      // Any HTTP answer (a 401 included) means the backend is there.
      out->set_backend_reachable(reached.ok() || rest::ErrorInfoFromStatus(reached).http_status != 0);
      return absl::OkStatus();
    }());
  }

 private:
  RpcDeps d_;
};

}  // namespace

std::vector<std::unique_ptr<grpc::Service>> MakeApiServices(const RpcDeps& deps) {
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<SessionsService>(deps));
  out.push_back(std::make_unique<OrgsService>(deps));
  out.push_back(std::make_unique<ReposService>(deps));
  out.push_back(std::make_unique<BookmarksService>(deps));
  out.push_back(std::make_unique<ChangesService>(deps));
  out.push_back(std::make_unique<ContentService>(deps));
  out.push_back(std::make_unique<DiffsService>(deps));
  out.push_back(std::make_unique<ApiKeysService>(deps));
  out.push_back(std::make_unique<WebhookTargetsService>(deps));
  out.push_back(std::make_unique<WebhooksService>(deps));
  out.push_back(std::make_unique<DaemonService>(deps));
  return out;
}

}  // namespace mesa::daemon
