#include "rest/codec.h"

#include "rest/api_error.h"
#include "rest/encoding.h"
#include "rest/webhook_signature.h"

namespace mesa::rest {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
bool Bool(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}
// Calls set(value) only when the key holds a string (null and absent leave the field unset).
template <typename F>
void OptStr(const json& j, const char* key, F&& set) {
  auto it = j.find(key);
  if (it != j.end() && it->is_string()) set(it->get<std::string>());
}
const json& Arr(const json& j, const char* key) {
  static const json empty = json::array();
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : empty;
}
template <typename Map>
void StrMap(const json& j, const char* key, Map* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return;
  for (auto& [k, v] : it->items()) {
    if (v.is_string()) (*out)[k] = v.template get<std::string>();
  }
}
std::string Decode64(const std::string& s) { return Base64Decode(s).value_or(std::string()); }

std::string RepoPath(const std::string& org, const std::string& repo) {
  return "/" + EncodeSegment(org) + "/" + EncodeSegment(repo);
}

void AddPaging(RestRequest& req, const std::string& cursor, int32_t limit) {
  if (!cursor.empty()) req.query.emplace_back("cursor", cursor);
  if (limit > 0) req.query.emplace_back("limit", std::to_string(limit));
}

json SignatureJson(const v1::Signature& s) {
  json j = {{"name", s.name()}, {"email", s.email()}};
  if (!s.date().empty()) j["date"] = s.date();
  return j;
}

json FilesJson(const google::protobuf::RepeatedPtrField<dv1::FileOp>& files) {
  json out = json::array();
  for (const auto& f : files) {
    if (f.action() == "delete") {
      out.push_back({{"path", f.path()}, {"action", "delete"}});
      continue;
    }
    json op = {{"path", f.path()}, {"content", Base64Encode(f.content())}, {"encoding", "base64"}};
    if (!f.action().empty()) op["action"] = f.action();
    if (!f.mode().empty()) op["mode"] = f.mode();
    out.push_back(std::move(op));
  }
  return out;
}

json ResolutionsJson(const google::protobuf::RepeatedPtrField<dv1::Resolution>& list) {
  json out = json::array();
  for (const auto& r : list) {
    json j = {{"path", r.path()}};
    if (r.hunks_size() > 0) {
      json hunks = json::array();
      for (const auto& h : r.hunks()) {
        json hj = {{"hunk_id", h.hunk_id()}};
        if (h.has_content()) {
          hj["content"] = Base64Encode(h.content());
          hj["encoding"] = "base64";
        } else if (h.has_take()) {
          hj["take"] = h.take();
        }
        hunks.push_back(std::move(hj));
      }
      j["hunks"] = std::move(hunks);
    } else if (r.has_content()) {
      j["content"] = Base64Encode(r.content());
      j["encoding"] = "base64";
    } else if (r.has_take()) {
      j["take"] = r.take();
    }
    out.push_back(std::move(j));
  }
  return out;
}

json UpstreamJson(const dv1::UpstreamInput& u) {
  json j = {{"url", u.url()}};
  switch (u.auth_case()) {
    case dv1::UpstreamInput::kToken: {
      json a = {{"kind", "token"}, {"token", u.token().token()}};
      if (!u.token().token_username().empty()) a["token_username"] = u.token().token_username();
      j["auth"] = a;
      break;
    }
    case dv1::UpstreamInput::kUsernamePassword:
      j["auth"] = {{"kind", "username_password"},
                   {"username", u.username_password().username()},
                   {"password", u.username_password().password()}};
      break;
    case dv1::UpstreamInput::kClearAuth:
      j["auth"] = nullptr;
      break;
    default:
      break;
  }
  return j;
}

void ValueFromJson(const json& j, google::protobuf::Value* out) {
  if (j.is_null()) out->set_null_value(google::protobuf::NULL_VALUE);
  else if (j.is_boolean()) out->set_bool_value(j.get<bool>());
  else if (j.is_number()) out->set_number_value(j.get<double>());
  else if (j.is_string()) out->set_string_value(j.get<std::string>());
  else if (j.is_array()) {
    auto* list = out->mutable_list_value();
    for (const auto& e : j) ValueFromJson(e, list->add_values());
  } else if (j.is_object()) {
    JsonToStruct(j, out->mutable_struct_value());
  }
}

json ValueToJson(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kBoolValue: return v.bool_value();
    case google::protobuf::Value::kNumberValue: {
      double d = v.number_value();
      if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
      return d;
    }
    case google::protobuf::Value::kStringValue: return v.string_value();
    case google::protobuf::Value::kListValue: {
      json a = json::array();
      for (const auto& e : v.list_value().values()) a.push_back(ValueToJson(e));
      return a;
    }
    case google::protobuf::Value::kStructValue: return StructToJson(v.struct_value());
    default: return nullptr;
  }
}

