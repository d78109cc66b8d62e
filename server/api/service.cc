#include "server/api/service.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rest/access_token.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "rest/validate.h"
#include "server/api/render.h"
#include "server/api/request.h"

namespace mesa::server::api {

struct ApiService::Call {
  const httplib::Request& req;
  std::vector<std::string> seg;  // after "v1"
  ApiKey key;
  Org org;
  Repo repo;

  std::optional<std::string> Query(const std::string& name) const {
    if (!req.has_param(name.c_str())) return std::nullopt;
    return req.get_param_value(name.c_str());
  }
  bool Accepts(std::string_view type) const {
    return req.get_header_value("Accept").find(type) != std::string::npos;
  }
  Signature Identity() const {
    Signature s;
    s.name = key.name.value_or(org.slug);
    s.email = org.slug + "@users.mesa.local";
    return s;
  }
};

namespace {

Reply Json(nlohmann::json body, int status = 200) {
  Reply r;
  r.status = status;
  r.json = std::move(body);
  return r;
}

absl::Status MethodNotAllowed(const std::string& method) {
  return rest::ApiError(405, "METHOD_NOT_ALLOWED", "method " + method + " is not allowed here");
}

absl::Status RouteNotFound() { return rest::ApiError(404, "NOT_FOUND", "no such endpoint"); }

absl::Status RequireScope(const ApiKey& key, Scope scope) {
  if (key.HasScope(scope)) return absl::OkStatus();
  static const char* names[] = {"", "read", "write", "admin"};
  return rest::ApiError(403, "FORBIDDEN", std::string("this operation needs the '") +
                                              names[static_cast<int>(scope)] + "' scope");
}

Scope ScopeForMethod(const std::string& method) {
  return method == "GET" || method == "HEAD" ? Scope::kRead : Scope::kWrite;
}

absl::StatusOr<ConflictsMode> ParseConflictsMode(const std::optional<std::string>& v) {
  if (!v || *v == "include") return ConflictsMode::kInclude;
  if (*v == "only") return ConflictsMode::kOnly;
  if (*v == "exclude") return ConflictsMode::kExclude;
  return rest::FieldError("conflicts", "must be include, only or exclude");
}

// A restriction (never org-wide) to a subset of `allowed`.
bool WithinRepos(const std::optional<std::vector<std::string>>& ids, const std::vector<std::string>& allowed) {
  if (!ids) return false;
  for (const auto& id : *ids) {
    if (std::find(allowed.begin(), allowed.end(), id) == allowed.end()) return false;
  }
  return true;
}

absl::Status CheckChangeId(const std::string& field, const std::string& value) {
  if (rest::IsValidChangeId(value)) return absl::OkStatus();
  return rest::FieldError(field, "must match ^[zyxwvutsrqponmlk]{32}$");
}

}  // namespace

std::optional<std::vector<std::string>> SplitPath(std::string_view target) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  size_t q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  if (!target.empty() && target.front() == '/') target.remove_prefix(1);
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = target.find('/', start);
    if (end == std::string_view::npos) end = target.size();
    std::string_view raw = target.substr(start, end - start);
    std::string seg;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        seg.push_back(raw[i]);
        continue;
      }
      if (i + 2 >= raw.size()) return std::nullopt;
      int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return std::nullopt;
      seg.push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    }
    out.push_back(std::move(seg));
    if (end == target.size()) break;
    start = end + 1;
  }
  // A trailing slash is tolerated.
  if (out.size() > 1 && out.back().empty()) out.pop_back();
  return out;
}

void ApiService::RenderError(const absl::Status& status, httplib::Response& res) {
  rest::ApiErrorInfo info = rest::ErrorInfoFromStatus(status);
  if (info.http_status >= 500 && info.http_status != 501 && info.http_status != 503) {
    info.trace_id = rest::HexEncode(rest::RandomAlphanumeric(8));
    std::cerr << "mesa-server: internal error trace_id=" << info.trace_id << ": " << info.message << std::endl;
    info.message = "internal error (trace_id " + info.trace_id + ")";
  }
  res.status = info.http_status;
  res.set_content(rest::ErrorEnvelope(info).dump(), "application/json");
}

