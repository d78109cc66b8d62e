// Reading REST request bodies and queries: every problem becomes a 400 with field details,
// collected so that one response names all of them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/store/types.h"

namespace mesa::server::api {

absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& body);

class FieldReader {
 public:
  explicit FieldReader(const nlohmann::json& object, std::string prefix = "")
      : obj_(object), prefix_(std::move(prefix)) {}

  bool Has(const std::string& key) const { return obj_.contains(key); }
  bool IsNull(const std::string& key) const { return Has(key) && obj_.at(key).is_null(); }
  const nlohmann::json& Raw(const std::string& key) const { return obj_.at(key); }

  std::optional<std::string> OptString(const std::string& key, size_t min_len = 0, size_t max_len = 1 << 20);
  std::string ReqString(const std::string& key, size_t min_len = 1, size_t max_len = 1 << 20);
  std::optional<bool> OptBool(const std::string& key);
  std::optional<int64_t> OptInt(const std::string& key, int64_t min, int64_t max);
  std::optional<std::vector<std::string>> OptStringArray(const std::string& key, size_t min_items = 0);
  std::optional<nlohmann::json> OptObject(const std::string& key);  // nullopt when absent or null

  void Fail(const std::string& key, const std::string& message);
  std::string Field(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  absl::Status status() const;

 private:
  friend class FieldErrors;
  const nlohmann::json& obj_;
  std::string prefix_;
  std::vector<std::pair<std::string, std::string>> errors_;
};

// Builds the 400 response from collected (field, message) pairs.
absl::Status FieldErrors(const std::vector<std::pair<std::string, std::string>>& errors);

absl::StatusOr<std::vector<FileOp>> ParseFileOps(const nlohmann::json& files);
absl::StatusOr<std::vector<Resolution>> ParseResolutions(const nlohmann::json& resolutions);
absl::StatusOr<std::optional<Signature>> ParseSignature(FieldReader& r, const std::string& key);

// `limit` query parameter: 1..100, default 50.
absl::StatusOr<int> ParseLimit(const std::optional<std::string>& text);

}  // namespace mesa::server::api