void SyncFromJson(const json& j, v1::Sync* s) {
  s->set_id(Str(j, "id"));
  s->set_repo_id(Str(j, "repo_id"));
  s->set_direction(Str(j, "direction"));
  s->set_status(Str(j, "status"));
  s->set_attempt(static_cast<int32_t>(Int(j, "attempt")));
  if (j.contains("ref_globs") && j["ref_globs"].is_object()) {
    s->mutable_ref_globs()->set_branches(Str(j["ref_globs"], "branches"));
    s->mutable_ref_globs()->set_tags(Str(j["ref_globs"], "tags"));
  }
  if (j.contains("stats") && j["stats"].is_object()) {
    for (const auto& r : Arr(j["stats"], "refs")) {
      auto* ref = s->add_refs();
      ref->set_name(Str(r, "name"));
      OptStr(r, "before", [&](std::string v) { ref->set_before(v); });
      ref->set_after(Str(r, "after"));
      ref->set_outcome(Str(r, "outcome"));
    }
  }
  OptStr(j, "error", [&](std::string v) { s->set_error(v); });
  s->set_created_at(Str(j, "created_at"));
  OptStr(j, "started_at", [&](std::string v) { s->set_started_at(v); });
  OptStr(j, "finished_at", [&](std::string v) { s->set_finished_at(v); });
}

void HunkFromJson(const json& j, v1::ConflictHunk* h) {
  h->set_hunk_id(Str(j, "hunk_id"));
  h->set_old_start(static_cast<int32_t>(Int(j, "old_start")));
  h->set_old_lines(static_cast<int32_t>(Int(j, "old_lines")));
  h->set_new_start(static_cast<int32_t>(Int(j, "new_start")));
  h->set_new_lines(static_cast<int32_t>(Int(j, "new_lines")));
  auto side = [&](const char* key, v1::ConflictSide* (v1::ConflictHunk::*mut)()) {
    if (j.contains(key) && j[key].is_object()) (h->*mut)()->set_content(Decode64(Str(j[key], "content")));
  };
  side("target", &v1::ConflictHunk::mutable_target);
  side("base", &v1::ConflictHunk::mutable_base);
  side("source", &v1::ConflictHunk::mutable_source);
}

}  // namespace

std::string EncodeSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : segment) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '!' || c == '~' || c == '*' ||
        c == '\'' || c == '(' || c == ')') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

// ---- requests ----

RestRequest WhoamiCall() { return {"GET", "/whoami", {}, std::nullopt, ""}; }

RestRequest GetOrgCall(const std::string& org) { return {"GET", "/" + EncodeSegment(org), {}, std::nullopt, ""}; }

RestRequest ListReposCall(const std::string& org, const dv1::ListReposRequest& r) {
  RestRequest req{"GET", "/" + EncodeSegment(org) + "/repos", {}, std::nullopt, ""};
  AddPaging(req, r.cursor(), r.limit());
  if (!r.tags().empty()) req.query.emplace_back("tags", r.tags());
  return req;
}

RestRequest CreateRepoCall(const std::string& org, const dv1::CreateRepoRequest& r) {
  json body = json::object();
  if (!r.name().empty()) body["name"] = r.name();
  if (!r.default_bookmark().empty()) body["default_bookmark"] = r.default_bookmark();
  if (!r.tags().empty()) {
    json tags = json::object();
    for (const auto& [k, v] : r.tags()) tags[k] = v;
    body["tags"] = tags;
  }
  if (r.has_upstream()) body["upstream"] = UpstreamJson(r.upstream());
  return {"POST", "/" + EncodeSegment(org) + "/repos", {}, body, ""};
}