void ApiService::Handle(const httplib::Request& req, httplib::Response& res) {
  auto seg = SplitPath(req.target);
  absl::StatusOr<Reply> reply;
  if (!seg) {
    reply = rest::BadRequest("malformed percent-encoding in the request path");
  } else if (seg->empty() || (*seg)[0] != "v1") {
    reply = RouteNotFound();
  } else {
    Call call{req, std::vector<std::string>(seg->begin() + 1, seg->end()), {}, {}, {}};
    try {
      reply = Route(call);
    } catch (const std::exception& e) {
      // nlohmann::json throws on type mismatches we failed to validate: never crash for it.
      reply = rest::InternalError(std::string("unhandled exception: ") + e.what());
    }
  }
  if (!reply.ok()) {
    RenderError(reply.status(), res);
    return;
  }
  res.status = reply->status;
  if (reply->raw) {
    res.set_content(std::move(*reply->raw), reply->content_type);
  } else {
    res.set_content(reply->json.dump(), "application/json");
  }
}

absl::StatusOr<Reply> ApiService::Route(Call& c) {
  if (c.seg.empty() || c.seg[0].empty()) return RouteNotFound();
  const std::string& auth = c.req.get_header_value("Authorization");
  if (auth.size() < 8 || auth.compare(0, 7, "Bearer ") != 0)
    return rest::ApiError(401, "UNAUTHENTICATED", "Bearer token required");
  std::string_view credential = std::string_view(auth).substr(7);
  // API keys are mesa_<alphanumerics>; a compact JWS (two dots) is an access token signed
  // from one of them, limited to the key's scopes and repositories.
  bool is_token = rest::LooksLikeAccessToken(credential);
  rest::AccessTokenClaims claims;
  auto key = is_token ? store_->AuthenticateAccessToken(credential, &claims) : store_->AuthenticateKey(credential);
  if (!key.ok()) return key.status();
  c.key = std::move(*key);
  auto own_org = store_->GetOrgById(c.key.org_id);
  if (!own_org.ok()) return own_org.status();
  if (is_token) {
    auto clamped = ClampToToken(c.key, claims, *own_org);
    if (!clamped.ok()) return clamped.status();
    c.key = std::move(*clamped);
  }

  if (c.seg.size() == 1 && c.seg[0] == "whoami") {
    if (c.req.method != "GET") return MethodNotAllowed(c.req.method);
    return Json({{"org", OrgJson(*own_org)},
                 {"key_id", c.key.id},
                 {"key_name", c.key.name ? nlohmann::json(*c.key.name) : nlohmann::json(nullptr)},
                 {"scopes", c.key.scopes}});
  }
  // A key sees its own organization only; any other slug is indistinguishable from a missing one.
  if (c.seg[0] != own_org->slug)
    return rest::NotFoundError("ORG_NOT_FOUND", "organization '" + c.seg[0] + "' not found");
  c.org = *own_org;
  return RouteOrg(c);
}

