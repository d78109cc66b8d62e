// Store types to their exact Mesa REST v1 (0.38.0) JSON shapes, explicit nulls included.
#pragma once

#include "nlohmann/json.hpp"
#include "server/store/store.h"

namespace mesa::server::api {

nlohmann::json RepoJson(const Repo& repo);
nlohmann::json BookmarkJson(const Bookmark& bookmark);
nlohmann::json SignatureJson(const Signature& sig);
nlohmann::json ChangeJson(const Change& change, bool with_details);
nlohmann::json ContentJson(const Content& content);
nlohmann::json DiffJson(const Diff& diff, ConflictsMode mode);
nlohmann::json MergeJson(const MergeResult& result);
nlohmann::json ApiKeyJson(const ApiKey& key);
nlohmann::json OrgJson(const Org& org);
nlohmann::json WebhookTargetJson(const WebhookTarget& target);  // never the secret

template <typename T, typename F>
nlohmann::json PageJson(const Page<T>& page, const char* field, F&& render) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& item : page.items) items.push_back(render(item));
  return {{"next_cursor", page.next_cursor ? nlohmann::json(*page.next_cursor) : nlohmann::json(nullptr)},
          {"has_more", page.next_cursor.has_value()},
          {field, std::move(items)}};
}

}  // namespace mesa::server::api
