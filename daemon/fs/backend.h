// What the filesystem core needs from a Mesa API, independent of transport.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "mesa/v1/resources.pb.h"

namespace mesa::daemon::fs {

struct Revision {
  std::string change_id;
  std::string commit_oid;  // empty for the virtual root
  int64_t time_s = 0;      // committer time, used as every entry's mtime
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
};

}  // namespace mesa::daemon::fs
