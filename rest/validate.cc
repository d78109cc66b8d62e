#include "rest/validate.h"

#include <cctype>

#include "rest/api_error.h"

namespace mesa::rest {

bool IsValidCommitOid(std::string_view text) {
  if (text.size() != 40) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsValidRepoName(std::string_view name) {
  if (name.empty() || name.size() > kMaxRepoNameLength || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return !name.ends_with(".git");
}

bool IsValidBookmarkName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "@") return false;
  if (name.front() == '/' || name.back() == '/' || name.back() == '.') return false;
  if (name.find("..") != std::string_view::npos || name.find("//") != std::string_view::npos ||
      name.find("@{") != std::string_view::npos)
    return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\')
      return false;
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view comp = name.substr(start, end - start);
    if (comp.empty() || comp.front() == '.' || comp.ends_with(".lock")) return false;
    start = end + 1;
  }
  return true;
}

bool IsValidOrgSlug(std::string_view slug) {
  if (slug.empty() || slug.size() > 64 || slug.front() == '-' || slug.back() == '-') return false;
  for (char c : slug) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

absl::StatusOr<std::string> ValidateRepoPath(std::string_view path, std::string_view field) {
  if (path.empty()) return FieldError(field, "path must not be empty");
  if (path.size() > kMaxPathLength) return FieldError(field, "path is too long");
  if (path.front() == '/') return FieldError(field, "path must be relative (no leading '/')");
  if (path.back() == '/') path.remove_suffix(1);
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) return FieldError(field, "path has an empty segment");
    if (comp == "." || comp == "..") return FieldError(field, "path must not contain '.' or '..'");
    if (comp.size() == 4 && std::tolower(static_cast<unsigned char>(comp[0])) == '.' &&
        std::tolower(static_cast<unsigned char>(comp[1])) == 'g' &&
        std::tolower(static_cast<unsigned char>(comp[2])) == 'i' &&
        std::tolower(static_cast<unsigned char>(comp[3])) == 't')
      return FieldError(field, "path must not contain a '.git' segment");
    if (comp.size() > 255) return FieldError(field, "path segment is too long");
    for (char c : comp) {
      if (static_cast<unsigned char>(c) < 0x20) return FieldError(field, "path has a control character");
    }
    start = end + 1;
  }
  return std::string(path);
}

absl::StatusOr<std::string> NormalizeReadPath(std::string_view path, std::string_view field) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return std::string();
  return ValidateRepoPath(path, field);
}

}  // namespace mesa::rest
