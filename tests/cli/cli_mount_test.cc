// `mesa mount|unmount|mounts|mount-info` and `mesa fs ...` as a user runs them: a real mesad
// (embedded store) with real FUSE mounts under the test's runtime dir, the real `mesa` binary,
// its stdout, stderr and exit codes. Repo content is created through the CLI as well.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/cli/cli_result.h"
#include "tests/unit/test_util.h"

namespace mesa::testing {
namespace {

namespace fsys = std::filesystem;
using nlohmann::json;
const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
constexpr int kOtherUid = 45679;

std::string Bin(const char* env, const char* fallback) {
  const char* v = getenv(env);
  return v && *v ? v : fallback;
}
std::string MesadBin() { return Bin("MESAD_BIN", MESAD_BIN); }
std::string CliBin() { return Bin("MESA_CLI_BIN", MESA_CLI_BIN); }

// Single-quotes `s` for /bin/sh.
std::string Q(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  fsys::create_directories(fsys::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  // Every byte value, NUL and CR/LF included, at the start.
  for (int b = 0; b < 256 && b < static_cast<int>(n); ++b) s[static_cast<size_t>(b)] = static_cast<char>(b);
  return s;
}

using Result = CliResult;

struct Mounted {
  std::string id;
  std::string path;
};

class CliMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Other uids must reach the socket (and see EACCES on the mounts, not on our temp dir).
    chmod(dir_.path().c_str(), 0755);
    socket_ = dir_.path() + "/mesad.sock";
    mesad_ = fork();
    if (mesad_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = open((dir_.path() + "/mesad.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
      std::vector<std::string> argv = {MesadBin(),    "--socket",    socket_,      "--state-dir",
                                       Path("state"), "--cache-dir", Path("cache"), "--runtime-dir",
                                       Path("run")};
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (Mesa("status").code == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "mesad did not answer on " << socket_ << "\n" << ReadFile(Path("mesad.log"));
  }

  void TearDown() override {
    Result list = Mesa("mounts --json");
    if (list.code == 0) {
      json mounts = list.Json();
      for (const auto& m : mounts["items"]) Mesa("unmount " + m.value("id", ""));
    }
    if (mesad_ > 0) {
      kill(mesad_, SIGTERM);
      int status = 0;
      waitpid(mesad_, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(Path("mesad.log"));
    }
  }

  // Runs `mesa ARGS` against the fixture's mesad; `as_uid` > 0 runs it as that uid.
  Result Mesa(const std::string& args, int as_uid = 0) {
    std::string err = Path("stderr");
    std::string prefix;
    if (as_uid > 0) {
      std::string id = std::to_string(as_uid);
      prefix = "setpriv --reuid=" + id + " --regid=" + id + " --clear-groups ";
    }
    std::string cmd = prefix + "env -u MESA_API_KEY -u MESA_API_URL -u MESA_ORG MESA_SOCKET=" + Q(socket_) + " " +
                      CliBin() + " " + args + " 2>" + Q(err) + " </dev/null";
    Result r;
    r.code = RunCommand(cmd, &r.out);
    r.err = ReadFile(err);
    return r;
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  std::string Local(const std::string& name, const std::string& data) {
    WriteFile(Path("files/" + name), data);
    return Path("files/" + name);
  }

  // The "data" repo: `main` at c1 (text, binary, executable, nested dir), feature/x at c2.
  void Seed() {
    ASSERT_EQ(Mesa("repos create data").code, 0);
    binary_ = RandomBytes((5 << 20) + 4321, 7);  // more than one 4 MiB read of `fs cat`
    Result c1 = Mesa("changes create data --base " + kRoot + " -m one --file " +
                     Q("text.txt=" + Local("text.txt", "hello, mount\n")) + " --file " +
                     Q("bin/blob.bin=" + Local("blob.bin", binary_)) + " --exec-file " +
                     Q("tool.sh=" + Local("tool.sh", "#!/bin/sh\necho ran\n")) + " --file " +
                     Q("dir/deeper/leaf.txt=" + Local("leaf.txt", "leaf")) + " --json");
    ASSERT_EQ(c1.code, 0) << c1;
    c1_ = c1.Json().value("id", "");
    Result c2 = Mesa("changes create data --base " + c1_ + " -m two --file " +
                     Q("text.txt=" + Local("text2.txt", "hello, feature\n")) + " --json");
    ASSERT_EQ(c2.code, 0) << c2;
    c2_ = c2.Json().value("id", "");
    ASSERT_EQ(Mesa("bookmarks move data main " + c1_).code, 0);
    ASSERT_EQ(Mesa("bookmarks create data feature/x " + c2_).code, 0);
  }

  // `mesa mount ARGS`: the id and path from "mounted ID at PATH".
  Mounted Mount(const std::string& args, Result* result = nullptr) {
    Result r = Mesa("mount " + args);
    if (result) *result = r;
    EXPECT_EQ(r.code, 0) << r;
    std::smatch m;
    std::string first = r.out.substr(0, r.out.find('\n'));
    if (!std::regex_match(first, m, std::regex("mounted (mnt_[A-Za-z0-9]+) at (/.+)"))) {
      ADD_FAILURE() << "unexpected mount output:\n" << r;
      return {};
    }
    return {m[1], m[2]};
  }

  TempDir dir_;
  std::string socket_;
  pid_t mesad_ = -1;
  std::string binary_, c1_, c2_;
};

TEST_F(CliMountTest, HelpAndUsage) {
  for (const char* cmd : {"mount", "unmount", "mounts", "mount-info", "fs", "fs cat", "fs ls", "fs stat",
                          "fs exists", "fs readlink"}) {
    Result h = Mesa(std::string(cmd) + " --help");
    EXPECT_EQ(h.code, 0) << cmd << h;
    EXPECT_TRUE(h.out.starts_with(std::string("usage: mesa ") + cmd)) << h;
  }
  EXPECT_NE(Mesa("fs --help").out.find("readlink"), std::string::npos);
  EXPECT_NE(Mesa("--help").out.find("mount-info"), std::string::npos);
  EXPECT_EQ(Mesa("mount").code, 2);
  EXPECT_EQ(Mesa("fs").code, 2);
  EXPECT_EQ(Mesa("fs cat mnt_x").code, 2);
  EXPECT_EQ(Mesa("fs frob").code, 2);
  for (const char* bad : {":ro", "data:rx", "data@", "data#", "data:ro:rw"}) {
    Result r = Mesa(std::string("mount ") + Q(bad));
    EXPECT_EQ(r.code, 2) << bad << r;
    EXPECT_TRUE(r.err.starts_with("mesa: USAGE: ")) << r;
  }
  EXPECT_EQ(Mesa("mount data --max-size 1M").code, 2);  // needs --disk-cache
  for (const char* bad : {"0", "1X", "M", "-1", "1.5M", "99999999999999999999G", "17179869184G"})
    EXPECT_EQ(Mesa(std::string("mount data --disk-cache ") + Q(Path("c")) + " --max-size " + Q(bad)).code, 2) << bad;
  EXPECT_EQ(Mesa("fs cat mnt_x /a --offset -1").code, 2);
  EXPECT_EQ(Mesa("fs cat mnt_x /a --length x").code, 2);
  // Nothing was mounted by any of these.
  EXPECT_EQ(Mesa("mounts --json").Json()["items"].size(), 0u);
}

TEST_F(CliMountTest, MountDefaultPinListInfoAndPlainCat) {
  Seed();
  Result r;
  Mounted m = Mount("data", &r);
  ASSERT_FALSE(m.id.empty());
  EXPECT_EQ(m.path, Path("run") + "/0/" + m.id);
  EXPECT_NE(r.out.find("\n  data: rw, default bookmark, change " + c1_ + "\n"), std::string::npos) << r;

  // The files are there for every program, byte-exact.
  std::string out;
  EXPECT_EQ(RunCommand("cat " + Q(m.path + "/data/text.txt"), &out), 0);
  EXPECT_EQ(out, "hello, mount\n");
  EXPECT_EQ(RunCommand("cmp " + Q(m.path + "/data/bin/blob.bin") + " " + Q(Path("files/blob.bin"))), 0);
  std::string ran;
  EXPECT_EQ(RunCommand(Q(m.path + "/data/tool.sh"), &ran), 0);
  EXPECT_EQ(ran, "ran\n");

  Result list = Mesa("mounts");
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_TRUE(list.out.starts_with("ID ")) << list;
  for (const char* col : {"PATH", "REPOS", "STATE", "CACHE"}) EXPECT_NE(list.out.find(col), std::string::npos) << list;
  std::string row = list.out.substr(list.out.find('\n') + 1);
  EXPECT_TRUE(row.starts_with(m.id + "  " + m.path + "  data   mounted  ")) << list;
  EXPECT_EQ(std::count(list.out.begin(), list.out.end(), '\n'), 2) << list;

  Result lj = Mesa("mounts --json");
  ASSERT_EQ(lj.code, 0) << lj;
  json items = lj.Json()["items"];
  ASSERT_EQ(items.size(), 1u) << lj;
  EXPECT_EQ(items[0]["id"], m.id);
  EXPECT_EQ(items[0]["path"], m.path);
  EXPECT_EQ(items[0]["state"], "mounted");
  EXPECT_EQ(items[0]["repos"][0]["name"], "data");
  EXPECT_EQ(items[0]["repos"][0]["change_id"], c1_);
  EXPECT_TRUE(lj.Json().contains("next_cursor"));

  // mount-info by id and by path (also with a trailing slash); the repo table and counters.
  Result info = Mesa("mount-info " + m.id);
  ASSERT_EQ(info.code, 0) << info;
  EXPECT_EQ(info.Field("id"), m.id);
  EXPECT_EQ(info.Field("path"), m.path);
  EXPECT_EQ(info.Field("state"), "mounted");
  EXPECT_EQ(info.Field("cache_path"), Path("cache") + "/blobs");
  EXPECT_NE(info.Field("cache_bytes"), "0 (0B)");  // the files read above
  for (const char* key : {"cache_entries", "cache_hits", "cache_misses", "cache_evictions", "listings_fetched",
                          "blobs_opened", "backend_errors", "created_at", "org", "session"})
    EXPECT_FALSE(info.Field(key).empty()) << key;
  EXPECT_EQ(info.Field("backend_errors"), "0");
  EXPECT_NE(info.out.find("\nREPO  MODE  BOOKMARK  CHANGE"), std::string::npos) << info;
  EXPECT_NE(info.out.find("\ndata  rw    -         " + c1_ + "  "), std::string::npos) << info;
  Result by_path = Mesa("mount-info " + Q(m.path + "/") + " --json");
  ASSERT_EQ(by_path.code, 0) << by_path;
  EXPECT_EQ(by_path.Json()["id"], m.id);
  EXPECT_EQ(by_path.Json()["repos"][0]["commit_oid"].get<std::string>().size(), 40u);
  EXPECT_EQ(Mesa("mount-info mnt_nope").code, 6);
  // `mounts get` is another spelling of mount-info.
  Result get = Mesa("mounts get " + m.id);
  ASSERT_EQ(get.code, 0) << get;
  EXPECT_EQ(get.Field("path"), m.path);
  EXPECT_NE(get.out.find("\nREPO  MODE  BOOKMARK  CHANGE"), std::string::npos) << get;
  EXPECT_EQ(Mesa("mounts get " + Q(m.path) + " --json").Json()["id"], m.id);
  EXPECT_EQ(Mesa("mounts get mnt_nope").code, 6);
  EXPECT_EQ(Mesa("mounts get").code, 2);
  EXPECT_EQ(Mesa("mounts frob x").code, 2);

  // A mount point relative to the caller's cwd names the same mount.
  std::string out2;
  EXPECT_EQ(RunCommand("cd " + Q(Path("run/0")) + " && MESA_SOCKET=" + Q(socket_) + " " + CliBin() +
                           " mount-info --json ./" + m.id,
                       &out2),
            0)
      << out2;
  EXPECT_EQ(json::parse(out2, nullptr, false).value("id", ""), m.id);
}

TEST_F(CliMountTest, PinsAndReadOnly) {
  Seed();
  Result r;
  Mounted feature = Mount("data@feature/x", &r);
  EXPECT_NE(r.out.find("  data: rw, bookmark feature/x, change " + c2_ + "\n"), std::string::npos) << r;
  EXPECT_EQ(ReadFile(feature.path + "/data/text.txt"), "hello, feature\n");

  Mounted pinned = Mount("data#" + c1_, &r);
  EXPECT_NE(r.out.find("  data: rw, change " + c1_ + "\n"), std::string::npos) << r;
  EXPECT_EQ(ReadFile(pinned.path + "/data/text.txt"), "hello, mount\n");

  Mounted ro = Mount("data:ro@feature/x", &r);
  EXPECT_NE(r.out.find("  data: ro, bookmark feature/x, change " + c2_ + "\n"), std::string::npos) << r;
  EXPECT_EQ(ReadFile(ro.path + "/data/text.txt"), "hello, feature\n");
  Result rw = Mesa("mount data:rw#" + c2_ + " --json");
  ASSERT_EQ(rw.code, 0) << rw;
  EXPECT_EQ(rw.Json()["repos"][0]["mode"], "rw");
  EXPECT_EQ(rw.Json()["repos"][0]["change_id"], c2_);
  Result ro_json = Mesa("mount-info " + ro.id + " --json");
  EXPECT_EQ(ro_json.Json()["repos"][0]["mode"], "ro");
  EXPECT_EQ(ro_json.Json()["repos"][0]["bookmark"], "feature/x");

  // Several repos in one mount, one directory each; the REPOS column in mount syntax.
  ASSERT_EQ(Mesa("repos create other").code, 0);
  Mounted two = Mount("data@feature/x other:ro", &r);
  EXPECT_TRUE(fsys::is_directory(two.path + "/data")) << r;
  EXPECT_TRUE(fsys::is_directory(two.path + "/other"));
  Result list = Mesa("mounts");
  EXPECT_NE(list.out.find("  data@feature/x,other:ro  mounted  "), std::string::npos) << list;
  EXPECT_EQ(Mesa("mounts --json").Json()["items"].size(), 5u);

  // An explicit mount point (relative to the caller's cwd).
  fsys::create_directories(Path("here"));
  std::string out;
  ASSERT_EQ(RunCommand("cd " + Q(dir_.path()) + " && MESA_SOCKET=" + Q(socket_) + " " + CliBin() +
                           " mount data --at here --json",
                       &out),
            0)
      << out;
  EXPECT_EQ(json::parse(out).value("path", ""), Path("here"));
  EXPECT_EQ(ReadFile(Path("here/data/text.txt")), "hello, mount\n");
  Result missing_dir = Mesa("mount data --at " + Q(Path("nowhere")));
  EXPECT_EQ(missing_dir.code, 6) << missing_dir;
  EXPECT_TRUE(missing_dir.err.starts_with("mesa: ENOENT: ")) << missing_dir;

  // Unknown pins fail without leaving a mount behind.
  size_t before = Mesa("mounts --json").Json()["items"].size();
  EXPECT_EQ(Mesa("mount data@ghost").code, 6);
  EXPECT_EQ(Mesa("mount data#" + std::string(32, 'k')).code, 6);
  EXPECT_EQ(Mesa("mount data#notachange").code, 3);
  EXPECT_EQ(Mesa("mount data data").code, 3);
  EXPECT_EQ(Mesa("mounts --json").Json()["items"].size(), before);
}

TEST_F(CliMountTest, FsReadCommands) {
  Seed();
  Mounted m = Mount("data");

  // cat: byte-exact (several 4 MiB reads), ranges, by id or by mount point.
  std::string got = Path("got.bin");
  ASSERT_EQ(RunCommand("MESA_SOCKET=" + Q(socket_) + " " + CliBin() + " fs cat " + m.id + " /data/bin/blob.bin > " +
                       Q(got)),
            0);
  EXPECT_EQ(RunCommand("cmp " + Q(got) + " " + Q(Path("files/blob.bin"))), 0);
  EXPECT_EQ(Mesa("fs cat " + m.id + " /data/text.txt").out, "hello, mount\n");
  EXPECT_EQ(Mesa("fs cat " + Q(m.path) + " data/text.txt").out, "hello, mount\n");
  Result range = Mesa("fs cat " + m.id + " /data/text.txt --offset 7 --length 5");
  EXPECT_EQ(range.code, 0) << range;
  EXPECT_EQ(range.out, "mount");
  EXPECT_EQ(Mesa("fs cat " + m.id + " /data/text.txt --offset 7").out, "mount\n");
  EXPECT_EQ(Mesa("fs cat " + m.id + " /data/text.txt --length 5").out, "hello");
  EXPECT_EQ(Mesa("fs cat " + m.id + " /data/text.txt --offset 100").out, "");
  EXPECT_EQ(Mesa("fs cat " + m.id + " /data/text.txt --length 0").out, "");
  // A range across the 4 MiB read boundary.
  size_t off = (4 << 20) - 1000;
  std::string piece = Path("piece.bin");
  ASSERT_EQ(RunCommand("MESA_SOCKET=" + Q(socket_) + " " + CliBin() + " fs cat " + m.id +
                       " /data/bin/blob.bin --offset " + std::to_string(off) + " --length 5000 > " + Q(piece)),
            0);
  EXPECT_EQ(ReadFile(piece), binary_.substr(off, 5000));
  Result cj = Mesa("fs cat " + m.id + " /data/text.txt --json");
  ASSERT_EQ(cj.code, 0) << cj;
  EXPECT_EQ(cj.Json()["data"], "aGVsbG8sIG1vdW50Cg==");  // base64 of "hello, mount\n"
  EXPECT_EQ(cj.Json()["size"], "13");                     // uint64 as a JSON string (proto mapping)

  // ls: the root (one entry per repo) and a directory.
  Result root = Mesa("fs ls " + m.id);
  ASSERT_EQ(root.code, 0) << root;
  EXPECT_TRUE(root.out.starts_with("MODE  TYPE  SIZE  NAME\n")) << root;
  EXPECT_NE(root.out.find(" dir   -     data\n"), std::string::npos) << root;
  Result ls = Mesa("fs ls " + m.id + " /data");
  ASSERT_EQ(ls.code, 0) << ls;
  EXPECT_EQ(ls.out,
            "MODE  TYPE  SIZE  NAME\n"
            "0755  dir   -     bin\n"
            "0755  dir   -     dir\n"
            "0644  file  13    text.txt\n"
            "0755  file  19    tool.sh\n")
      << ls;
  Result bin = Mesa("fs ls " + Q(m.path) + " data/bin");
  EXPECT_EQ(bin.out, "MODE  TYPE  SIZE     NAME\n0644  file  " + std::to_string(binary_.size()) + "  blob.bin\n") << bin;
  Result lj = Mesa("fs ls " + m.id + " /data --json");
  ASSERT_EQ(lj.code, 0) << lj;
  std::vector<std::string> names;
  json listing = lj.Json();
  for (const auto& e : listing["items"]) names.push_back(e.value("path", ""));
  EXPECT_EQ(names, (std::vector<std::string>{"bin", "dir", "text.txt", "tool.sh"}));

  // stat
  Result st = Mesa("fs stat " + m.id + " /data/tool.sh");
  ASSERT_EQ(st.code, 0) << st;
  EXPECT_EQ(st.Field("type"), "file");
  EXPECT_EQ(st.Field("mode"), "0755");
  EXPECT_EQ(st.Field("size"), "19");
  EXPECT_EQ(Mesa("fs stat " + m.id + " /data/text.txt").Field("mode"), "0644");
  EXPECT_EQ(Mesa("fs stat " + m.id + " /data/dir").Field("type"), "dir");
  json sj = Mesa("fs stat " + m.id + " /data/tool.sh --json").Json();
  EXPECT_EQ(sj["mode"].get<int>(), 0100755);
  EXPECT_EQ(sj["type"], "file");

  // exists: exit 0 / 1
  Result yes = Mesa("fs exists " + m.id + " /data/dir/deeper");
  EXPECT_EQ(yes.code, 0) << yes;
  EXPECT_EQ(yes.out, "true\n");
  Result no = Mesa("fs exists " + m.id + " /data/nope");
  EXPECT_EQ(no.code, 1) << no;
  EXPECT_EQ(no.out, "false\n");
  EXPECT_EQ(no.err, "");
  EXPECT_EQ(Mesa("fs exists " + m.id + " /data/text.txt/below").code, 1);
  Result ej = Mesa("fs exists " + m.id + " /data/text.txt --json");
  EXPECT_EQ(ej.code, 0);
  EXPECT_EQ(ej.Json()["exists"], true);
  EXPECT_EQ(Mesa("fs exists mnt_nope /data").code, 6);

  // readlink on a regular file: EINVAL, a validation error.
  Result rl = Mesa("fs readlink " + m.id + " /data/text.txt");
  EXPECT_EQ(rl.code, 3) << rl;
  EXPECT_TRUE(rl.err.starts_with("mesa: EINVAL: ")) << rl;
  EXPECT_EQ(rl.err.find("EINVAL: EINVAL"), std::string::npos) << rl;

  // errno-coded errors, by class.
  Result enoent = Mesa("fs cat " + m.id + " /data/nope");
  EXPECT_EQ(enoent.code, 6) << enoent;
  EXPECT_TRUE(enoent.err.starts_with("mesa: ENOENT: ")) << enoent;
  EXPECT_NE(enoent.err.find("/data/nope"), std::string::npos) << enoent;
  EXPECT_EQ(enoent.out, "");
  EXPECT_EQ(Mesa("fs stat " + m.id + " /nope").code, 6);
  Result eisdir = Mesa("fs cat " + m.id + " /data/dir");
  EXPECT_EQ(eisdir.code, 3) << eisdir;
  EXPECT_TRUE(eisdir.err.starts_with("mesa: EISDIR: ")) << eisdir;
  EXPECT_FALSE(eisdir.err.ends_with(": \n")) << eisdir;
  EXPECT_EQ(eisdir.err.find("EISDIR: EISDIR"), std::string::npos) << eisdir;
  Result enotdir = Mesa("fs ls " + m.id + " /data/text.txt");
  EXPECT_EQ(enotdir.code, 3) << enotdir;
  EXPECT_TRUE(enotdir.err.starts_with("mesa: ENOTDIR: ")) << enotdir;
  Result nomount = Mesa("fs cat mnt_nope /data/text.txt");
  EXPECT_EQ(nomount.code, 6) << nomount;
  EXPECT_TRUE(nomount.err.starts_with("mesa: MOUNT_NOT_FOUND: ")) << nomount;
}

TEST_F(CliMountTest, UnmountByIdAndByPath) {
  Seed();
  Mounted a = Mount("data");
  Mounted b = Mount("data@feature/x");
  ASSERT_TRUE(fsys::exists(a.path + "/data/text.txt"));

  Result by_id = Mesa("unmount " + a.id);
  EXPECT_EQ(by_id.code, 0) << by_id;
  EXPECT_EQ(by_id.out, "unmounted " + a.id + "\n");
  EXPECT_FALSE(fsys::exists(a.path));
  Result again = Mesa("unmount " + a.id);
  EXPECT_EQ(again.code, 6) << again;
  EXPECT_TRUE(again.err.starts_with("mesa: MOUNT_NOT_FOUND: ")) << again;

  Result by_path = Mesa("unmount " + Q(b.path + "/") + " --json");
  EXPECT_EQ(by_path.code, 0) << by_path;
  EXPECT_EQ(by_path.Json()["success"], true);
  EXPECT_FALSE(fsys::exists(b.path));
  EXPECT_EQ(Mesa("unmount " + Q(b.path)).code, 6);
  EXPECT_EQ(Mesa("mounts --json").Json()["items"].size(), 0u);
  EXPECT_EQ(Mesa("fs cat " + b.id + " /data/text.txt").code, 6);
}

TEST_F(CliMountTest, MissingRepoLeavesNoMount) {
  Seed();
  Result r = Mesa("mount nope");
  EXPECT_EQ(r.code, 6) << r;
  EXPECT_TRUE(r.err.starts_with("mesa: ") && r.err.find("nope") != std::string::npos) << r;
  EXPECT_EQ(Mesa("mount data nope").code, 6);
  Result list = Mesa("mounts --json");
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_EQ(list.Json()["items"].size(), 0u) << list;
  // No mount point left behind either.
  std::error_code ec;
  size_t left = 0;
  for (auto it = fsys::directory_iterator(Path("run/0"), ec); !ec && it != fsys::directory_iterator(); ++it) ++left;
  EXPECT_EQ(left, 0u);
}

TEST_F(CliMountTest, PrivateDiskCacheWithMaxSize) {
  Seed();
  std::string cache = Path("private-cache");
  Result r;
  Mounted m = Mount("data --disk-cache " + Q(cache) + " --max-size 1M", &r);
  ASSERT_FALSE(m.id.empty()) << r;
  EXPECT_EQ(ReadFile(m.path + "/data/text.txt"), "hello, mount\n");
  Result info = Mesa("mount-info " + m.id);
  ASSERT_EQ(info.code, 0) << info;
  EXPECT_EQ(info.Field("cache_path"), cache);
  EXPECT_EQ(info.Field("cache_max_bytes"), "1048576 (1M)");
  json j = Mesa("mount-info " + m.id + " --json").Json();
  EXPECT_EQ(j["cache"]["path"], cache);
  EXPECT_EQ(j["cache"]["max_bytes"], "1048576");
  Result list = Mesa("mounts");
  EXPECT_NE(list.out.find("/1M\n"), std::string::npos) << list;
  EXPECT_TRUE(fsys::is_directory(cache));

  // A relative cache path is the caller's, not mesad's.
  std::string out;
  ASSERT_EQ(RunCommand("cd " + Q(dir_.path()) + " && MESA_SOCKET=" + Q(socket_) + " " + CliBin() +
                           " mount data --disk-cache rel-cache --max-size 2048K --json",
                       &out),
            0)
      << out;
  json rel = json::parse(out);
  EXPECT_EQ(rel["cache"]["path"], Path("rel-cache"));
  EXPECT_EQ(rel["cache"]["max_bytes"], "2097152");
}

TEST_F(CliMountTest, AnotherUidSeesNothing) {
  Seed();
  Mounted m = Mount("data");
  ASSERT_FALSE(m.id.empty());
  Result list = Mesa("mounts", kOtherUid);
  EXPECT_EQ(list.code, 0) << list;
  EXPECT_EQ(list.out, "ID  PATH  REPOS  STATE  CACHE\n") << list;
  Result lj = Mesa("mounts --json", kOtherUid);
  EXPECT_EQ(lj.code, 0) << lj;
  EXPECT_EQ(lj.Json()["items"].size(), 0u) << lj;
  Result cat = Mesa("fs cat " + m.id + " /data/text.txt", kOtherUid);
  EXPECT_EQ(cat.code, 6) << cat;
  EXPECT_EQ(cat.out, "");
  EXPECT_TRUE(cat.err.starts_with("mesa: MOUNT_NOT_FOUND: ")) << cat;
  EXPECT_EQ(Mesa("fs cat " + Q(m.path) + " /data/text.txt", kOtherUid).code, 6);
  EXPECT_EQ(Mesa("mount-info " + m.id, kOtherUid).code, 6);
  EXPECT_EQ(Mesa("unmount " + m.id, kOtherUid).code, 6);
  EXPECT_EQ(Mesa("mounts --all-users", kOtherUid).code, 5);  // root only
  // Plain file access is refused too.
  EXPECT_NE(RunCommand("setpriv --reuid=" + std::to_string(kOtherUid) + " --regid=" + std::to_string(kOtherUid) +
                       " --clear-groups cat " + Q(m.path + "/data/text.txt") + " 2>/dev/null"),
            0);
  // ... and the owner still has it; root sees everyone's with --all-users.
  EXPECT_EQ(Mesa("fs cat " + m.id + " /data/text.txt").out, "hello, mount\n");
  Result all = Mesa("mounts --all-users");
  EXPECT_EQ(all.code, 0) << all;
  EXPECT_TRUE(std::regex_search(all.out, std::regex("^ID +UID  PATH +REPOS +STATE +CACHE\n"))) << all;
  EXPECT_NE(all.out.find("\n" + m.id + "  0    " + m.path + "  "), std::string::npos) << all;
}


// Writes and the working change through `mesa fs`: the bytes reach the server on flush, the
// first write forks a change off main (main does not move), and errors keep their classes.
TEST_F(CliMountTest, FsWriteAndWorkspaceCommands) {
  Seed();
  ASSERT_EQ(Mesa("repos create other").code, 0);
  Mounted m = Mount("data other:ro");
  ASSERT_FALSE(m.id.empty());
  std::string before = Mesa("fs changes current " + m.id + " data --json").Json().value("change_id", "");
  EXPECT_EQ(before, c1_);  // the view starts at main

  Result w = Mesa("fs write " + m.id + " /data/notes/new.txt --data " + Q("first line\n"));
  EXPECT_EQ(w.code, 6) << w;  // the directory does not exist yet: ENOENT
  EXPECT_TRUE(w.err.starts_with("mesa: ENOENT: ")) << w;
  ASSERT_EQ(Mesa("fs mkdir " + m.id + " /data/notes/deep -p").code, 0);
  w = Mesa("fs write " + m.id + " /data/notes/new.txt --data " + Q("first line\n"));
  ASSERT_EQ(w.code, 0) << w;
  EXPECT_EQ(w.out, "wrote 11 bytes to /data/notes/new.txt (size 11)\n");
  Result a = Mesa("fs write " + m.id + " data/notes/new.txt --append --data " + Q("second\n") + " --json");
  ASSERT_EQ(a.code, 0) << a;
  EXPECT_EQ(a.Json()["size"], 18);
  ASSERT_EQ(Mesa("fs write " + m.id + " /data/blob.copy --from " + Q(Local("blob.copy", binary_))).code, 0);
  ASSERT_EQ(Mesa("fs chmod " + m.id + " /data/blob.copy +x").code, 0);
  ASSERT_EQ(Mesa("fs mv " + m.id + " /data/text.txt /data/renamed.txt").code, 0);
  ASSERT_EQ(Mesa("fs rm " + m.id + " /data/dir -r").code, 0);
  EXPECT_EQ(Mesa("fs rm " + m.id + " /data/ghost").code, 6);
  EXPECT_EQ(Mesa("fs rm " + m.id + " /data/ghost -f").code, 0);
  // The kernel mount sees the same overlay at once.
  EXPECT_EQ(ReadFile(m.path + "/data/notes/new.txt"), "first line\nsecond\n");
  EXPECT_FALSE(fsys::exists(m.path + "/data/text.txt"));

  // Read-only repos and cross-repo renames are refused.
  Result ro = Mesa("fs write " + m.id + " /other/x --data y");
  EXPECT_EQ(ro.code, 3) << ro;
  EXPECT_TRUE(ro.err.starts_with("mesa: EROFS: ")) << ro;
  Result into_ro = Mesa("fs mv " + m.id + " /data/renamed.txt /other/renamed.txt");
  EXPECT_TRUE(into_ro.err.starts_with("mesa: EROFS: ")) << into_ro;

  ASSERT_EQ(Mesa("fs flush " + m.id + " data").code, 0);
  std::string working = Mesa("fs changes current " + m.id + " data --json").Json().value("change_id", "");
  EXPECT_NE(working, c1_);  // forked on the first write
  EXPECT_EQ(Mesa("bookmarks get data main --json").Json().value("change_id", ""), c1_);  // main stays
  Result served = Mesa("content get data notes/new.txt --change " + working);
  EXPECT_EQ(served.out, "first line\nsecond\n") << served;
  Result blob = Mesa("content get data blob.copy --change " + working);
  EXPECT_TRUE(blob.out == binary_) << blob.out.size();
  Result gone = Mesa("content get data text.txt --change " + working);
  EXPECT_EQ(gone.code, 6) << gone;

  Result listed = Mesa("fs changes list " + m.id + " data");
  ASSERT_EQ(listed.code, 0) << listed;
  EXPECT_NE(listed.out.find(working), std::string::npos) << listed;
  EXPECT_NE(listed.out.find(c1_), std::string::npos) << listed;

  // Bookmarks at the working change; a new change on main; back to the first by bookmark.
  Result bc = Mesa("fs bookmarks create " + m.id + " data wip");
  ASSERT_EQ(bc.code, 0) << bc;
  EXPECT_NE(bc.out.find("change_id: " + working), std::string::npos) << bc;
  EXPECT_EQ(Mesa("fs bookmarks create " + m.id + " data wip").code, 7);
  Result fresh = Mesa("fs changes new " + m.id + " data --bookmark main -m " + Q("second try") + " --json");
  ASSERT_EQ(fresh.code, 0) << fresh;
  std::string second = fresh.Json().value("change_id", "");
  EXPECT_NE(second, working);
  EXPECT_EQ(ReadFile(m.path + "/data/text.txt"), "hello, mount\n");  // the view switched to main's tree
  EXPECT_FALSE(fsys::exists(m.path + "/data/notes"));
  ASSERT_EQ(Mesa("fs bookmarks move " + m.id + " data wip --change " + second).code, 0);
  Result bl = Mesa("fs bookmarks list " + m.id + " data --json");
  bool moved = false;
  const json bookmarks = bl.Json();
  for (const auto& b : bookmarks["items"]) moved = moved || (b["name"] == "wip" && b["change_id"] == second);
  EXPECT_TRUE(moved) << bl << "\nwanted wip at " << second;
  ASSERT_EQ(Mesa("fs changes edit " + m.id + " data --change " + working).code, 0);
  EXPECT_EQ(ReadFile(m.path + "/data/notes/new.txt"), "first line\nsecond\n");

  EXPECT_EQ(Mesa("fs changes jump " + m.id + " data").code, 2);
  EXPECT_EQ(Mesa("fs changes edit " + m.id + " data").code, 2);
  EXPECT_EQ(Mesa("fs chmod " + m.id + " /data/blob.copy 9z").code, 2);
  EXPECT_EQ(Mesa("fs write " + m.id + " /data/x --data a --from b").code, 2);
}

}  // namespace
}  // namespace mesa::testing
