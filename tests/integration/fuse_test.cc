// Real FUSE mounts of real mesa-server repos through a real mesad.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <map>

#include "mesa/client.h"
#include "rest/change_id.h"
#include "server/store/store.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/fs_test_util.h"

namespace mesa::testing {
namespace {

namespace fsys = std::filesystem;
using server::FileOp;
using mesa::testing::Op;

class FuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chmod(dir_.path().c_str(), 0755);
    server_ = std::make_unique<MesaServerProcess>(dir_.path());
    std::ofstream cfg(dir_.path() + "/mesad.yaml");
    metrics_address_ = "127.0.0.1:" + std::to_string(FreeTcpPort());
    cfg << "fs_backend_timeout_ms: 3000\nmax_attempts: 3\nbackoff_max_ms: 200\nconnect_timeout_ms: 1000\n"
        << "metrics_listen: " << metrics_address_ << "\n";
    cfg.close();
    StartMesad();
    dv1::LoginRequest login;
    login.set_api_key(server_->key());
    login.set_make_default(true);
    client_->sessions().login(login);
  }
  void StartMesad() {
    mesad_ = std::make_unique<MesadProcess>(
        dir_.path(), server_->api_url(),
        std::vector<std::string>{"--runtime-dir", dir_.path() + "/run", "--config", dir_.path() + "/mesad.yaml"});
    client_ = mesad_->NewClient();
  }
  void TearDown() override {
    if (client_) {
      try {
        for (const auto& m : client_->mounts().list()) client_->mounts().unmount(m.id());
      } catch (const MesaError&) {
      }
    }
  }

  dv1::MountInfo Mount(std::vector<std::tuple<std::string, std::string, std::string>> repos,
                       const std::string& cache_path = "", uint64_t cap = 0) {
    dv1::MountRequest req;
    for (const auto& [name, pin_kind, pin] : repos) {
      auto* r = req.add_repos();
      r->set_name(name);
      if (pin_kind == "bookmark") r->set_bookmark(pin);
      if (pin_kind == "change") r->set_change_id(pin);
      if (pin_kind == "ro") r->set_mode("ro");
    }
    if (!cache_path.empty()) {
      req.mutable_disk_cache()->set_path(cache_path);
      req.mutable_disk_cache()->set_max_size_bytes(cap);
    }
    return client_->mounts().mount(req);
  }

  // FUSE requests mesad has answered, per op ("open", "flush", ...), once the count stops moving
  // (a handler's time is recorded just after its reply).
  std::map<std::string, double> FuseRequests() {
    std::map<std::string, double> last;
    for (int i = 0; i < 100; ++i) {
      std::map<std::string, double> now;
      std::istringstream in(HttpGet(metrics_address_, "/metrics"));
      std::string line;
      const std::string prefix = "mesad_fuse_op_duration_seconds_count{op=\"";
      while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) != 0) continue;
        size_t quote = line.find('"', prefix.size());
        now[line.substr(prefix.size(), quote - prefix.size())] = std::stod(line.substr(line.rfind(' ') + 1));
      }
      if (i > 0 && now == last) return now;
      last = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return last;
  }
  static double Total(const std::map<std::string, double>& ops) {
    double sum = 0;
    for (const auto& [op, n] : ops) sum += n;
    return sum;
  }

  TempDir dir_;
  std::string metrics_address_;
  std::unique_ptr<MesaServerProcess> server_;
  std::unique_ptr<MesadProcess> mesad_;
  std::unique_ptr<Client> client_;
};

