#include "daemon/cache/git_hash.h"

#include <algorithm>

#include "rest/encoding.h"

namespace mesa::daemon {

GitBlobHasher::GitBlobHasher(uint64_t size) : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(ctx_, EVP_sha1(), nullptr);
  std::string header = "blob " + std::to_string(size);
  EVP_DigestUpdate(ctx_, header.data(), header.size() + 1);  // includes the NUL
}

GitBlobHasher::~GitBlobHasher() { EVP_MD_CTX_free(ctx_); }

void GitBlobHasher::Update(const char* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }

std::string GitBlobHasher::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, md, &len);
  return rest::HexEncode(std::string_view(reinterpret_cast<char*>(md), len));
}

std::string GitBlobSha(std::string_view content) {
  GitBlobHasher h(content.size());
  h.Update(content.data(), content.size());
  return h.HexDigest();
}

std::string GitTreeSha(std::vector<GitTreeEntry> entries) {
  auto key = [](const GitTreeEntry& e) { return e.mode == "40000" ? e.name + "/" : e.name; };
  std::sort(entries.begin(), entries.end(), [&](const GitTreeEntry& a, const GitTreeEntry& b) { return key(a) < key(b); });
  std::string body;
  for (const auto& e : entries) {
    body += e.mode;
    body += ' ';
    body += e.name;
    body.push_back('\0');
    for (size_t i = 0; i + 1 < e.sha.size(); i += 2) {
      body.push_back(static_cast<char>(std::stoi(e.sha.substr(i, 2), nullptr, 16)));
    }
  }
  std::string object = "tree " + std::to_string(body.size());
  object.push_back('\0');
  object += body;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(object.data(), object.size(), md, &len, EVP_sha1(), nullptr);
  return rest::HexEncode(std::string_view(reinterpret_cast<char*>(md), len));
}

}  // namespace mesa::daemon
