// What the filesystem core needs from a Mesa API, independent of transport.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mesa/v1/resources.pb.h"

namespace mesa::daemon::fs {

struct Revision {
  std::string change_id;
  std::string commit_oid;  // empty for the virtual root
  int64_t time_s = 0;      // committer time, used as every entry's mtime
};

// One file operation of an upload (REST `files[]`).
struct UploadOp {
  bool remove = false;
  std::string path;
  std::string content;  // raw bytes (upserts)
  bool executable = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // `bookmark` empty: the repo's default bookmark.
  virtual absl::StatusOr<Revision> ResolveBookmark(const std::string& repo, const std::string& bookmark) = 0;
  virtual absl::StatusOr<Revision> ResolveChange(const std::string& repo, const std::string& change_id) = 0;
  // The directory `path` ("" = root) at `change_id`, `depth` levels deep (flattened).
  virtual absl::StatusOr<mesa::v1::Content> ListDir(const std::string& repo, const std::string& change_id,
                                                    const std::string& path, int depth) = 0;
  // The raw bytes of the file at `path`, streamed into `sink`.
  virtual absl::Status FetchFile(const std::string& repo, const std::string& change_id, const std::string& path,
                                 const std::function<bool(const char*, size_t)>& sink) = 0;
  // A new change on top of `base_change_id`.
  virtual absl::StatusOr<Revision> CreateChange(const std::string& repo, const std::string& base_change_id,
                                                const std::string& message) = 0;
  // Applies `ops` to the change; fails with a 409 when it is no longer at `base_commit_oid`.
  virtual absl::StatusOr<Revision> UpdateChange(const std::string& repo, const std::string& change_id,
                                                const std::string& base_commit_oid,
                                                const std::vector<UploadOp>& ops) = 0;
  // Whether `path` exists at the change's current commit.
  virtual absl::StatusOr<bool> PathExists(const std::string& repo, const std::string& change_id,
                                          const std::string& path) = 0;
};

}  // namespace mesa::daemon::fs