TEST_F(FuseTest, ByteExactReadsSymlinksExecutablesAndReadOnly) {
  Seeder seed(server_->data());
  std::string binary = RandomBytes(1 << 20, 7);
  std::string big = RandomBytes(50 << 20, 11);
  std::string c = seed.Change("data", std::string(rest::kVirtualRootChangeId),
                              {Op("text.txt", "hello, mount\n"), Op("bin/blob.bin", binary), Op("empty", ""),
                               Op("big/fifty.bin", big), Op("tool.sh", "#!/bin/sh\necho ran\n", 0100755),
                               Op("link-to-text", "text.txt", 0120000), Op("dir/deeper/leaf.txt", "leaf"),
                               Op("dangling", "no/such/target", 0120000)});
  seed.Bookmark("data", "main", c);
  auto info = Mount({{"data", "ro", ""}});
  std::string root = info.path() + "/data";
  EXPECT_EQ(ReadFile(root + "/text.txt"), "hello, mount\n");
  EXPECT_EQ(ReadFile(root + "/bin/blob.bin"), binary);
  EXPECT_EQ(ReadFile(root + "/empty"), "");
  EXPECT_EQ(ReadFile(root + "/big/fifty.bin"), big);
  EXPECT_EQ(ReadFile(root + "/dir/deeper/leaf.txt"), "leaf");
  struct stat st {};
  ASSERT_EQ(stat((root + "/tool.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((root + "/text.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_size, 13);
  std::string out;
  EXPECT_EQ(RunCommand(root + "/tool.sh", &out), 0);
  EXPECT_EQ(out, "ran\n");
  ASSERT_EQ(lstat((root + "/link-to-text").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  char target[256] = {};
  ASSERT_GT(readlink((root + "/link-to-text").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "text.txt");
  EXPECT_EQ(ReadFile(root + "/link-to-text"), "hello, mount\n");
  EXPECT_NE(stat((root + "/dangling").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_NE(stat((root + "/missing").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  // Inode numbers are stable for the life of the mount.
  struct stat a {}, b {};
  stat((root + "/text.txt").c_str(), &a);
  stat((root + "/text.txt").c_str(), &b);
  EXPECT_EQ(a.st_ino, b.st_ino);
  // A read-only repo refuses every mutation.
  int fd = open((root + "/new.txt").c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(mkdir((root + "/d").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(unlink((root + "/text.txt").c_str()), 0);
  EXPECT_EQ(errno, EROFS);

  // The same filesystem through the file RPCs.
  auto& files = client_->files();
  EXPECT_EQ(files.read(info.id(), "/data/text.txt", 7, 5), "mount");
  EXPECT_EQ(files.read(info.id(), "/data/big/fifty.bin"), big);
  EXPECT_EQ(files.stat(info.id(), "/data/tool.sh").mode() & 07777, 0755u);
  EXPECT_EQ(files.lstat(info.id(), "/data/link-to-text").type(), "symlink");
  EXPECT_EQ(files.stat(info.id(), "/data/link-to-text").type(), "file");  // stat follows
  EXPECT_EQ(files.read(info.id(), "/data/link-to-text"), "hello, mount\n");
  EXPECT_FALSE(files.exists(info.id(), "/data/dangling"));
  EXPECT_EQ(files.readlink(info.id(), "/data/link-to-text"), "text.txt");
  EXPECT_TRUE(files.exists(info.id(), "/data/dir/deeper"));
  EXPECT_FALSE(files.exists(info.id(), "/data/nope"));
  auto entries = files.readdir(info.id(), "/data");
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.path());
  EXPECT_EQ(names, (std::vector<std::string>{"big", "bin", "dangling", "dir", "empty", "link-to-text", "text.txt", "tool.sh"}));
  auto expect_errno = [&](auto&& fn, const std::string& code) {
    try {
      fn();
      ADD_FAILURE() << "expected " << code;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.code(), code) << e.what();
    }
  };
  expect_errno([&] { files.read(info.id(), "/data/nope"); }, "ENOENT");
  expect_errno([&] { files.read(info.id(), "/data/dir"); }, "EISDIR");
  expect_errno([&] { files.readdir(info.id(), "/data/text.txt"); }, "ENOTDIR");
  expect_errno([&] { files.read(info.id(), "/data/text.txt/x"); }, "ENOTDIR");
  expect_errno([&] { files.read("mnt_nope", "/data/text.txt"); }, "MOUNT_NOT_FOUND");
}

TEST_F(FuseTest, SeveralReposAndPins) {
  Seeder seed(server_->data());
  std::string a1 = seed.Change("alpha", std::string(rest::kVirtualRootChangeId), {Op("v.txt", "alpha main")});
  std::string a2 = seed.Change("alpha", a1, {Op("v.txt", "alpha feature")});
  seed.Bookmark("alpha", "main", a1);
  seed.Bookmark("alpha", "feature/x", a2);
  std::string b1 = seed.Change("beta", std::string(rest::kVirtualRootChangeId), {Op("v.txt", "beta one")});
  std::string b2 = seed.Change("beta", b1, {Op("v.txt", "beta two")});
  seed.Bookmark("beta", "main", b2);
  seed.Repo("empty");
  auto info = Mount({{"alpha", "bookmark", "feature/x"}, {"beta", "change", b1}, {"empty", "ro", ""}});
  std::vector<std::string> top;
  for (const auto& e : fsys::directory_iterator(info.path())) top.push_back(e.path().filename().string());
  std::sort(top.begin(), top.end());
  EXPECT_EQ(top, (std::vector<std::string>{"alpha", "beta", "empty"}));
  EXPECT_EQ(ReadFile(info.path() + "/alpha/v.txt"), "alpha feature");
  EXPECT_EQ(ReadFile(info.path() + "/beta/v.txt"), "beta one");
  EXPECT_TRUE(fsys::is_empty(info.path() + "/empty"));
  ASSERT_EQ(info.repos_size(), 3);
  EXPECT_EQ(info.repos(0).change_id(), a2);
  EXPECT_EQ(info.repos(1).change_id(), b1);
  EXPECT_EQ(info.repos(2).mode(), "ro");
  EXPECT_EQ(info.repos(2).commit_oid(), "");
  auto listed = client_->mounts().list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(client_->mounts().get(info.path()).id(), info.id());
  // Unknown repos and pins fail the mount without leaving anything behind.
  EXPECT_THROW(Mount({{"nope", "", ""}}), NotFoundError);
  EXPECT_THROW(Mount({{"alpha", "bookmark", "ghost"}}), NotFoundError);
  EXPECT_THROW(Mount({{"alpha", "", ""}, {"alpha", "", ""}}), ValidationError);
  EXPECT_EQ(client_->mounts().list().size(), 1u);
  client_->mounts().unmount(info.id());
  EXPECT_FALSE(fsys::exists(info.path()));
  EXPECT_THROW(client_->mounts().unmount(info.id()), NotFoundError);
}

constexpr uid_t kOtherUid = 45678;

TEST_F(FuseTest, AnotherUidIsDeniedEverywhere) {
  Seeder seed(server_->data());
  seed.Bookmark("priv", "main", seed.Change("priv", std::string(rest::kVirtualRootChangeId), {Op("secret.txt", "s3cret")}));
  auto info = Mount({{"priv", "", ""}});
  EXPECT_EQ(ReadFile(info.path() + "/priv/secret.txt"), "s3cret");  // cached for the owner now
  // A child that switches to another uid: every path is EACCES, even cached ones.
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(kOtherUid) != 0 || setuid(kOtherUid) != 0) _exit(90);
    struct stat st;
    int bad = 0;
    for (const std::string& p : std::vector<std::string>{info.path(), info.path() + "/priv", info.path() + "/priv/secret.txt"}) {
      if (stat(p.c_str(), &st) == 0 || errno != EACCES) bad |= 1;
      int fd = open(p.c_str(), O_RDONLY);
      if (fd >= 0 || errno != EACCES) bad |= 2;
    }
    _exit(bad);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // ... and through mesad the mount does not exist for them.
  std::string out;
  EXPECT_NE(RunCommand("setpriv --reuid=" + std::to_string(kOtherUid) + " --regid=" + std::to_string(kOtherUid) +
                           " --clear-groups " + MESA_CLI_BIN + " --socket " + mesad_->socket() + " mounts --json 2>&1",
                       &out) == 0 && out.find(info.id()) != std::string::npos,
            true)
      << out;
}

TEST_F(FuseTest, EvictionKeepsTheCacheUnderItsCap) {
  Seeder seed(server_->data());
  std::vector<FileOp> ops;
  std::vector<std::string> contents;
  for (int i = 0; i < 8; ++i) {
    contents.push_back(RandomBytes(300 << 10, 100 + i));
    ops.push_back(Op("f" + std::to_string(i), contents.back()));
  }
  seed.Bookmark("ev", "main", seed.Change("ev", std::string(rest::kVirtualRootChangeId), ops));
  std::string cache = dir_.path() + "/small-cache";
  constexpr uint64_t kCap = 1 << 20;
  auto info = Mount({{"ev", "", ""}}, cache, kCap);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(ReadFile(info.path() + "/ev/f" + std::to_string(i)), contents[i]);
      auto m = client_->mounts().get(info.id());
      EXPECT_LE(m.cache().bytes(), kCap + (300 << 10)) << "round " << round << " file " << i;
    }
  }
  auto m = client_->mounts().get(info.id());
  EXPECT_EQ(m.cache().path(), cache);
  EXPECT_LE(m.cache().bytes(), kCap);
  EXPECT_GT(m.cache().evictions(), 0u);
  uint64_t on_disk = 0;
  for (const auto& e : fsys::recursive_directory_iterator(cache + "/blobs")) {
    if (e.is_regular_file()) on_disk += e.file_size();
  }
  EXPECT_LE(on_disk, kCap);
  struct stat st {};
  ASSERT_EQ(stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(FuseTest, RestartedDaemonServesAReadTreeWithoutContentFetches) {
  Seeder seed(server_->data());
  std::vector<FileOp> ops;
  for (int i = 0; i < 30; ++i) ops.push_back(Op("d" + std::to_string(i % 5) + "/f" + std::to_string(i), "content " + std::to_string(i)));
  seed.Bookmark("warm", "main", seed.Change("warm", std::string(rest::kVirtualRootChangeId), ops));
  auto walk = [&](const std::string& root) {
    std::string all;
    std::vector<std::string> paths;
    for (const auto& e : fsys::recursive_directory_iterator(root)) paths.push_back(e.path().string());
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
      all += p.substr(root.size()) + "\n";
      if (fsys::is_regular_file(p)) all += ReadFile(p);
    }
    return all;
  };
  auto info = Mount({{"warm", "", ""}});
  std::string before = walk(info.path() + "/warm");
  EXPECT_GT(CountContentFetches(dir_.path() + "/server-access.log"), 0);

  mesad_->Stop(SIGTERM);
  int fetches_before_restart = CountContentFetches(dir_.path() + "/server-access.log");
  StartMesad();
  auto again = Mount({{"warm", "", ""}});
  EXPECT_EQ(walk(again.path() + "/warm"), before);
  EXPECT_EQ(CountContentFetches(dir_.path() + "/server-access.log") - fetches_before_restart, 0);
}

TEST_F(FuseTest, StoppedBackendGivesEioWithinTheDeadlineThenRecovers) {
  Seeder seed(server_->data());
  seed.Bookmark("down", "main", seed.Change("down", std::string(rest::kVirtualRootChangeId),
                                            {Op("a.txt", "first"), Op("sub/b.txt", "second")}));
  auto info = Mount({{"down", "", ""}});
  EXPECT_EQ(ReadFile(info.path() + "/down/a.txt"), "first");
  int port = server_->port();
  server_->Kill(SIGKILL);
  auto start = std::chrono::steady_clock::now();
  int fd = open((info.path() + "/down/sub/b.txt").c_str(), O_RDONLY);
  char buf[16];
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
  int err = errno;
  if (fd >= 0) close(fd);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(n, 0);
  EXPECT_EQ(err, EIO);
  EXPECT_LT(elapsed, std::chrono::seconds(6));  // fs_backend_timeout_ms is 3 s
  // Already cached content keeps working while the backend is down.
  EXPECT_EQ(ReadFile(info.path() + "/down/a.txt"), "first");

  // The same server comes back on the same port: the next read succeeds.
  Process revived = Spawn({MESA_SERVER_BIN, "serve", "--data", server_->data(), "--listen",
                           "127.0.0.1:" + std::to_string(port), "--access-log", "off"},
                          dir_.path() + "/server2.log");
  for (int i = 0; i < 300 && RunCommand("curl -s -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/v1/whoami") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ReadFile(info.path() + "/down/sub/b.txt"), "second");
  client_->mounts().unmount(info.id());
  revived.Stop(SIGTERM);
}

TEST_F(FuseTest, CrashedDaemonLeavesNoDeadMount) {
  Seeder seed(server_->data());
  seed.Bookmark("c", "main", seed.Change("c", std::string(rest::kVirtualRootChangeId), {Op("x", "x")}));
  auto info = Mount({{"c", "", ""}});
  EXPECT_EQ(ReadFile(info.path() + "/c/x"), "x");
  mesad_->Stop(SIGKILL);
  struct stat st;
  EXPECT_NE(stat((info.path() + "/c/x").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOTCONN);
  StartMesad();
  // The dead mount was detached and the recorded mount restored at the same path: it answers
  // again, no "Transport endpoint is not connected" left behind.
  errno = 0;
  EXPECT_EQ(stat((info.path() + "/c/x").c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(info.path() + "/c/x"), "x");
  auto mounts = client_->mounts().list();
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].id(), info.id());
}

// Content never changes under a mount, so once the kernel holds an entry, its attributes and its
// pages, reading the file again needs mesad only where writes need it: an all-ro mount is
// MS_RDONLY and answers neither OPEN nor FLUSH; a rw mount keeps FLUSH (close() is the flusher's
// upload hint); a mixed mount answers OPEN (EROFS for the ro repo) but readers get no FLUSH.
TEST_F(FuseTest, WarmReadsReachTheDaemonOnlyWhereWritesNeedIt) {
  Seeder seed(server_->data());
  std::vector<FileOp> ops;
  std::vector<std::string> names;
  for (int i = 0; i < 20; ++i) {
    names.push_back("d" + std::to_string(i % 4) + "/f" + std::to_string(i) + ".txt");
    ops.push_back(Op(names.back(), "file " + std::to_string(i) + "\n"));
  }
  seed.Bookmark("r", "main", seed.Change("r", std::string(rest::kVirtualRootChangeId), ops));
  seed.Bookmark("w", "main", seed.Change("w", std::string(rest::kVirtualRootChangeId), ops));
  auto read_all = [&](const std::string& dir, int rounds) {
    for (int round = 0; round < rounds; ++round) {
      for (size_t i = 0; i < names.size(); ++i) {
        ASSERT_EQ(ReadFile(dir + "/" + names[i]), "file " + std::to_string(i) + "\n");
        struct stat st {};
        ASSERT_EQ(stat((dir + "/" + names[i]).c_str(), &st), 0);
      }
    }
  };

  auto ro = Mount({{"r", "ro", ""}});
  read_all(ro.path() + "/r", 1);  // warm-up: fetches, and the one refused OPEN and FLUSH
  auto before = FuseRequests();
  ASSERT_GT(before["read"], 0);
  read_all(ro.path() + "/r", 3);
  auto after = FuseRequests();
  EXPECT_EQ(Total(after) - Total(before), 0) << "open " << after["open"] - before["open"] << ", flush "
                                             << after["flush"] - before["flush"];
  // The kernel itself refuses writes to an all-ro mount.
  EXPECT_LT(open((ro.path() + "/r/new.txt").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_LT(open((ro.path() + "/r/" + names[0]).c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);

  auto rw = Mount({{"w", "", ""}});
  read_all(rw.path() + "/w", 1);
  before = FuseRequests();
  read_all(rw.path() + "/w", 2);
  after = FuseRequests();
  EXPECT_EQ(after["flush"] - before["flush"], 2 * names.size());
  EXPECT_EQ(Total(after) - Total(before), 2 * names.size());  // nothing but the FLUSHes

  auto mixed = Mount({{"r", "ro", ""}, {"w", "", ""}});
  read_all(mixed.path() + "/r", 1);
  before = FuseRequests();
  read_all(mixed.path() + "/r", 2);
  after = FuseRequests();
  EXPECT_EQ(after["open"] - before["open"], 2 * names.size());
  EXPECT_EQ(after["flush"] - before["flush"], 0);
  EXPECT_LT(open((mixed.path() + "/r/" + names[0]).c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);
  int fd = open((mixed.path() + "/w/" + names[0]).c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(write(fd, "more\n", 5), 5);
  close(fd);
  EXPECT_EQ(ReadFile(mixed.path() + "/w/" + names[0]), "file 0\nmore\n");
}

TEST_F(FuseTest, DifferentialAgainstGitClone) {
  Seeder seed(server_->data());
  std::vector<FileOp> ops = {Op("README.md", "# diff\n"), Op("src/main.c", "int main(void) { return 0; }\n"),
                             Op("src/util/helpers.h", "#pragma once\n"), Op("scripts/run.sh", "#!/bin/sh\nexit 0\n", 0100755),
                             Op("assets/logo.bin", RandomBytes(200000, 3)), Op("empty.txt", ""),
                             Op("docs/link.md", "../README.md", 0120000), Op("a/b/c/d/e/deep.txt", "deep")};
  for (int i = 0; i < 50; ++i) ops.push_back(Op("many/file" + std::to_string(i) + ".txt", std::string(i * 37, 'a' + i % 26)));
  std::string change = seed.Change("cmp", std::string(rest::kVirtualRootChangeId), ops);
  seed.Bookmark("cmp", "main", change);
  auto info = Mount({{"cmp", "", ""}});
  std::string repo_id = client_->repos().get("cmp").id();
  std::string clone = dir_.path() + "/clone";
  ASSERT_EQ(RunCommand("git clone -q file://" + server_->data() + "/repos/" + repo_id + ".git " + clone + " 2>&1"), 0);
  std::string out;
  EXPECT_EQ(RunCommand("diff -r --no-dereference --exclude=.git " + clone + " " + info.path() + "/cmp 2>&1", &out), 0) << out;
  auto walk = [](const std::string& root) {
    std::string listing;
    RunCommand("cd " + root + " && find . -path ./.git -prune -o -printf '%P %y %m %s\\n' | sort", &listing);
    return listing;
  };
  std::string a = walk(clone), b = walk(info.path() + "/cmp");
  // Directory sizes are file-system specific; compare everything else.
  auto strip_dir_sizes = [](std::string s) {
    std::stringstream in(s), out_s;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string path, type, mode, size;
      f >> path >> type >> mode >> size;
      out_s << path << " " << type << " " << mode << " " << (type == "d" ? "-" : size) << "\n";
    }
    return out_s.str();
  };
  EXPECT_EQ(strip_dir_sizes(a), strip_dir_sizes(b));
  EXPECT_GT(b.size(), 60u * 10);
}

}  // namespace
}  // namespace mesa::testing
