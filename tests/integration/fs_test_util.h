// Shared by the FUSE tests: seeding repos straight into a mesa-server store (the REST API
// cannot write symlinks), reading files, counting the server's content fetches.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "rest/change_id.h"
#include "server/store/store.h"

namespace mesa::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// open(O_TRUNC) + write + close; a failure names the step and the errno.
inline ::testing::AssertionResult WriteFile(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ::testing::AssertionFailure() << "open " << path << ": " << strerror(errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return ::testing::AssertionFailure() << "write " << path << ": " << strerror(e);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return ::testing::AssertionFailure() << "close " << path << ": " << strerror(errno);
  return ::testing::AssertionSuccess();
}

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline server::FileOp Op(const std::string& path, const std::string& content, uint32_t mode = 0100644) {
  server::FileOp op;
  op.path = path;
  op.content = content;
  op.mode = mode;
  return op;
}

inline int CountContentFetches(const std::string& access_log) {
  std::ifstream in(access_log);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find("/content") != std::string::npos;
  return n;
}

class Seeder {
 public:
  explicit Seeder(const std::string& data, const std::string& org = "acme") {
    auto s = server::Store::Open(data);
    EXPECT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    org_ = *store_->GetOrgBySlug(org);
  }
  server::Repo Repo(const std::string& name) {
    auto r = store_->GetRepo(org_, name);
    if (r.ok()) return *r;
    server::CreateRepoParams p;
    p.name = name;
    return *store_->CreateRepo(org_, p);
  }
  std::string Change(const std::string& repo, const std::string& base, std::vector<server::FileOp> files) {
    server::CreateChangeParams p;
    p.base_change_id = base;
    p.message = "seed";
    p.files = std::move(files);
    server::Signature who{"Seeder", "seed@example.com", 0, 0};
    auto c = store_->CreateChange(Repo(repo), p, who);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->id : "";
  }
  std::string Root() const { return std::string(rest::kVirtualRootChangeId); }
  void Bookmark(const std::string& repo, const std::string& name, const std::string& change) {
    auto r = Repo(repo);
    if (!store_->MoveBookmark(r, name, change).ok()) {
      ASSERT_TRUE(store_->CreateBookmark(r, name, change).ok());
    }
  }
  server::Store* store() { return store_.get(); }

 private:
  std::unique_ptr<server::Store> store_;
  server::Org org_;
};

}  // namespace mesa::testing
