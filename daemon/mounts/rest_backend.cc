#include "daemon/mounts/rest_backend.h"

#include "daemon/status_macros.h"
#include "rest/change_id.h"
#include "rest/codec.h"
#include "rest/time_format.h"

namespace mesa::daemon {

absl::StatusOr<nlohmann::json> RestBackend::Json(rest::RestRequest req) {
  req.timeout_ms = timeout_ms_;
  return session_->CallJson(req);
}

absl::StatusOr<fs::Revision> RestBackend::ResolveChange(const std::string& repo, const std::string& change_id) {
  if (change_id == rest::kVirtualRootChangeId) return fs::Revision{change_id, "", 0};
  MESA_ASSIGN_OR_RETURN(nlohmann::json j, Json(rest::GetChangeCall(org_, repo, change_id)));
  mesa::v1::Change change;
  rest::FromJson(j, &change);
  fs::Revision rev{change.id(), change.current_commit_oid(), 0};
  if (auto t = rest::ParseRfc3339(change.committer().date())) rev.time_s = t->unix_seconds;
  return rev;
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
  req.stall_timeout_ms = timeout_ms_;
  auto resp = session_->Call(req, sink);
  return resp.status();
}

}  // namespace mesa::daemon
