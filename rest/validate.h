// Input rules of the Mesa REST API shared by producer (server) and consumer (daemon).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace mesa::rest {

inline constexpr size_t kMaxRepoNameLength = 100;
inline constexpr size_t kMaxPathLength = 4096;
inline constexpr size_t kMaxTagKeyLength = 64;
inline constexpr size_t kMaxTagValueLength = 256;

bool IsValidCommitOid(std::string_view text);  // ^[0-9a-f]{40}$

// A repo name is one path segment: 1..100 chars of [A-Za-z0-9._-], not "." or "..".
bool IsValidRepoName(std::string_view name);

// git check-ref-format rules for refs/heads/<name> (so bookmarks may contain '/').
bool IsValidBookmarkName(std::string_view name);

// Org slugs: 1..64 of [a-z0-9-], not starting or ending with '-'.
bool IsValidOrgSlug(std::string_view slug);

// A repo-relative file path: no leading '/', no empty, '.' or '..' segments, no ".git"
// segment (any case), no NUL or control characters. Returns the path with a trailing
// '/' removed. `field` names the request field in the error.
absl::StatusOr<std::string> ValidateRepoPath(std::string_view path, std::string_view field);

// Like ValidateRepoPath, but "" and "/" mean the root, and a leading '/' is tolerated.
absl::StatusOr<std::string> NormalizeReadPath(std::string_view path, std::string_view field);

}  // namespace mesa::rest