absl::StatusOr<Reply> ApiService::RouteOrg(Call& c) {
  const std::string& m = c.req.method;
  const auto& s = c.seg;
  size_t n = s.size();
  if (n == 1) {
    if (m != "GET") return MethodNotAllowed(m);
    if (auto st = RequireScope(c.key, Scope::kRead); !st.ok()) return st;
    auto count = store_->CountRepos(c.org.id);
    if (!count.ok()) return count.status();
    return Json({{"created_at", rest::FormatRfc3339Millis(c.org.created_at_ms)}, {"num_repos", *count}});
  }
  if (s[1] == "repos") {
    if (auto st = RequireScope(c.key, ScopeForMethod(m)); !st.ok()) return st;
    if (n == 2 && m == "GET") {
      ListReposParams p;
      p.cursor = c.Query("cursor");
      auto limit = ParseLimit(c.Query("limit"));
      if (!limit.ok()) return limit.status();
      p.limit = *limit;
      if (auto tags = c.Query("tags"); tags && !tags->empty()) {
        for (auto term : absl::StrSplit(*tags, ',')) {
          std::string t(term);
          size_t colon = t.find(':');
          std::string k = t.substr(0, colon);
          for (char& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          if (k.empty() || k.find_first_of("\"\\") != std::string::npos)
            return rest::FieldError("tags", "expected key:value[,key:value...]");
          p.tag_filter.emplace_back(k, colon == std::string::npos ? std::nullopt
                                                                  : std::optional<std::string>(t.substr(colon + 1)));
        }
      }
      p.visible_repo_ids = c.key.repo_ids;
      auto page = store_->ListRepos(c.org, p);
      if (!page.ok()) return page.status();
      return Json(PageJson(*page, "repos", RepoJson));
    }
    if (n == 2 && m == "POST") {
      if (c.key.repo_ids) return rest::ApiError(403, "FORBIDDEN", "a repository-restricted key cannot create repositories");
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      CreateRepoParams p;
      p.name = r.OptString("name", 1, rest::kMaxRepoNameLength);
      p.default_bookmark = r.OptString("default_bookmark", 1, 255).value_or("main");
      if (auto tags = r.OptObject("tags")) p.tags = *tags;
      if (auto up = r.OptObject("upstream")) p.upstream = *up;
      if (auto st = r.status(); !st.ok()) return st;
      auto repo = store_->CreateRepo(c.org, p);
      if (!repo.ok()) return repo.status();
      return Json(RepoJson(*repo), 201);
    }
    if (n == 3 && s[2] == "tags" && (m == "PATCH" || m == "POST")) {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      auto ids = r.OptStringArray("repo_ids");
      if (!r.Has("repo_ids")) r.Fail("repo_ids", "is required");
      std::string action = r.ReqString("action");
      if (!action.empty() && action != "set" && action != "remove") r.Fail("action", "must be set or remove");
      std::string key = r.ReqString("key");
      auto value = r.OptString("value", 0, rest::kMaxTagValueLength);
      if (auto st = r.status(); !st.ok()) return st;
      std::vector<std::string> visible;
      for (const auto& id : *ids) {
        if (c.key.CanSeeRepo(id)) visible.push_back(id);
      }
      auto updated = store_->BulkUpdateRepoTags(c.org, visible, action == "set", key, value);
      if (!updated.ok()) return updated.status();
      return Json({{"updated", *updated}});
    }
    return n <= 3 ? MethodNotAllowed(m) : RouteNotFound();
  }
  if (s[1] == "api-keys") {
    if (auto st = RequireScope(c.key, Scope::kAdmin); !st.ok()) return st;
    if (n == 2 && m == "GET") {
      ListKeysParams p;
      p.cursor = c.Query("cursor");
      auto limit = ParseLimit(c.Query("limit"));
      if (!limit.ok()) return limit.status();
      p.limit = *limit;
      p.query = c.Query("query");
      p.status = c.Query("status").value_or("active");
      if (p.status != "active" && p.status != "revoked" && p.status != "expired" && p.status != "all")
        return rest::FieldError("status", "must be active, revoked, expired or all");
      p.scope = c.Query("scope");
      if (p.scope && *p.scope != "read" && *p.scope != "write" && *p.scope != "admin")
        return rest::FieldError("scope", "must be read, write or admin");
      p.repo_id = c.Query("repo_id");
      p.within_repo_ids = c.key.repo_ids;
      auto page = store_->ListApiKeys(c.org.id, p);
      if (!page.ok()) return page.status();
      return Json(PageJson(*page, "api_keys", ApiKeyJson));
    }
    if (n == 2 && m == "POST") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      CreateKeyParams p;
      p.name = r.OptString("name", 0, 256);
      if (auto scopes = r.OptStringArray("scopes", 1)) p.scopes = *scopes;
      p.repo_ids = r.OptStringArray("repo_ids", 1);
      p.expires_in_seconds = r.OptInt("expires_in_seconds", 100, 31536000);
      if (auto tags = r.OptObject("tags")) p.tags = *tags;
      if (auto st = r.status(); !st.ok()) return st;
      // A credential cannot mint a key that can do more than itself.
      if (rest::ScopeLevel(p.scopes) > rest::ScopeLevel(c.key.scopes))
        return rest::ApiError(403, "FORBIDDEN", "a key cannot be granted scopes its creator does not have");
      if (c.key.repo_ids && !WithinRepos(p.repo_ids, *c.key.repo_ids))
        return rest::ApiError(403, "FORBIDDEN",
                              "a repository-restricted credential can only create keys restricted to its repositories");
      auto created = store_->CreateApiKey(c.org.id, p);
      if (!created.ok()) return created.status();
      const ApiKey& k = created->key;
      return Json({{"id", k.id},
                   {"key", created->secret},
                   {"name", k.name ? nlohmann::json(*k.name) : nlohmann::json(nullptr)},
                   {"scopes", k.scopes},
                   {"repo_ids", k.repo_ids ? nlohmann::json(*k.repo_ids) : nlohmann::json(nullptr)},
                   {"tags", k.tags},
                   {"created_at", rest::FormatRfc3339Millis(k.created_at_ms)}},
                  201);
    }
    if (n == 3 && c.key.repo_ids) {
      // Keys outside a restricted caller's repositories are invisible to it.
      auto target = store_->GetApiKey(c.org.id, s[2]);
      if (!target.ok()) return target.status();
      if (!WithinRepos(target->repo_ids, *c.key.repo_ids))
        return rest::NotFoundError("API_KEY_NOT_FOUND", "API key '" + s[2] + "' not found");
    }
    if (n == 3 && m == "DELETE") {
      if (auto st = store_->RevokeApiKey(c.org.id, s[2]); !st.ok()) return st;
      return Json({{"success", true}});
    }
    if (n == 3 && m == "PATCH") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      auto tags = r.OptObject("tags");
      if (!tags) r.Fail("tags", "is required");
      if (auto st = r.status(); !st.ok()) return st;
      auto merged = store_->UpdateApiKeyTags(c.org.id, s[2], *tags);
      if (!merged.ok()) return merged.status();
      return Json({{"tags", *merged}});
    }
    return n <= 3 ? MethodNotAllowed(m) : RouteNotFound();
  }
  if (s[1] == "webhook-targets") {
    if (auto st = RequireScope(c.key, Scope::kAdmin); !st.ok()) return st;
    return RouteWebhookTargets(c);
  }
  // /{org}/{repo}/...
  auto repo = store_->GetRepo(c.org, s[1]);
  if (!repo.ok()) return repo.status();
  if (!c.key.CanSeeRepo(repo->id))
    return rest::NotFoundError("REPO_NOT_FOUND", "repository '" + s[1] + "' not found");
  c.repo = std::move(*repo);
  return RouteRepo(c);
}