RestRequest GetRepoCall(const std::string& org, const std::string& repo) {
  return {"GET", RepoPath(org, repo), {}, std::nullopt, ""};
}

RestRequest UpdateRepoCall(const std::string& org, const dv1::UpdateRepoRequest& r) {
  json body = json::object();
  if (r.has_name()) body["name"] = r.name();
  if (r.has_default_bookmark()) body["default_bookmark"] = r.default_bookmark();
  if (!r.set_tags().empty() || r.remove_tags_size() > 0) {
    json tags = json::object();
    for (const auto& [k, v] : r.set_tags()) tags[k] = v;
    for (const auto& k : r.remove_tags()) tags[k] = nullptr;
    body["tags"] = tags;
  }
  if (r.has_set_upstream()) body["upstream"] = UpstreamJson(r.set_upstream());
  if (r.has_remove_upstream() && r.remove_upstream()) body["upstream"] = nullptr;
  return {"PATCH", RepoPath(org, r.repo()), {}, body, ""};
}

RestRequest DeleteRepoCall(const std::string& org, const std::string& repo) {
  return {"DELETE", RepoPath(org, repo), {}, std::nullopt, ""};
}

RestRequest BulkUpdateRepoTagsCall(const std::string& org, const dv1::BulkUpdateRepoTagsRequest& r) {
  json body = {{"repo_ids", json(std::vector<std::string>(r.repo_ids().begin(), r.repo_ids().end()))},
               {"action", r.action()},
               {"key", r.key()}};
  if (r.has_value()) body["value"] = r.value();
  return {"PATCH", "/" + EncodeSegment(org) + "/repos/tags", {}, body, ""};
}

RestRequest ListBookmarksCall(const std::string& org, const dv1::ListBookmarksRequest& r) {
  RestRequest req{"GET", RepoPath(org, r.repo()) + "/bookmarks", {}, std::nullopt, ""};
  AddPaging(req, r.cursor(), r.limit());
  if (!r.glob().empty()) req.query.emplace_back("glob", r.glob());
  return req;
}

RestRequest CreateBookmarkCall(const std::string& org, const dv1::CreateBookmarkRequest& r) {
  return {"POST", RepoPath(org, r.repo()) + "/bookmarks", {}, json{{"name", r.name()}, {"change_id", r.change_id()}}, ""};
}

RestRequest GetBookmarkCall(const std::string& org, const std::string& repo, const std::string& name) {
  return {"GET", RepoPath(org, repo) + "/bookmarks/" + EncodeSegment(name), {}, std::nullopt, ""};
}

RestRequest MoveBookmarkCall(const std::string& org, const dv1::MoveBookmarkRequest& r) {
  return {"PATCH", RepoPath(org, r.repo()) + "/bookmarks/" + EncodeSegment(r.name()), {},
          json{{"change_id", r.change_id()}}, ""};
}

RestRequest DeleteBookmarkCall(const std::string& org, const std::string& repo, const std::string& name) {
  return {"DELETE", RepoPath(org, repo) + "/bookmarks/" + EncodeSegment(name), {}, std::nullopt, ""};
}

RestRequest MergeBookmarksCall(const std::string& org, const dv1::MergeBookmarksRequest& r) {
  json body = {{"target", r.target()}, {"source", r.source()}};
  if (r.delete_source()) body["delete_source"] = true;
  if (r.allow_conflicted()) body["allow_conflicted"] = true;
  if (r.has_message()) body["message"] = r.message();
  if (r.resolutions_size() > 0) body["resolutions"] = ResolutionsJson(r.resolutions());
  return {"POST", RepoPath(org, r.repo()) + "/bookmarks/merge", {}, body, ""};
}

RestRequest ListChangesCall(const std::string& org, const dv1::ListChangesRequest& r) {
  RestRequest req{"GET", RepoPath(org, r.repo()) + "/changes", {}, std::nullopt, ""};
  AddPaging(req, r.cursor(), r.limit());
  if (!r.bookmark().empty()) req.query.emplace_back("bookmark", r.bookmark());
  return req;
}

