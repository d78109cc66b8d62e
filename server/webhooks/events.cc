#include "server/webhooks/events.h"

#include "rest/change_id.h"
#include "rest/encoding.h"
#include "rest/time_format.h"

namespace mesa::server::webhooks {
namespace {

nlohmann::json Author(const Signature& s) {
  return {{"name", s.name}, {"email", s.email}, {"date", rest::FormatRfc3339Seconds(s.time_s, s.offset_minutes)}};
}

}  // namespace

bool IsEventType(std::string_view type) {
  for (auto t : kEventTypes) {
    if (t == type) return true;
  }
  return false;
}

nlohmann::json RepoInfo(const Repo& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"default_bookmark", r.default_bookmark},
          {"head_change_id", r.head_change_id.empty() ? std::string(rest::kVirtualRootChangeId) : r.head_change_id},
          {"created_at", rest::FormatRfc3339Millis(r.created_at_ms)},
          {"tags", r.tags.is_object() ? r.tags : nlohmann::json::object()}};
}

nlohmann::json RepoSnapshot(const Repo& r) {
  return {{"name", r.name},
          {"default_bookmark", r.default_bookmark},
          {"tags", r.tags.is_object() ? r.tags : nlohmann::json::object()}};
}

nlohmann::json BookmarkInfo(const std::string& name, bool is_default, const std::string& change_id,
                            const std::string& commit_oid) {
  return {{"name", name},
          {"is_default", is_default},
          {"change_id", change_id},
          {"commit_oid", commit_oid.empty() ? std::string(kNullCommitOid) : commit_oid}};
}

nlohmann::json ChangeInfo(const Change& c) {
  return {{"id", c.id},
          {"current_commit_oid", c.commit_oid},
          {"message", c.message},
          {"author", Author(c.author)},
          {"committer", Author(c.committer)},
          {"parents", c.parents},
          {"created_at", rest::FormatRfc3339Millis(c.created_at_ms)},
          {"updated_at", rest::FormatRfc3339Millis(c.updated_at_ms)}};
}

std::optional<nlohmann::json> PushPayload(const std::vector<RefUpdate>& updates) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& u : updates) {
    if (u.before == u.after) continue;
    std::string action = u.before.empty() ? "created" : u.after.empty() ? "deleted" : "updated";
    list.push_back({{"ref", "refs/heads/" + u.bookmark},
                    {"bookmark", u.bookmark},
                    {"before", u.before.empty() ? nlohmann::json(nullptr) : nlohmann::json(u.before)},
                    {"after", u.after.empty() ? nlohmann::json(nullptr) : nlohmann::json(u.after)},
                    {"action", action}});
  }
  if (list.empty()) return std::nullopt;
  // Updates made through the REST API involve no git-receive-pack reconciliation.
  return nlohmann::json{{"updates", std::move(list)},
                        {"reconciliation",
                         {{"reconciled_commit_count", 0},
                          {"touched_change_count", 0},
                          {"changes_created_count", 0},
                          {"evolog_inserted_count", 0},
                          {"invalid_change_id_header_count", 0},
                          {"dirty_change_skip_count", 0}}}};
}

nlohmann::json Envelope(const std::string& event_id, const std::string& type, int64_t occurred_at_ms,
                        const Org& org, const Repo* repo, const std::string& public_url, nlohmann::json data) {
  nlohmann::json repository = nullptr;
  if (repo) {
    repository = {{"id", repo->id},
                  {"name", repo->name},
                  {"url", public_url + "/v1/" + org.slug + "/" + repo->name}};
  }
  return {{"id", event_id},
          {"type", type},
          {"occurred_at", rest::FormatRfc3339Millis(occurred_at_ms)},
          {"organization", {{"id", org.id}, {"slug", org.slug}, {"name", org.name}}},
          {"repository", std::move(repository)},
          {"data", std::move(data)}};
}

std::string NewEventId() { return "evt_" + rest::RandomAlphanumeric(24); }

}  // namespace mesa::server::webhooks
