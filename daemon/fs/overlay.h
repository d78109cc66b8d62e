// Local, durable storage of a mount's unconfirmed writes: one content file per written file
// (<dir>/<repo>/files/<id>) and a small state file per repo (<dir>/<repo>/state.json) naming
// the working change, the dirty paths and the local-only directories. A write returns once it
// is in these files (the page cache survives a killed process; fsync makes it durable).
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace mesa::daemon::fs {

class OverlayStore {
 public:
  explicit OverlayStore(std::string dir) : dir_(std::move(dir)) {}
  ~OverlayStore();

  absl::Status Init();
  const std::string& dir() const { return dir_; }

  // A new empty content file for `repo`; returns its id.
  absl::StatusOr<std::string> CreateFile(const std::string& repo);
  // An open O_RDWR descriptor of a content file (owned by the store).
  absl::StatusOr<int> Fd(const std::string& repo, const std::string& id);
  void RemoveFile(const std::string& repo, const std::string& id);
  absl::Status SyncFile(const std::string& repo, const std::string& id);

  // Writes the repo's state atomically (temp file + rename; fsync when `durable`) and empties
  // its journal: the snapshot now holds everything the journal said.
  absl::Status SaveState(const std::string& repo, const nlohmann::json& state, bool durable);
  std::optional<nlohmann::json> LoadState(const std::string& repo);
  // Appends one record to the repo's journal (O(1) per mutation, unlike a snapshot).
  absl::Status Append(const std::string& repo, const nlohmann::json& record);
  absl::Status SyncJournal(const std::string& repo);
  // The journal's records since the last snapshot, oldest first.
  std::vector<nlohmann::json> LoadJournal(const std::string& repo);
  // Drops every content file and the state of `repo`.
  void Clear(const std::string& repo);
  // Removes the whole overlay (unmount of a mount with nothing pending).
  void RemoveAll();

 private:
  std::string FilePath(const std::string& repo, const std::string& id) const;

  std::string dir_;
  std::mutex mu_;
  std::map<std::string, int> fds_;  // repo/id -> fd
  std::map<std::string, int> journals_;  // repo -> fd (O_APPEND)
};

}  // namespace mesa::daemon::fs
