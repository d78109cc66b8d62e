// fs::Backend over a mesad session: the Mesa REST API with a deadline on every call, so a
// dead backend becomes EIO instead of a hung system call.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "daemon/fs/backend.h"
#include "daemon/session/session_manager.h"

namespace mesa::daemon {

class RestBackend : public fs::Backend {
 public:
  RestBackend(std::shared_ptr<Session> session, std::string org, int timeout_ms)
      : session_(std::move(session)), org_(std::move(org)), timeout_ms_(timeout_ms) {}

  absl::StatusOr<fs::Revision> ResolveBookmark(const std::string& repo, const std::string& bookmark) override;
  absl::StatusOr<fs::Revision> ResolveChange(const std::string& repo, const std::string& change_id) override;
  absl::StatusOr<mesa::v1::Content> ListDir(const std::string& repo, const std::string& change_id,
                                            const std::string& path, int depth) override;
  absl::Status FetchFile(const std::string& repo, const std::string& change_id, const std::string& path,
                         const std::function<bool(const char*, size_t)>& sink) override;

  absl::StatusOr<fs::Revision> CreateChange(const std::string& repo, const std::string& base_change_id,
                                            const std::string& message) override;
  absl::StatusOr<fs::Revision> UpdateChange(const std::string& repo, const std::string& change_id,
                                            const std::string& base_commit_oid,
                                            const std::vector<fs::UploadOp>& ops) override;
  absl::StatusOr<bool> PathExists(const std::string& repo, const std::string& change_id,
                                  const std::string& path) override;

  const std::string& org() const { return org_; }
  // The deadline of later calls (a reload of fs_backend_timeout_ms).
  void SetTimeoutMs(int timeout_ms) { timeout_ms_ = timeout_ms; }
  const std::shared_ptr<Session>& session() const { return session_; }

 private:
  absl::StatusOr<nlohmann::json> Json(rest::RestRequest req);

  std::shared_ptr<Session> session_;
  std::string org_;
  std::atomic<int> timeout_ms_;
};

}  // namespace mesa::daemon
