#include "server/api/render.h"

#include "rest/encoding.h"
#include "rest/time_format.h"

namespace mesa::server::api {
namespace {

nlohmann::json OptMillis(const std::optional<int64_t>& ms) {
  return ms ? nlohmann::json(rest::FormatRfc3339Millis(*ms)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json RepoJson(const Repo& r) {
  nlohmann::json upstream = nullptr;
  if (r.upstream.is_object()) {
    nlohmann::json auth_kind = nullptr;
    if (r.upstream.contains("auth") && r.upstream["auth"].is_object() && r.upstream["auth"].contains("kind"))
      auth_kind = r.upstream["auth"]["kind"];
    upstream = {{"url", r.upstream.value("url", "")}, {"auth_kind", auth_kind}, {"latest_sync", nullptr}};
  }
  return {{"id", r.id},
          {"org", r.org_slug},
          {"name", r.name},
          {"default_bookmark", r.default_bookmark},
          {"head_change_id", r.head_change_id},
          {"upstream", upstream},
          {"created_at", rest::FormatRfc3339Millis(r.created_at_ms)},
          {"tags", r.tags}};
}

nlohmann::json BookmarkJson(const Bookmark& b) {
  return {{"name", b.name}, {"change_id", b.change_id}, {"is_default", b.is_default}};
}

nlohmann::json SignatureJson(const Signature& s) {
  return {{"name", s.name}, {"email", s.email}, {"date", rest::FormatRfc3339Seconds(s.time_s, s.offset_minutes)}};
}

nlohmann::json ChangeJson(const Change& c, bool with_details) {
  nlohmann::json j = {{"id", c.id},
                      {"current_commit_oid", c.commit_oid},
                      {"is_conflicted", c.is_conflicted},
                      {"message", c.message},
                      {"author", SignatureJson(c.author)},
                      {"committer", SignatureJson(c.committer)},
                      {"parents", c.parents},
                      {"created_at", rest::FormatRfc3339Millis(c.created_at_ms)},
                      {"updated_at", rest::FormatRfc3339Millis(c.updated_at_ms)}};
  if (with_details) {
    j["files"] = c.files;
    j["conflicts"] = c.conflicts;
  }
  return j;
}

nlohmann::json ContentJson(const Content& c) {
  if (c.type == "dir") {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : c.entries) {
      nlohmann::json row = {{"type", e.type}, {"name", e.name}, {"path", e.path}, {"sha", e.sha}};
      if (e.type != "dir") {
        row["size"] = e.size;
        row["mode"] = e.mode;
      }
      entries.push_back(std::move(row));
    }
    return {{"type", "dir"},    {"name", c.name},
            {"path", c.path},   {"sha", c.sha},
            {"child_count", c.child_count}, {"entries", std::move(entries)}};
  }
  return {{"type", c.type},
          {"name", c.name},
          {"path", c.path},
          {"sha", c.sha},
          {"is_conflicted", c.is_conflicted},
          {"size", c.size},
          {"encoding", "base64"},
          {"content", rest::Base64Encode(c.data)},
          {"mode", c.mode}};
}

nlohmann::json DiffJson(const Diff& d, ConflictsMode mode) {
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& e : d.entries) {
    nlohmann::json hunks = nullptr;
    if (e.hunks) {
      hunks = nlohmann::json::array();
      for (const auto& h : *e.hunks) {
        nlohmann::json lines = nlohmann::json::array();
        for (const auto& l : h.lines) lines.push_back({{"kind", l.kind}, {"text", l.text}});
        hunks.push_back({{"old_start", h.old_start},
                         {"old_lines", h.old_lines},
                         {"new_start", h.new_start},
                         {"new_lines", h.new_lines},
                         {"lines", std::move(lines)}});
      }
    }
    entries.push_back({{"path", e.path},
                       {"status", e.status},
                       {"old_path", e.old_path ? nlohmann::json(*e.old_path) : nlohmann::json(nullptr)},
                       {"size_bytes", e.size_bytes},
                       {"is_conflicted", false},
                       {"omitted_reason", e.omitted_reason ? nlohmann::json(*e.omitted_reason) : nlohmann::json(nullptr)},
                       {"hunks", std::move(hunks)},
                       {"conflict_hunks", nullptr}});
  }
  nlohmann::json conflicted = nlohmann::json::array();
  for (const auto& c : d.conflicted_entries) {
    nlohmann::json hunks = nlohmann::json::array();
    for (const auto& h : c.hunks) hunks.push_back(ConflictHunkJson(h));
    conflicted.push_back({{"path", c.path},
                          {"hunks", std::move(hunks)},
                          {"size_bytes", c.size_bytes},
                          {"omitted_reason", c.omitted_reason ? nlohmann::json(*c.omitted_reason) : nlohmann::json(nullptr)}});
  }
  (void)mode;
  return {{"base_change_id", d.base_change_id},
          {"head_change_id", d.head_change_id},
          {"stats",
           {{"entries", d.entries.size()},
            {"additions", d.additions},
            {"deletions", d.deletions},
            {"changes", d.additions + d.deletions},
            {"conflicted_entries", d.conflicted_entries.size()},
            {"conflicted_hunks", d.conflicted_hunks}}},
          {"truncated", d.truncated},
          {"entries", std::move(entries)},
          {"conflicted_entries", std::move(conflicted)}};
}

nlohmann::json MergeJson(const MergeResult& m) {
  return {{"merge_type", m.merge_type}, {"is_conflicted", m.is_conflicted}, {"commit_oid", m.commit_oid},
          {"change_id", m.change_id},   {"target", m.target},               {"source", m.source},
          {"source_deleted", m.source_deleted}};
}

nlohmann::json ApiKeyJson(const ApiKey& k) {
  return {{"id", k.id},
          {"name", k.name ? nlohmann::json(*k.name) : nlohmann::json(nullptr)},
          {"scopes", k.scopes},
          {"repo_ids", k.repo_ids ? nlohmann::json(*k.repo_ids) : nlohmann::json(nullptr)},
          {"metadata", nullptr},
          {"tags", k.tags},
          {"last_used_at", OptMillis(k.last_used_at_ms)},
          {"expires_at", OptMillis(k.expires_at_ms)},
          {"revoked_at", OptMillis(k.revoked_at_ms)},
          {"created_at", rest::FormatRfc3339Millis(k.created_at_ms)}};
}

nlohmann::json OrgJson(const Org& o) { return {{"id", o.id}, {"slug", o.slug}, {"name", o.name}}; }

nlohmann::json WebhookTargetJson(const WebhookTarget& t) {
  return {{"id", t.id},
          {"name", t.name ? nlohmann::json(*t.name) : nlohmann::json(nullptr)},
          {"url", t.url},
          {"events", t.events},
          {"repo_ids", t.repo_ids ? nlohmann::json(*t.repo_ids) : nlohmann::json(nullptr)},
          {"created_at", rest::FormatRfc3339Millis(t.created_at_ms)},
          {"updated_at", rest::FormatRfc3339Millis(t.updated_at_ms)}};
}

}  // namespace mesa::server::api