RestRequest CreateChangeCall(const std::string& org, const dv1::CreateChangeRequest& r) {
  json body = {{"base_change_id", r.base_change_id()}};
  if (r.has_message()) body["message"] = r.message();
  if (r.has_author()) body["author"] = SignatureJson(r.author());
  if (r.has_committer()) body["committer"] = SignatureJson(r.committer());
  if (r.files_size() > 0) body["files"] = FilesJson(r.files());
  return {"POST", RepoPath(org, r.repo()) + "/changes", {}, body, ""};
}

RestRequest GetChangeCall(const std::string& org, const std::string& repo, const std::string& change_id) {
  return {"GET", RepoPath(org, repo) + "/changes/" + EncodeSegment(change_id), {}, std::nullopt, ""};
}

RestRequest UpdateChangeCall(const std::string& org, const dv1::UpdateChangeRequest& r) {
  json body = json::object();
  if (r.has_message()) body["message"] = r.message();
  if (r.has_author()) body["author"] = SignatureJson(r.author());
  if (r.has_committer()) body["committer"] = SignatureJson(r.committer());
  if (r.files_size() > 0) body["files"] = FilesJson(r.files());
  if (r.has_base_commit_oid()) body["base_commit_oid"] = r.base_commit_oid();
  if (r.resolutions_size() > 0) body["resolutions"] = ResolutionsJson(r.resolutions());
  return {"PATCH", RepoPath(org, r.repo()) + "/changes/" + EncodeSegment(r.change_id()), {}, body, ""};
}

RestRequest GetContentCall(const std::string& org, const dv1::GetContentRequest& r) {
  RestRequest req{"GET", RepoPath(org, r.repo()) + "/content", {}, std::nullopt, ""};
  if (!r.change_id().empty()) req.query.emplace_back("change_id", r.change_id());
  if (!r.path().empty()) req.query.emplace_back("path", r.path());
  if (r.has_depth()) req.query.emplace_back("depth", std::to_string(r.depth()));
  for (const auto& [k, v] : r.metadata()) req.query.emplace_back("metadata[" + k + "]", v);
  if (r.raw()) req.accept = "application/octet-stream";
  return req;
}

RestRequest GetDiffCall(const std::string& org, const dv1::GetDiffRequest& r) {
  RestRequest req{"GET", RepoPath(org, r.repo()) + "/diff", {}, std::nullopt, ""};
  req.query.emplace_back("base_change_id", r.base_change_id());
  req.query.emplace_back("head_change_id", r.head_change_id());
  if (!r.conflicts().empty()) req.query.emplace_back("conflicts", r.conflicts());
  if (r.unified()) req.accept = "text/plain";
  return req;
}

RestRequest ListApiKeysCall(const std::string& org, const dv1::ListApiKeysRequest& r) {
  RestRequest req{"GET", "/" + EncodeSegment(org) + "/api-keys", {}, std::nullopt, ""};
  AddPaging(req, r.cursor(), r.limit());
  if (!r.query().empty()) req.query.emplace_back("query", r.query());
  if (!r.status().empty()) req.query.emplace_back("status", r.status());
  if (!r.scope().empty()) req.query.emplace_back("scope", r.scope());
  if (!r.repo_id().empty()) req.query.emplace_back("repo_id", r.repo_id());
  return req;
}

RestRequest CreateApiKeyCall(const std::string& org, const dv1::CreateApiKeyRequest& r) {
  json body = json::object();
  if (r.has_name()) body["name"] = r.name();
  if (r.scopes_size() > 0) body["scopes"] = std::vector<std::string>(r.scopes().begin(), r.scopes().end());
  if (r.has_repo_ids())
    body["repo_ids"] = std::vector<std::string>(r.repo_ids().values().begin(), r.repo_ids().values().end());
  if (r.has_expires_in_seconds()) body["expires_in_seconds"] = r.expires_in_seconds();
  if (!r.tags().empty()) {
    json tags = json::object();
    for (const auto& [k, v] : r.tags()) tags[k] = v;
    body["tags"] = tags;
  }
  return {"POST", "/" + EncodeSegment(org) + "/api-keys", {}, body, ""};
}

