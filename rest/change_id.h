// Mesa change ids: 16 bytes written in jj's "reverse hex" (nibble v -> 'z' - v).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mesa::rest {

inline constexpr std::string_view kVirtualRootChangeId = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
inline constexpr size_t kChangeIdBytes = 16;
inline constexpr size_t kChangeIdChars = 32;

using ChangeIdBytes = std::array<uint8_t, kChangeIdBytes>;

// Encodes 16 bytes, high nibble first: 0 -> 'z', 15 -> 'k'.
std::string EncodeChangeId(const ChangeIdBytes& bytes);

// Decodes exactly 32 reverse-hex characters (upper case accepted, as jj does).
std::optional<ChangeIdBytes> DecodeChangeId(std::string_view text);

// True when `text` matches ^[zyxwvutsrqponmlk]{32}$ (the REST pattern; lower case only).
bool IsValidChangeId(std::string_view text);

// A fresh random change id from a CSPRNG.
std::string NewChangeId();

// jj's fallback when a commit has no change-id header: bytes [4..20) of the commit id,
// in reverse order, each byte bit-reversed.
std::string SyntheticChangeIdFromCommit(std::string_view commit_oid_hex);

}  // namespace mesa::rest
