// Git object ids computed locally, so that every blob and tree the daemon caches is verified
// against the sha the server named.
#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>
#include <vector>

namespace mesa::daemon {

// SHA-1 of "blob <size>\0" + content, fed incrementally.
class GitBlobHasher {
 public:
  explicit GitBlobHasher(uint64_t size);
  ~GitBlobHasher();
  GitBlobHasher(const GitBlobHasher&) = delete;
  GitBlobHasher& operator=(const GitBlobHasher&) = delete;
  void Update(const char* data, size_t n);
  std::string HexDigest();  // once

 private:
  EVP_MD_CTX* ctx_;
};

std::string GitBlobSha(std::string_view content);

struct GitTreeEntry {
  std::string name;
  std::string mode;  // "100644" | "100755" | "120000" | "40000" (dirs)
  std::string sha;   // 40 hex
};

// The git tree id of `entries` (sorted here the way git sorts: directories as "name/").
std::string GitTreeSha(std::vector<GitTreeEntry> entries);

}  // namespace mesa::daemon
