// Mesa webhook events as @mesadev/sdk 0.38.0 validates them (dist/webhooks/schemas.js):
//   {id, type, occurred_at, organization{id,slug,name}, repository{id,name,url}|null, data}
// with the per-type `data` payloads built here from store types.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/store/types.h"

namespace mesa::server::webhooks {

inline constexpr std::array<std::string_view, 14> kEventTypes = {
    "repo.created",   "repo.updated",     "repo.deleted",   "bookmark.created", "bookmark.deleted",
    "bookmark.moved", "bookmark.merged",  "change.created", "change.evolved",   "push",
    "sync.queued",    "sync.in_progress", "sync.completed", "sync.failed"};

bool IsEventType(std::string_view type);

// The commit oid rendered for the virtual root (which has no commit).
inline constexpr std::string_view kNullCommitOid = "0000000000000000000000000000000000000000";

nlohmann::json RepoInfo(const Repo& repo);
nlohmann::json RepoSnapshot(const Repo& repo);
// `commit_oid` "" (virtual root) renders as 40 zeros.
nlohmann::json BookmarkInfo(const std::string& name, bool is_default, const std::string& change_id,
                            const std::string& commit_oid);
nlohmann::json ChangeInfo(const Change& change);

// One ref update of a push; "" before/after is null (ref created/deleted).
struct RefUpdate {
  std::string bookmark;
  std::string before;
  std::string after;
};
// nullopt when no update actually changes a ref.
std::optional<nlohmann::json> PushPayload(const std::vector<RefUpdate>& updates);

nlohmann::json Envelope(const std::string& event_id, const std::string& type, int64_t occurred_at_ms,
                        const Org& org, const Repo* repo, const std::string& public_url, nlohmann::json data);

std::string NewEventId();

}  // namespace mesa::server::webhooks