absl::StatusOr<ApiKey> ApiService::ClampToToken(const ApiKey& key, const rest::AccessTokenClaims& claims,
                                                const Org& org) {
  ApiKey k = key;
  k.scopes = rest::ClampScopes(claims.scopes, key.scopes);
  std::optional<std::vector<std::string>> token_ids;
  if (claims.repo_ids) {
    token_ids = *claims.repo_ids;
  } else if (claims.repos) {
    // Full "org/repo" names, resolved now: a name of another org or of no repo grants nothing.
    token_ids.emplace();
    for (const auto& full : *claims.repos) {
      size_t slash = full.find('/');
      if (slash == std::string::npos || full.substr(0, slash) != org.slug) continue;
      auto repo = store_->GetRepo(org, full.substr(slash + 1));
      if (repo.ok()) token_ids->push_back(repo->id);
      else if (!absl::IsNotFound(repo.status())) return repo.status();
    }
  }
  if (token_ids) {
    if (key.repo_ids) {
      std::vector<std::string> both;
      for (const auto& id : *token_ids) {
        if (key.CanSeeRepo(id)) both.push_back(id);
      }
      k.repo_ids = std::move(both);
    } else {
      k.repo_ids = std::move(token_ids);
    }
  }
  return k;
}

absl::StatusOr<Reply> ApiService::RouteWebhookTargets(Call& c) {
  const std::string& m = c.req.method;
  const auto& s = c.seg;
  size_t n = s.size();
  // Repository-restricted callers manage only targets restricted to their repositories and
  // cannot create org-wide ones.
  auto restricted_ok = [&](const std::optional<std::vector<std::string>>& ids) {
    return !c.key.repo_ids || WithinRepos(ids, *c.key.repo_ids);
  };
  auto forbidden = [] {
    return rest::ApiError(403, "FORBIDDEN",
                          "a repository-restricted credential can only manage webhook targets restricted to its repositories");
  };
  if (n == 2 && m == "GET") {
    ListWebhookTargetsParams p;
    p.cursor = c.Query("cursor");
    auto limit = ParseLimit(c.Query("limit"));
    if (!limit.ok()) return limit.status();
    p.limit = *limit;
    p.within_repo_ids = c.key.repo_ids;
    auto page = store_->ListWebhookTargets(c.org.id, p);
    if (!page.ok()) return page.status();
    return Json(PageJson(*page, "webhook_targets", WebhookTargetJson));
  }
  if (n == 2 && m == "POST") {
    auto body = ParseJsonObject(c.req.body);
    if (!body.ok()) return body.status();
    FieldReader r(*body);
    CreateWebhookTargetParams p;
    p.url = r.ReqString("url", 1, 2048);
    p.name = r.OptString("name", 0, 256);
    p.events = r.OptStringArray("events", 1);
    p.repo_ids = r.OptStringArray("repo_ids", 1);
    if (auto st = r.status(); !st.ok()) return st;
    if (!restricted_ok(p.repo_ids)) return forbidden();
    auto created = store_->CreateWebhookTarget(c.org.id, p);
    if (!created.ok()) return created.status();
    nlohmann::json j = WebhookTargetJson(created->target);
    j["secret"] = created->secret;  // shown once
    return Json(std::move(j), 201);
  }
  if (n == 2) return MethodNotAllowed(m);
  if (n != 3) return RouteNotFound();
  const std::string& id = s[2];
  auto existing = store_->GetWebhookTarget(c.org.id, id);
  if (!existing.ok()) return existing.status();
  if (!restricted_ok(existing->repo_ids))
    return rest::NotFoundError("WEBHOOK_TARGET_NOT_FOUND", "webhook target '" + id + "' not found");
  if (m == "GET") return Json(WebhookTargetJson(*existing));
  if (m == "DELETE") {
    if (auto st = store_->DeleteWebhookTarget(c.org.id, id); !st.ok()) return st;
    return Json({{"success", true}});
  }
  if (m == "PATCH") {
    auto body = ParseJsonObject(c.req.body);
    if (!body.ok()) return body.status();
    FieldReader r(*body);
    UpdateWebhookTargetParams p;
    if (r.Has("name")) p.name.emplace(r.OptString("name", 0, 256));
    if (r.Has("url")) {
      if (r.IsNull("url")) r.Fail("url", "must be a string");
      else p.url = r.ReqString("url", 1, 2048);
    }
    if (r.Has("events")) {
      if (r.IsNull("events")) r.Fail("events", "must be an array of event types");
      else p.events = r.OptStringArray("events", 1);
    }
    if (r.Has("repo_ids")) p.repo_ids.emplace(r.OptStringArray("repo_ids", 1));  // null: org-wide
    if (auto st = r.status(); !st.ok()) return st;
    if (p.repo_ids && !restricted_ok(*p.repo_ids)) return forbidden();
    auto updated = store_->UpdateWebhookTarget(c.org.id, id, p);
    if (!updated.ok()) return updated.status();
    return Json(WebhookTargetJson(*updated));
  }
  return MethodNotAllowed(m);
}