RestRequest RevokeApiKeyCall(const std::string& org, const std::string& id) {
  return {"DELETE", "/" + EncodeSegment(org) + "/api-keys/" + EncodeSegment(id), {}, std::nullopt, ""};
}

RestRequest UpdateApiKeyCall(const std::string& org, const dv1::UpdateApiKeyRequest& r) {
  json tags = json::object();
  for (const auto& [k, v] : r.set_tags()) tags[k] = v;
  for (const auto& k : r.remove_tags()) tags[k] = nullptr;
  return {"PATCH", "/" + EncodeSegment(org) + "/api-keys/" + EncodeSegment(r.id()), {}, json{{"tags", tags}}, ""};
}

RestRequest ListWebhookTargetsCall(const std::string& org, const dv1::ListWebhookTargetsRequest& r) {
  RestRequest req{"GET", "/" + EncodeSegment(org) + "/webhook-targets", {}, std::nullopt, ""};
  AddPaging(req, r.cursor(), r.limit());
  return req;
}

RestRequest CreateWebhookTargetCall(const std::string& org, const dv1::CreateWebhookTargetRequest& r) {
  json body = {{"url", r.url()}};
  if (r.has_name()) body["name"] = r.name();
  if (r.events_size() > 0) body["events"] = std::vector<std::string>(r.events().begin(), r.events().end());
  if (r.has_repo_ids())
    body["repo_ids"] = std::vector<std::string>(r.repo_ids().values().begin(), r.repo_ids().values().end());
  return {"POST", "/" + EncodeSegment(org) + "/webhook-targets", {}, body, ""};
}

RestRequest GetWebhookTargetCall(const std::string& org, const std::string& id) {
  return {"GET", "/" + EncodeSegment(org) + "/webhook-targets/" + EncodeSegment(id), {}, std::nullopt, ""};
}

RestRequest UpdateWebhookTargetCall(const std::string& org, const dv1::UpdateWebhookTargetRequest& r) {
  json body = json::object();
  if (r.has_name()) body["name"] = r.name();
  if (r.has_clear_name() && r.clear_name()) body["name"] = nullptr;
  if (r.has_url()) body["url"] = r.url();
  if (r.events_size() > 0) body["events"] = std::vector<std::string>(r.events().begin(), r.events().end());
  if (r.has_repo_ids())
    body["repo_ids"] = std::vector<std::string>(r.repo_ids().values().begin(), r.repo_ids().values().end());
  if (r.has_org_wide() && r.org_wide()) body["repo_ids"] = nullptr;
  return {"PATCH", "/" + EncodeSegment(org) + "/webhook-targets/" + EncodeSegment(r.id()), {}, body, ""};
}

RestRequest DeleteWebhookTargetCall(const std::string& org, const std::string& id) {
  return {"DELETE", "/" + EncodeSegment(org) + "/webhook-targets/" + EncodeSegment(id), {}, std::nullopt, ""};
}

// ---- responses ----

void FromJson(const json& j, v1::Org* out) {
  out->set_id(Str(j, "id"));
  out->set_slug(Str(j, "slug"));
  out->set_name(Str(j, "name"));
}

void FromJson(const json& j, v1::Whoami* out) {
  if (j.contains("org") && j["org"].is_object()) FromJson(j["org"], out->mutable_org());
  OptStr(j, "key_id", [&](std::string v) { out->set_key_id(v); });
  OptStr(j, "key_name", [&](std::string v) { out->set_key_name(v); });
  for (const auto& s : Arr(j, "scopes")) {
    if (s.is_string()) out->add_scopes(s.get<std::string>());
  }
}

void FromJson(const json& j, v1::OrgSummary* out) {
  out->set_created_at(Str(j, "created_at"));
  out->set_num_repos(Int(j, "num_repos"));
}

void FromJson(const json& j, v1::Repo* out) {
  out->set_id(Str(j, "id"));
  out->set_org(Str(j, "org"));
  out->set_name(Str(j, "name"));
  out->set_default_bookmark(Str(j, "default_bookmark"));
  out->set_head_change_id(Str(j, "head_change_id"));
  if (j.contains("upstream") && j["upstream"].is_object()) {
    const json& u = j["upstream"];
    auto* up = out->mutable_upstream();
    up->set_url(Str(u, "url"));
    OptStr(u, "auth_kind", [&](std::string v) { up->set_auth_kind(v); });
    if (u.contains("latest_sync") && u["latest_sync"].is_object()) SyncFromJson(u["latest_sync"], up->mutable_latest_sync());
  }
  out->set_created_at(Str(j, "created_at"));
  StrMap(j, "tags", out->mutable_tags());
}

