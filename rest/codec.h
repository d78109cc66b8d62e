// The REST codec: gRPC requests of mesad -> Mesa REST v1 requests, and REST JSON -> the
// mesa.v1 proto resources. Pure functions, no I/O; exact to the 0.38.0 wire contract
// (nulls, unions, base64).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/struct.pb.h"
#include "mesa/daemon/v1/api.pb.h"
#include "mesa/v1/resources.pb.h"
#include "nlohmann/json.hpp"

namespace mesa::rest {

struct RestRequest {
  std::string method = "GET";
  std::string path;  // relative to the API base (".../v1"), segments percent-encoded
  std::vector<std::pair<std::string, std::string>> query;
  std::optional<nlohmann::json> body;
  std::string accept;  // empty: application/json
  int timeout_ms = 0;        // whole call, retries included; 0: the client's default
  int stall_timeout_ms = 0;  // >0: no total limit, but abort when no byte arrives for this long

  // GET and DELETE may be repeated safely after a failure.
  bool Idempotent() const { return method == "GET" || method == "DELETE" || method == "HEAD"; }
};

// encodeURIComponent: every byte but [A-Za-z0-9-_.!~*'()] is %XX.
std::string EncodeSegment(std::string_view segment);

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

// ---- requests (org already resolved) ----
RestRequest WhoamiCall();
RestRequest GetOrgCall(const std::string& org);
RestRequest ListReposCall(const std::string& org, const dv1::ListReposRequest& r);
RestRequest CreateRepoCall(const std::string& org, const dv1::CreateRepoRequest& r);
RestRequest GetRepoCall(const std::string& org, const std::string& repo);
RestRequest UpdateRepoCall(const std::string& org, const dv1::UpdateRepoRequest& r);
RestRequest DeleteRepoCall(const std::string& org, const std::string& repo);
RestRequest BulkUpdateRepoTagsCall(const std::string& org, const dv1::BulkUpdateRepoTagsRequest& r);
RestRequest ListBookmarksCall(const std::string& org, const dv1::ListBookmarksRequest& r);
RestRequest CreateBookmarkCall(const std::string& org, const dv1::CreateBookmarkRequest& r);
RestRequest GetBookmarkCall(const std::string& org, const std::string& repo, const std::string& name);
RestRequest MoveBookmarkCall(const std::string& org, const dv1::MoveBookmarkRequest& r);
RestRequest DeleteBookmarkCall(const std::string& org, const std::string& repo, const std::string& name);
RestRequest MergeBookmarksCall(const std::string& org, const dv1::MergeBookmarksRequest& r);
RestRequest ListChangesCall(const std::string& org, const dv1::ListChangesRequest& r);
RestRequest CreateChangeCall(const std::string& org, const dv1::CreateChangeRequest& r);
RestRequest GetChangeCall(const std::string& org, const std::string& repo, const std::string& change_id);
RestRequest UpdateChangeCall(const std::string& org, const dv1::UpdateChangeRequest& r);
RestRequest GetContentCall(const std::string& org, const dv1::GetContentRequest& r);
RestRequest GetDiffCall(const std::string& org, const dv1::GetDiffRequest& r);
RestRequest ListApiKeysCall(const std::string& org, const dv1::ListApiKeysRequest& r);
RestRequest CreateApiKeyCall(const std::string& org, const dv1::CreateApiKeyRequest& r);
RestRequest RevokeApiKeyCall(const std::string& org, const std::string& id);
RestRequest UpdateApiKeyCall(const std::string& org, const dv1::UpdateApiKeyRequest& r);
RestRequest ListWebhookTargetsCall(const std::string& org, const dv1::ListWebhookTargetsRequest& r);
RestRequest CreateWebhookTargetCall(const std::string& org, const dv1::CreateWebhookTargetRequest& r);
RestRequest GetWebhookTargetCall(const std::string& org, const std::string& id);
RestRequest UpdateWebhookTargetCall(const std::string& org, const dv1::UpdateWebhookTargetRequest& r);
RestRequest DeleteWebhookTargetCall(const std::string& org, const std::string& id);

// ---- responses ----
void FromJson(const nlohmann::json& j, v1::Org* out);
void FromJson(const nlohmann::json& j, v1::Whoami* out);
void FromJson(const nlohmann::json& j, v1::OrgSummary* out);
void FromJson(const nlohmann::json& j, v1::Repo* out);
void FromJson(const nlohmann::json& j, v1::Bookmark* out);
void FromJson(const nlohmann::json& j, v1::Signature* out);
void FromJson(const nlohmann::json& j, v1::Change* out);
void FromJson(const nlohmann::json& j, v1::Content* out);
void FromJson(const nlohmann::json& j, v1::Diff* out);
void FromJson(const nlohmann::json& j, v1::MergeResult* out);
void FromJson(const nlohmann::json& j, v1::ApiKey* out);
void FromJson(const nlohmann::json& j, v1::WebhookTarget* out);
void FromJson(const nlohmann::json& j, v1::WebhookEvent* out);
void FromJson(const nlohmann::json& j, dv1::ListReposResponse* out);
void FromJson(const nlohmann::json& j, dv1::ListBookmarksResponse* out);
void FromJson(const nlohmann::json& j, dv1::ListChangesResponse* out);
void FromJson(const nlohmann::json& j, dv1::ListApiKeysResponse* out);
void FromJson(const nlohmann::json& j, dv1::ListWebhookTargetsResponse* out);
void FromJson(const nlohmann::json& j, dv1::SuccessResponse* out);
void FromJson(const nlohmann::json& j, dv1::BulkUpdateRepoTagsResponse* out);
void FromJson(const nlohmann::json& j, dv1::UpdateApiKeyResponse* out);

// Verifies a webhook delivery (signature, 300 s tolerance) and parses its envelope; the error
// is UNAUTHENTICATED / WEBHOOK_VERIFICATION_FAILED with the reason.
absl::Status VerifyWebhook(std::string_view secret, std::string_view signature_header, std::string_view body,
                           int64_t now_seconds, v1::WebhookEvent* out);

// The 14 event types of 0.38.0.
bool IsWebhookEventType(std::string_view type);

void JsonToStruct(const nlohmann::json& j, google::protobuf::Struct* out);
nlohmann::json StructToJson(const google::protobuf::Struct& s);

}  // namespace mesa::rest