absl::StatusOr<Reply> ApiService::RouteRepo(Call& c) {
  const std::string& m = c.req.method;
  const auto& s = c.seg;
  size_t n = s.size();
  if (auto st = RequireScope(c.key, ScopeForMethod(m)); !st.ok()) return st;
  const Repo& repo = c.repo;

  if (n == 2) {
    if (m == "GET") return Json(RepoJson(repo));
    if (m == "DELETE") {
      if (auto st = store_->DeleteRepo(repo); !st.ok()) return st;
      return Json({{"success", true}});
    }
    if (m == "PATCH") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      UpdateRepoParams p;
      p.name = r.OptString("name", 1, rest::kMaxRepoNameLength);
      p.default_bookmark = r.OptString("default_bookmark", 1, 255);
      if (r.Has("tags")) p.tags = r.OptObject("tags").value_or(nlohmann::json::object());
      if (r.Has("upstream")) {
        if (r.IsNull("upstream")) p.upstream = nlohmann::json(nullptr);
        else if (auto up = r.OptObject("upstream")) p.upstream = *up;
      }
      if (auto st = r.status(); !st.ok()) return st;
      auto updated = store_->UpdateRepo(c.org, repo, p);
      if (!updated.ok()) return updated.status();
      return Json(RepoJson(*updated));
    }
    return MethodNotAllowed(m);
  }

  const std::string& what = s[2];
  if (what == "content" && n == 3) {
    if (m != "GET") return MethodNotAllowed(m);
    auto change_id = c.Query("change_id");
    if (change_id) {
      if (auto st = CheckChangeId("change_id", *change_id); !st.ok()) return st;
    }
    auto path = rest::NormalizeReadPath(c.Query("path").value_or(""), "path");
    if (!path.ok()) return path.status();
    int depth = 1;
    if (auto d = c.Query("depth")) {
      if (!absl::SimpleAtoi(*d, &depth) || depth < 0 || depth > 10)
        return rest::FieldError("depth", "must be an integer between 0 and 10");
    }
    bool raw = c.Accepts("application/octet-stream");
    auto content = store_->GetContent(repo, change_id, *path, depth, /*with_data=*/true);
    if (!content.ok()) return content.status();
    // metadata[...] filters match entry metadata; this store has none, so any filter
    // leaves no entries.
    for (const auto& [k, v] : c.req.params) {
      if (k.rfind("metadata[", 0) == 0) {
        content->entries.clear();
        break;
      }
    }
    if (raw) {
      if (content->type == "dir")
        return rest::ApiError(406, "NOT_ACCEPTABLE", "'" + *path + "' is a directory; octet-stream needs a file");
      Reply r;
      r.raw = std::move(content->data);
      r.content_type = "application/octet-stream";
      return r;
    }
    return Json(ContentJson(*content));
  }
  if (what == "diff" && n == 3) {
    if (m != "GET") return MethodNotAllowed(m);
    auto base = c.Query("base_change_id");
    auto head = c.Query("head_change_id");
    if (!base) return rest::FieldError("base_change_id", "is required");
    if (!head) return rest::FieldError("head_change_id", "is required");
    if (auto st = CheckChangeId("base_change_id", *base); !st.ok()) return st;
    if (auto st = CheckChangeId("head_change_id", *head); !st.ok()) return st;
    auto mode = ParseConflictsMode(c.Query("conflicts"));
    if (!mode.ok()) return mode.status();
    if (c.Accepts("text/plain")) {
      auto text = store_->GetUnifiedDiff(repo, *base, *head);
      if (!text.ok()) return text.status();
      Reply r;
      r.raw = std::move(*text);
      r.content_type = "text/plain; charset=utf-8";
      return r;
    }
    auto diff = store_->GetDiff(repo, *base, *head, *mode);
    if (!diff.ok()) return diff.status();
    return Json(DiffJson(*diff, *mode));
  }
  if (what == "bookmarks") {
    if (n == 3 && m == "GET") {
      auto limit = ParseLimit(c.Query("limit"));
      if (!limit.ok()) return limit.status();
      auto page = store_->ListBookmarks(repo, c.Query("cursor"), *limit, c.Query("glob"));
      if (!page.ok()) return page.status();
      return Json(PageJson(*page, "bookmarks", BookmarkJson));
    }
    if (n == 3 && m == "POST") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      std::string name = r.ReqString("name", 1, 255);
      std::string change_id = r.ReqString("change_id");
      if (!change_id.empty() && !rest::IsValidChangeId(change_id)) r.Fail("change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
      if (!name.empty() && !rest::IsValidBookmarkName(name)) r.Fail("name", "is not a valid bookmark name");
      if (auto st = r.status(); !st.ok()) return st;
      auto b = store_->CreateBookmark(repo, name, change_id);
      if (!b.ok()) return b.status();
      return Json(BookmarkJson(*b), 201);
    }
    if (n == 3) return MethodNotAllowed(m);
    if (n == 4 && s[3] == "merge" && m == "POST") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      MergeParams p;
      p.target = r.ReqString("target");
      p.source = r.ReqString("source");
      p.delete_source = r.OptBool("delete_source").value_or(false);
      p.allow_conflicted = r.OptBool("allow_conflicted").value_or(false);
      p.message = r.OptString("message", 0);
      if (auto st = r.status(); !st.ok()) return st;
      if (r.Has("resolutions") && !r.IsNull("resolutions")) {
        auto res = ParseResolutions(r.Raw("resolutions"));
        if (!res.ok()) return res.status();
        p.resolutions = std::move(*res);
      }
      p.identity = c.Identity();
      auto result = store_->MergeBookmarks(repo, p);
      if (!result.ok()) return result.status();
      return Json(MergeJson(*result));
    }
    // Names may contain '/': normally sent as %2F, but tolerate raw slashes too.
    std::vector<std::string> parts(s.begin() + 3, s.end());
    std::string name = absl::StrJoin(parts, "/");
    if (m == "GET") {
      auto b = store_->GetBookmark(repo, name);
      if (!b.ok()) return b.status();
      return Json(BookmarkJson(*b));
    }
    if (m == "DELETE") {
      if (auto st = store_->DeleteBookmark(repo, name); !st.ok()) return st;
      return Json({{"success", true}});
    }
    if (m == "PATCH") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      std::string change_id = r.ReqString("change_id");
      if (!change_id.empty() && !rest::IsValidChangeId(change_id)) r.Fail("change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
      (void)r.OptBool("allow_backwards");  // 0.43+ field: accepted; 0.38 allows any move
      if (auto st = r.status(); !st.ok()) return st;
      auto moved = store_->MoveBookmark(repo, name, change_id);
      if (!moved.ok()) return moved.status();
      nlohmann::json j = BookmarkJson(moved->bookmark);
      j["from_change_id"] = moved->from_change_id ? nlohmann::json(*moved->from_change_id) : nlohmann::json(nullptr);
      return Json(j);
    }
    return MethodNotAllowed(m);
  }
  if (what == "changes") {
    if (n == 3 && m == "GET") {
      auto limit = ParseLimit(c.Query("limit"));
      if (!limit.ok()) return limit.status();
      auto page = store_->ListChanges(repo, c.Query("bookmark"), c.Query("cursor"), *limit);
      if (!page.ok()) return page.status();
      return Json(PageJson(*page, "changes", [](const Change& ch) { return ChangeJson(ch, false); }));
    }
    if (n == 3 && m == "POST") {
      auto body = ParseJsonObject(c.req.body);
      if (!body.ok()) return body.status();
      FieldReader r(*body);
      CreateChangeParams p;
      p.base_change_id = r.ReqString("base_change_id");
      if (!p.base_change_id.empty() && !rest::IsValidChangeId(p.base_change_id))
        r.Fail("base_change_id", "must match ^[zyxwvutsrqponmlk]{32}$");
      p.message = r.OptString("message", 0);
      auto author = ParseSignature(r, "author");
      auto committer = ParseSignature(r, "committer");
      if (auto st = r.status(); !st.ok()) return st;
      if (!author.ok()) return author.status();
      if (!committer.ok()) return committer.status();
      p.author = *author;
      p.committer = *committer;
      if (r.Has("files") && !r.IsNull("files")) {
        auto ops = ParseFileOps(r.Raw("files"));
        if (!ops.ok()) return ops.status();
        p.files = std::move(*ops);
      }
      auto change = store_->CreateChange(repo, p, c.Identity());
      if (!change.ok()) return change.status();
      return Json(ChangeJson(*change, false), 201);
    }
    if (n == 3) return MethodNotAllowed(m);
    if (n == 4) {
      const std::string& id = s[3];
      if (auto st = CheckChangeId("change_id", id); !st.ok()) return st;
      if (m == "GET") {
        auto change = store_->GetChange(repo, id);
        if (!change.ok()) return change.status();
        return Json(ChangeJson(*change, true));
      }
      if (m == "PATCH") {
        auto body = ParseJsonObject(c.req.body);
        if (!body.ok()) return body.status();
        FieldReader r(*body);
        UpdateChangeParams p;
        p.message = r.OptString("message", 0);
        auto author = ParseSignature(r, "author");
        auto committer = ParseSignature(r, "committer");
        p.base_commit_oid = r.OptString("base_commit_oid");
        if (p.base_commit_oid && !rest::IsValidCommitOid(*p.base_commit_oid))
          r.Fail("base_commit_oid", "must match ^[0-9a-f]{40}$");
        if (r.Has("files") && r.Raw("files").is_array() && r.Raw("files").empty())
          r.Fail("files", "must have at least 1 item");
        if (auto st = r.status(); !st.ok()) return st;
        if (!author.ok()) return author.status();
        if (!committer.ok()) return committer.status();
        p.author = *author;
        p.committer = *committer;
        if (r.Has("files") && !r.IsNull("files")) {
          auto ops = ParseFileOps(r.Raw("files"));
          if (!ops.ok()) return ops.status();
          p.files = std::move(*ops);
        }
        if (r.Has("resolutions") && !r.IsNull("resolutions")) {
          auto res = ParseResolutions(r.Raw("resolutions"));
          if (!res.ok()) return res.status();
          p.resolutions = std::move(*res);
        }
        auto change = store_->UpdateChange(repo, id, p);
        if (!change.ok()) return change.status();
        return Json(ChangeJson(*change, false));
      }
      return MethodNotAllowed(m);
    }
    return RouteNotFound();
  }
  if (what == "upstream") {
    if (n == 4 && s[3] == "syncs" && m == "GET") {
      return Json({{"next_cursor", nullptr}, {"has_more", false}, {"syncs", nlohmann::json::array()}});
    }
    if (n == 4 && s[3] == "syncs" && m == "POST") {
      if (repo.upstream.is_null())
        return rest::ApiError(400, "UPSTREAM_NOT_CONFIGURED", "repository has no upstream");
      return rest::ApiError(501, "NOT_IMPLEMENTED", "upstream syncs are not supported by mesa-server");
    }
    if (n == 5 && s[3] == "syncs" && m == "GET")
      return rest::NotFoundError("SYNC_NOT_FOUND", "sync '" + s[4] + "' not found");
    return RouteNotFound();
  }
  return RouteNotFound();
}

}  // namespace mesa::server::api