void FromJson(const json& j, v1::Bookmark* out) {
  out->set_name(Str(j, "name"));
  out->set_change_id(Str(j, "change_id"));
  out->set_is_default(Bool(j, "is_default"));
  OptStr(j, "from_change_id", [&](std::string v) { out->set_from_change_id(v); });
}

void FromJson(const json& j, v1::Signature* out) {
  out->set_name(Str(j, "name"));
  out->set_email(Str(j, "email"));
  out->set_date(Str(j, "date"));
}

void FromJson(const json& j, v1::Change* out) {
  out->set_id(Str(j, "id"));
  out->set_current_commit_oid(Str(j, "current_commit_oid"));
  out->set_is_conflicted(Bool(j, "is_conflicted"));
  out->set_message(Str(j, "message"));
  if (j.contains("author") && j["author"].is_object()) FromJson(j["author"], out->mutable_author());
  if (j.contains("committer") && j["committer"].is_object()) FromJson(j["committer"], out->mutable_committer());
  for (const auto& p : Arr(j, "parents")) out->add_parents(p.get<std::string>());
  out->set_created_at(Str(j, "created_at"));
  out->set_updated_at(Str(j, "updated_at"));
  for (const auto& f : Arr(j, "files")) out->add_files(f.get<std::string>());
  for (const auto& c : Arr(j, "conflicts")) out->add_conflicts(c.get<std::string>());
}

void FromJson(const json& j, v1::Content* out) {
  out->set_type(Str(j, "type"));
  out->set_name(Str(j, "name"));
  out->set_path(Str(j, "path"));
  out->set_sha(Str(j, "sha"));
  out->set_is_conflicted(Bool(j, "is_conflicted"));
  out->set_size(Int(j, "size"));
  if (j.contains("content") && j["content"].is_string()) out->set_content(Decode64(j["content"].get<std::string>()));
  out->set_mode(Str(j, "mode"));
  out->set_child_count(Int(j, "child_count"));
  for (const auto& e : Arr(j, "entries")) {
    auto* entry = out->add_entries();
    entry->set_type(Str(e, "type"));
    entry->set_name(Str(e, "name"));
    entry->set_path(Str(e, "path"));
    entry->set_sha(Str(e, "sha"));
    entry->set_size(Int(e, "size"));
    entry->set_mode(Str(e, "mode"));
    StrMap(e, "metadata", entry->mutable_metadata());
  }
  StrMap(j, "metadata", out->mutable_metadata());
}

void FromJson(const json& j, v1::Diff* out) {
  out->set_base_change_id(Str(j, "base_change_id"));
  out->set_head_change_id(Str(j, "head_change_id"));
  if (j.contains("stats") && j["stats"].is_object()) {
    const json& s = j["stats"];
    auto* st = out->mutable_stats();
    st->set_entries(static_cast<int32_t>(Int(s, "entries")));
    st->set_additions(static_cast<int32_t>(Int(s, "additions")));
    st->set_deletions(static_cast<int32_t>(Int(s, "deletions")));
    st->set_changes(static_cast<int32_t>(Int(s, "changes")));
    st->set_conflicted_entries(static_cast<int32_t>(Int(s, "conflicted_entries")));
    st->set_conflicted_hunks(static_cast<int32_t>(Int(s, "conflicted_hunks")));
  }
  out->set_truncated(Bool(j, "truncated"));
  for (const auto& e : Arr(j, "entries")) {
    auto* entry = out->add_entries();
    entry->set_path(Str(e, "path"));
    entry->set_status(Str(e, "status"));
    OptStr(e, "old_path", [&](std::string v) { entry->set_old_path(v); });
    entry->set_size_bytes(Int(e, "size_bytes"));
    entry->set_is_conflicted(Bool(e, "is_conflicted"));
    OptStr(e, "omitted_reason", [&](std::string v) { entry->set_omitted_reason(v); });
    for (const auto& h : Arr(e, "hunks")) {
      auto* hunk = entry->add_hunks();
      hunk->set_old_start(static_cast<int32_t>(Int(h, "old_start")));
      hunk->set_old_lines(static_cast<int32_t>(Int(h, "old_lines")));
      hunk->set_new_start(static_cast<int32_t>(Int(h, "new_start")));
      hunk->set_new_lines(static_cast<int32_t>(Int(h, "new_lines")));
      for (const auto& l : Arr(h, "lines")) {
        auto* line = hunk->add_lines();
        line->set_kind(Str(l, "kind"));
        line->set_text(Str(l, "text"));
      }
    }
    for (const auto& h : Arr(e, "conflict_hunks")) HunkFromJson(h, entry->add_conflict_hunks());
  }
  for (const auto& c : Arr(j, "conflicted_entries")) {
    auto* entry = out->add_conflicted_entries();
    entry->set_path(Str(c, "path"));
    for (const auto& h : Arr(c, "hunks")) HunkFromJson(h, entry->add_hunks());
    entry->set_size_bytes(Int(c, "size_bytes"));
    OptStr(c, "omitted_reason", [&](std::string v) { entry->set_omitted_reason(v); });
  }
}

