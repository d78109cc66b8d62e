#include "rest/change_id.h"

#include <openssl/rand.h>

#include <stdexcept>

namespace mesa::rest {
namespace {

constexpr char kAlphabet[] = "zyxwvutsrqponmlk";

int DecodeNibble(char c) {
  if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (c < 'k' || c > 'z') return -1;
  return 'z' - c;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

uint8_t ReverseBits(uint8_t b) {
  b = static_cast<uint8_t>((b & 0xF0) >> 4 | (b & 0x0F) << 4);
  b = static_cast<uint8_t>((b & 0xCC) >> 2 | (b & 0x33) << 2);
  b = static_cast<uint8_t>((b & 0xAA) >> 1 | (b & 0x55) << 1);
  return b;
}

}  // namespace

std::string EncodeChangeId(const ChangeIdBytes& bytes) {
  std::string out;
  out.reserve(kChangeIdChars);
  for (uint8_t b : bytes) {
    out.push_back(kAlphabet[b >> 4]);
    out.push_back(kAlphabet[b & 0x0F]);
  }
  return out;
}

std::optional<ChangeIdBytes> DecodeChangeId(std::string_view text) {
  if (text.size() != kChangeIdChars) return std::nullopt;
  ChangeIdBytes bytes{};
  for (size_t i = 0; i < kChangeIdBytes; ++i) {
    int hi = DecodeNibble(text[2 * i]);
    int lo = DecodeNibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return bytes;
}

bool IsValidChangeId(std::string_view text) {
  if (text.size() != kChangeIdChars) return false;
  for (char c : text) {
    if (c < 'k' || c > 'z') return false;
  }
  return true;
}

std::string NewChangeId() {
  ChangeIdBytes bytes{};
  // The all-zero id is the virtual root; a random collision with it is astronomically
  // unlikely but cheap to exclude.
  do {
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      throw std::runtime_error("RAND_bytes failed");
    }
  } while (EncodeChangeId(bytes) == kVirtualRootChangeId);
  return EncodeChangeId(bytes);
}

std::string SyntheticChangeIdFromCommit(std::string_view commit_oid_hex) {
  if (commit_oid_hex.size() != 40) return std::string(kVirtualRootChangeId);
  uint8_t commit[20];
  for (size_t i = 0; i < 20; ++i) {
    int hi = HexValue(commit_oid_hex[2 * i]);
    int lo = HexValue(commit_oid_hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::string(kVirtualRootChangeId);
    commit[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  ChangeIdBytes bytes{};
  for (size_t i = 0; i < kChangeIdBytes; ++i) bytes[i] = ReverseBits(commit[19 - i]);
  return EncodeChangeId(bytes);
}

}  // namespace mesa::rest
