#include "daemon/mounts/rest_backend.h"

#include "daemon/status_macros.h"
#include "rest/api_error.h"
#include "rest/change_id.h"
#include "rest/codec.h"
#include "rest/time_format.h"

namespace mesa::daemon {

absl::StatusOr<nlohmann::json> RestBackend::Json(rest::RestRequest req) {
  req.timeout_ms = timeout_ms_.load();
  return session_->CallJson(req);
}

namespace {

fs::Revision RevisionOf(const nlohmann::json& j) {
  mesa::v1::Change change;
  rest::FromJson(j, &change);
  fs::Revision rev{change.id(), change.current_commit_oid(), 0};
  if (auto t = rest::ParseRfc3339(change.committer().date())) rev.time_s = t->unix_seconds;
  return rev;
}

}  // namespace

absl::StatusOr<fs::Revision> RestBackend::CreateChange(const std::string& repo, const std::string& base_change_id,
                                                       const std::string& message) {
  mesa::daemon::v1::CreateChangeRequest r;
  r.set_repo(repo);
  r.set_base_change_id(base_change_id);
  r.set_message(message);
  MESA_ASSIGN_OR_RETURN(nlohmann::json j, Json(rest::CreateChangeCall(org_, r)));
  return RevisionOf(j);
}

absl::StatusOr<fs::Revision> RestBackend::UpdateChange(const std::string& repo, const std::string& change_id,
                                                       const std::string& base_commit_oid,
                                                       const std::vector<fs::UploadOp>& ops) {
  mesa::daemon::v1::UpdateChangeRequest r;
  r.set_repo(repo);
  r.set_change_id(change_id);
  if (!base_commit_oid.empty()) r.set_base_commit_oid(base_commit_oid);
  for (const auto& op : ops) {
    auto* f = r.add_files();
    f->set_path(op.path);
    if (op.remove) {
      f->set_action("delete");
    } else {
      f->set_content(op.content);
      f->set_mode(op.executable ? "100755" : "100644");
    }
  }
  rest::RestRequest req = rest::UpdateChangeCall(org_, r);
  // Uploads can be large: bound silence, not the whole transfer.
  req.stall_timeout_ms = timeout_ms_.load();
  MESA_ASSIGN_OR_RETURN(RestResponse resp, session_->Call(req));
  MESA_ASSIGN_OR_RETURN(nlohmann::json j, RestClient::Json(resp));
  return RevisionOf(j);
}

absl::StatusOr<bool> RestBackend::PathExists(const std::string& repo, const std::string& change_id,
                                             const std::string& path) {
  // List the parent (a file's own content answer would carry all its bytes).
  size_t slash = path.rfind('/');
  std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  auto listing = ListDir(repo, change_id, parent, 1);
  if (!listing.ok()) {
    if (rest::ErrorInfoFromStatus(listing.status()).http_status == 404) return false;
    return listing.status();
  }
  for (const auto& e : listing->entries()) {
    if (e.name() == name) return true;
  }
  return false;
}

absl::StatusOr<fs::Revision> RestBackend::ResolveChange(const std::string& repo, const std::string& change_id) {
  if (change_id == rest::kVirtualRootChangeId) return fs::Revision{change_id, "", 0};
  MESA_ASSIGN_OR_RETURN(nlohmann::json j, Json(rest::GetChangeCall(org_, repo, change_id)));
  return RevisionOf(j);
}

absl::StatusOr<fs::Revision> RestBackend::ResolveBookmark(const std::string& repo, const std::string& bookmark) {
  std::string change_id;
  if (bookmark.empty()) {
    MESA_ASSIGN_OR_RETURN(nlohmann::json j, Json(rest::GetRepoCall(org_, repo)));
    change_id = j.value("head_change_id", "");
  } else {
    MESA_ASSIGN_OR_RETURN(nlohmann::json j, Json(rest::GetBookmarkCall(org_, repo, bookmark)));
    change_id = j.value("change_id", "");
  }
  return ResolveChange(repo, change_id);
}

absl::StatusOr<mesa::v1::Content> RestBackend::ListDir(const std::string& repo, const std::string& change_id,
                                                       const std::string& path, int depth) {
  mesa::daemon::v1::GetContentRequest r;
  r.set_repo(repo);
  r.set_change_id(change_id);
  r.set_path(path);
  r.set_depth(depth);
  MESA_ASSIGN_OR_RETURN(nlohmann::json j, Json(rest::GetContentCall(org_, r)));
  mesa::v1::Content content;
  rest::FromJson(j, &content);
  return content;
}

absl::Status RestBackend::FetchFile(const std::string& repo, const std::string& change_id, const std::string& path,
                                    const std::function<bool(const char*, size_t)>& sink) {
  mesa::daemon::v1::GetContentRequest r;
  r.set_repo(repo);
  r.set_change_id(change_id);
  r.set_path(path);
  r.set_raw(true);
  rest::RestRequest req = rest::GetContentCall(org_, r);
  req.stall_timeout_ms = timeout_ms_.load();
  auto resp = session_->Call(req, sink);
  return resp.status();
}

}  // namespace mesa::daemon