void FromJson(const json& j, v1::MergeResult* out) {
  out->set_merge_type(Str(j, "merge_type"));
  out->set_is_conflicted(Bool(j, "is_conflicted"));
  out->set_commit_oid(Str(j, "commit_oid"));
  out->set_change_id(Str(j, "change_id"));
  out->set_target(Str(j, "target"));
  out->set_source(Str(j, "source"));
  out->set_source_deleted(Bool(j, "source_deleted"));
}

void FromJson(const json& j, v1::ApiKey* out) {
  out->set_id(Str(j, "id"));
  OptStr(j, "name", [&](std::string v) { out->set_name(v); });
  for (const auto& s : Arr(j, "scopes")) out->add_scopes(s.get<std::string>());
  if (j.contains("repo_ids") && j["repo_ids"].is_array()) {
    auto* ids = out->mutable_repo_ids();
    for (const auto& id : j["repo_ids"]) ids->add_values(id.get<std::string>());
  }
  if (j.contains("metadata") && j["metadata"].is_object()) JsonToStruct(j["metadata"], out->mutable_metadata());
  StrMap(j, "tags", out->mutable_tags());
  OptStr(j, "last_used_at", [&](std::string v) { out->set_last_used_at(v); });
  OptStr(j, "expires_at", [&](std::string v) { out->set_expires_at(v); });
  OptStr(j, "revoked_at", [&](std::string v) { out->set_revoked_at(v); });
  out->set_created_at(Str(j, "created_at"));
  out->set_key(Str(j, "key"));
}

void FromJson(const json& j, v1::WebhookTarget* out) {
  out->set_id(Str(j, "id"));
  OptStr(j, "name", [&](std::string v) { out->set_name(v); });
  out->set_url(Str(j, "url"));
  for (const auto& e : Arr(j, "events")) out->add_events(e.get<std::string>());
  if (j.contains("repo_ids") && j["repo_ids"].is_array()) {
    auto* ids = out->mutable_repo_ids();
    for (const auto& id : j["repo_ids"]) ids->add_values(id.get<std::string>());
  }
  out->set_created_at(Str(j, "created_at"));
  out->set_updated_at(Str(j, "updated_at"));
  out->set_secret(Str(j, "secret"));
}

void FromJson(const json& j, v1::WebhookEvent* out) {
  out->set_id(Str(j, "id"));
  out->set_type(Str(j, "type"));
  out->set_occurred_at(Str(j, "occurred_at"));
  if (j.contains("organization") && j["organization"].is_object()) FromJson(j["organization"], out->mutable_organization());
  if (j.contains("repository") && j["repository"].is_object()) {
    auto* r = out->mutable_repository();
    r->set_id(Str(j["repository"], "id"));
    r->set_name(Str(j["repository"], "name"));
    r->set_url(Str(j["repository"], "url"));
  }
  if (j.contains("data") && j["data"].is_object()) JsonToStruct(j["data"], out->mutable_data());
}

