// Byte encodings and digests shared by the server and the daemon.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mesa::rest {

std::string Base64Encode(std::string_view bytes);
// Strict RFC 4648 base64 with padding; whitespace is not allowed. nullopt on bad input.
std::optional<std::string> Base64Decode(std::string_view text);

std::string Base64UrlEncodeNoPad(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

std::string HexEncode(std::string_view bytes);

std::string Sha256(std::string_view bytes);  // raw 32 bytes
std::string HmacSha256(std::string_view key, std::string_view message);  // raw 32 bytes

// Compares in time independent of where the inputs differ (lengths may leak).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` characters from [A-Za-z0-9], drawn from a CSPRNG without modulo bias.
std::string RandomAlphanumeric(size_t n);

}  // namespace mesa::rest
