#include "server/api/request.h"

#include "absl/strings/numbers.h"
#include "rest/api_error.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "rest/validate.h"

namespace mesa::server::api {

absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& body) {
  if (body.empty()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return rest::ApiError(400, "INVALID_JSON", "request body is not valid JSON");
  if (!j.is_object()) return rest::ApiError(400, "INVALID_JSON", "request body must be a JSON object");
  return j;
}

void FieldReader::Fail(const std::string& key, const std::string& message) {
  errors_.emplace_back(Field(key), message);
}

std::optional<std::string> FieldReader::OptString(const std::string& key, size_t min_len, size_t max_len) {
  if (!Has(key) || obj_.at(key).is_null()) return std::nullopt;
  const auto& v = obj_.at(key);
  if (!v.is_string()) {
    Fail(key, "must be a string");
    return std::nullopt;
  }
  std::string s = v.get<std::string>();
  if (s.size() < min_len || s.size() > max_len) {
    Fail(key, "must have " + std::to_string(min_len) + ".." + std::to_string(max_len) + " characters");
    return std::nullopt;
  }
  return s;
}

std::string FieldReader::ReqString(const std::string& key, size_t min_len, size_t max_len) {
  if (!Has(key) || obj_.at(key).is_null()) {
    Fail(key, "is required");
    return {};
  }
  return OptString(key, min_len, max_len).value_or("");
}

std::optional<bool> FieldReader::OptBool(const std::string& key) {
  if (!Has(key) || obj_.at(key).is_null()) return std::nullopt;
  if (!obj_.at(key).is_boolean()) {
    Fail(key, "must be a boolean");
    return std::nullopt;
  }
  return obj_.at(key).get<bool>();
}

std::optional<int64_t> FieldReader::OptInt(const std::string& key, int64_t min, int64_t max) {
  if (!Has(key) || obj_.at(key).is_null()) return std::nullopt;
  const auto& v = obj_.at(key);
  if (!v.is_number_integer()) {
    Fail(key, "must be an integer");
    return std::nullopt;
  }
  int64_t n = v.get<int64_t>();
  if (n < min || n > max) {
    Fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return n;
}

std::optional<std::vector<std::string>> FieldReader::OptStringArray(const std::string& key, size_t min_items) {
  if (!Has(key) || obj_.at(key).is_null()) return std::nullopt;
  const auto& v = obj_.at(key);
  if (!v.is_array()) {
    Fail(key, "must be an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      Fail(key, "must be an array of non-empty strings");
      return std::nullopt;
    }
    out.push_back(item.get<std::string>());
  }
  if (out.size() < min_items) {
    Fail(key, "must have at least " + std::to_string(min_items) + " item(s)");
    return std::nullopt;
  }
  return out;
}

std::optional<nlohmann::json> FieldReader::OptObject(const std::string& key) {
  if (!Has(key) || obj_.at(key).is_null()) return std::nullopt;
  if (!obj_.at(key).is_object()) {
    Fail(key, "must be an object");
    return std::nullopt;
  }
  return obj_.at(key);
}

absl::Status FieldErrors(const std::vector<std::pair<std::string, std::string>>& errors) {
  if (errors.empty()) return absl::OkStatus();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [field, message] : errors) list.push_back({{"field", field}, {"message", message}});
  std::string summary = errors.front().first + ": " + errors.front().second;
  if (errors.size() > 1) summary += " (and " + std::to_string(errors.size() - 1) + " more)";
  return rest::ApiError(400, "VALIDATION_ERROR", summary, {{"errors", list}});
}

absl::Status FieldReader::status() const { return FieldErrors(errors_); }

absl::StatusOr<std::optional<Signature>> ParseSignature(FieldReader& r, const std::string& key) {
  auto obj = r.OptObject(key);
  if (!obj) return std::optional<Signature>();
  FieldReader sr(*obj, r.Field(key));
  Signature sig;
  sig.name = sr.ReqString("name", 1, 256);
  sig.email = sr.ReqString("email", 1, 256);
  auto date = sr.OptString("date");
  if (date) {
    auto parsed = rest::ParseRfc3339(*date);
    if (!parsed) sr.Fail("date", "must be an RFC 3339 date-time");
    else {
      sig.time_s = parsed->unix_seconds;
      sig.offset_minutes = parsed->offset_minutes;
    }
  } else {
    sig.time_s = rest::NowUnixMillis() / 1000;
  }
  for (char c : sig.name + sig.email) {
    if (c == '<' || c == '>' || c == '\n' || c == '\0') {
      sr.Fail("name", "name and email must not contain '<', '>' or newlines");
      break;
    }
  }
  if (auto st = sr.status(); !st.ok()) return st;
  return std::optional<Signature>(sig);
}

absl::StatusOr<std::vector<FileOp>> ParseFileOps(const nlohmann::json& files) {
  std::vector<std::pair<std::string, std::string>> errors;
  std::vector<FileOp> ops;
  if (!files.is_array()) return FieldErrors({{"files", "must be an array"}});
  for (size_t i = 0; i < files.size(); ++i) {
    std::string prefix = "files[" + std::to_string(i) + "]";
    if (!files[i].is_object()) {
      errors.emplace_back(prefix, "must be an object");
      continue;
    }
    FieldReader r(files[i], prefix);
    FileOp op;
    std::string path = r.ReqString("path");
    auto action = r.OptString("action");
    if (action && *action != "upsert" && *action != "delete") r.Fail("action", "must be upsert or delete");
    op.kind = action == "delete" ? FileOp::Kind::kDelete : FileOp::Kind::kUpsert;
    if (!path.empty()) {
      auto valid = rest::ValidateRepoPath(path, r.Field("path"));
      if (!valid.ok()) r.Fail("path", std::string(valid.status().message()));
      else op.path = *valid;
    }
    if (op.kind == FileOp::Kind::kUpsert) {
      auto encoding = r.OptString("encoding");
      if (encoding && *encoding != "base64") r.Fail("encoding", "must be base64");
      std::string content = r.Has("content") ? r.ReqString("content", 0, std::string::npos) : (r.Fail("content", "is required"), "");
      auto decoded = rest::Base64Decode(content);
      if (!decoded) r.Fail("content", "must be valid base64");
      else op.content = std::move(*decoded);
      auto mode = r.OptString("mode");
      if (mode && *mode != "100644" && *mode != "100755") r.Fail("mode", "must be 100644 or 100755");
      op.mode = mode == "100755" ? 0100755 : 0100644;
    }
    auto st = r.status();
    if (!st.ok()) {
      auto info = rest::ErrorInfoFromStatus(st);
      for (const auto& e : info.details["errors"]) errors.emplace_back(e["field"], e["message"]);
      continue;
    }
    ops.push_back(std::move(op));
  }
  if (auto st = FieldErrors(errors); !st.ok()) return st;
  return ops;
}

absl::StatusOr<std::vector<Resolution>> ParseResolutions(const nlohmann::json& list) {
  if (!list.is_array()) return FieldErrors({{"resolutions", "must be an array"}});
  std::vector<Resolution> out;
  std::vector<std::pair<std::string, std::string>> errors;
  auto take_or_content = [&](FieldReader& r, std::optional<std::string>& content,
                             std::optional<std::string>& take) {
    auto c = r.OptString("content", 0, std::string::npos);
    auto t = r.OptString("take");
    auto encoding = r.OptString("encoding");
    if (encoding && *encoding != "base64") r.Fail("encoding", "must be base64");
    if (c.has_value() == t.has_value()) {
      r.Fail("content", "exactly one of content or take is required");
      return;
    }
    if (t && *t != "target" && *t != "source") r.Fail("take", "must be target or source");
    if (c) {
      auto decoded = rest::Base64Decode(*c);
      if (!decoded) r.Fail("content", "must be valid base64");
      else content = std::move(*decoded);
    }
    take = t;
  };
  for (size_t i = 0; i < list.size(); ++i) {
    std::string prefix = "resolutions[" + std::to_string(i) + "]";
    if (!list[i].is_object()) {
      errors.emplace_back(prefix, "must be an object");
      continue;
    }
    FieldReader r(list[i], prefix);
    Resolution res;
    std::string path = r.ReqString("path");
    auto valid = rest::ValidateRepoPath(path, r.Field("path"));
    if (!path.empty() && !valid.ok()) r.Fail("path", std::string(valid.status().message()));
    if (valid.ok()) res.path = *valid;
    if (r.Has("hunks")) {
      const auto& hunks = r.Raw("hunks");
      if (!hunks.is_array() || hunks.empty()) r.Fail("hunks", "must be a non-empty array");
      else {
        for (size_t h = 0; h < hunks.size(); ++h) {
          if (!hunks[h].is_object()) {
            r.Fail("hunks[" + std::to_string(h) + "]", "must be an object");
            continue;
          }
          FieldReader hr(hunks[h], r.Field("hunks[" + std::to_string(h) + "]"));
          Resolution::Hunk hunk;
          hunk.hunk_id = hr.ReqString("hunk_id");
          take_or_content(hr, hunk.content, hunk.take);
          if (auto st = hr.status(); !st.ok()) r.Fail("hunks", std::string(st.message()));
          res.hunks.push_back(std::move(hunk));
        }
      }
    } else {
      take_or_content(r, res.content, res.take);
    }
    if (auto st = r.status(); !st.ok()) {
      auto info = rest::ErrorInfoFromStatus(st);
      for (const auto& e : info.details["errors"]) errors.emplace_back(e["field"], e["message"]);
      continue;
    }
    out.push_back(std::move(res));
  }
  if (auto st = FieldErrors(errors); !st.ok()) return st;
  return out;
}

absl::StatusOr<int> ParseLimit(const std::optional<std::string>& text) {
  if (!text) return 50;
  int limit = 0;
  if (!absl::SimpleAtoi(*text, &limit) || limit < 1 || limit > 100)
    return rest::FieldError("limit", "must be an integer between 1 and 100");
  return limit;
}

}  // namespace mesa::server::api