void FromJson(const json& j, dv1::ListReposResponse* out) {
  for (const auto& item : Arr(j, "repos")) FromJson(item, out->add_repos());
  OptStr(j, "next_cursor", [&](std::string v) { out->set_next_cursor(v); });
  out->set_has_more(Bool(j, "has_more"));
}
void FromJson(const json& j, dv1::ListBookmarksResponse* out) {
  for (const auto& item : Arr(j, "bookmarks")) FromJson(item, out->add_bookmarks());
  OptStr(j, "next_cursor", [&](std::string v) { out->set_next_cursor(v); });
  out->set_has_more(Bool(j, "has_more"));
}
void FromJson(const json& j, dv1::ListChangesResponse* out) {
  for (const auto& item : Arr(j, "changes")) FromJson(item, out->add_changes());
  OptStr(j, "next_cursor", [&](std::string v) { out->set_next_cursor(v); });
  out->set_has_more(Bool(j, "has_more"));
}
void FromJson(const json& j, dv1::ListApiKeysResponse* out) {
  for (const auto& item : Arr(j, "api_keys")) FromJson(item, out->add_api_keys());
  OptStr(j, "next_cursor", [&](std::string v) { out->set_next_cursor(v); });
  out->set_has_more(Bool(j, "has_more"));
}
void FromJson(const json& j, dv1::ListWebhookTargetsResponse* out) {
  for (const auto& item : Arr(j, "webhook_targets")) FromJson(item, out->add_webhook_targets());
  OptStr(j, "next_cursor", [&](std::string v) { out->set_next_cursor(v); });
  out->set_has_more(Bool(j, "has_more"));
}
void FromJson(const json& j, dv1::SuccessResponse* out) { out->set_success(Bool(j, "success")); }
void FromJson(const json& j, dv1::BulkUpdateRepoTagsResponse* out) { out->set_updated(Int(j, "updated")); }
void FromJson(const json& j, dv1::UpdateApiKeyResponse* out) { StrMap(j, "tags", out->mutable_tags()); }

bool IsWebhookEventType(std::string_view type) {
  static const char* kTypes[] = {"repo.created",     "repo.updated",     "repo.deleted",    "bookmark.created",
                                 "bookmark.deleted", "bookmark.moved",   "bookmark.merged", "change.created",
                                 "change.evolved",   "push",             "sync.queued",     "sync.in_progress",
                                 "sync.completed",   "sync.failed"};
  for (const char* t : kTypes) {
    if (type == t) return true;
  }
  return false;
}

absl::Status VerifyWebhook(std::string_view secret, std::string_view header, std::string_view body, int64_t now,
                           v1::WebhookEvent* out) {
  if (auto st = VerifyWebhookSignature(secret, header, body, now); !st.ok()) return st;
  auto fail = [](std::string_view why) {
    return LocalError(absl::StatusCode::kUnauthenticated, "WEBHOOK_VERIFICATION_FAILED", why);
  };
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return fail("Could not parse webhook payload as JSON");
  for (const char* key : {"id", "type", "occurred_at"}) {
    if (!j.contains(key) || !j[key].is_string()) return fail(std::string("payload field '") + key + "' must be a string");
  }
  if (!IsWebhookEventType(j["type"].get<std::string>())) return fail("unknown event type '" + j["type"].get<std::string>() + "'");
  if (!j.contains("organization") || !j["organization"].is_object()) return fail("payload field 'organization' must be an object");
  if (j.contains("repository") && !j["repository"].is_null() && !j["repository"].is_object())
    return fail("payload field 'repository' must be an object or null");
  if (!j.contains("data") || !j["data"].is_object()) return fail("payload field 'data' must be an object");
  FromJson(j, out);
  return absl::OkStatus();
}

void JsonToStruct(const json& j, google::protobuf::Struct* out) {
  if (!j.is_object()) return;
  for (auto& [k, v] : j.items()) ValueFromJson(v, &(*out->mutable_fields())[k]);
}

json StructToJson(const google::protobuf::Struct& s) {
  json out = json::object();
  for (const auto& [k, v] : s.fields()) out[k] = ValueToJson(v);
  return out;
}

}  // namespace mesa::rest
