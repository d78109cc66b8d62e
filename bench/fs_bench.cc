// fs_bench: what reading and writing files through a mesad FUSE mount costs. Every figure that
// has a natural baseline is measured next to it in the same run (git clone of the same repo, the
// same tree or file on tmpfs), so the results read as ratios. See bench/README.md.
//
//   fs_bench [--quick] [--runs N] [--server PATH] [--mesad PATH] [--out FILE.json]
//            [--tmp DIR] [--shm DIR]
//
// It starts its own mesa-server (init on a fresh store, serve on a free loopback port) and its
// own mesad in remote mode against it, logs in with the server's admin key, seeds repos straight
// into the server's store (server::Store, as the FUSE integration tests do) and measures:
//   read path:  (a) cold mount + read of one file vs `git clone file://` + read of that file;
//               (b) warm find / ls -lR / grep -r over a 10k-file tree vs the tree on tmpfs;
//               (c) a 1 GiB file from the disk cache with a cold page cache, and hot, vs tmpfs;
//               (d) warm stat() latency of every file vs tmpfs;
//   write path: (e) untar of the 10k-file tree into an rw mount vs into tmpfs;
//               (f) a 1 GiB file written with 1 MiB writes (+ close) vs tmpfs;
//               (g) close() -> confirmed on the server for 100 small files: the Workspace Flush
//                   RPC, and the idle-triggered upload seen by polling the content API.
// Must run as root (mesad mounts FUSE; the cold read drops the page cache).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mesa/client.h"
#include "nlohmann/json.hpp"
#include "rest/change_id.h"
#include "server/store/store.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace dv1 = ::mesa::daemon::v1;

constexpr const char* kOrg = "acme";
constexpr const char* kNeedle = "NEEDLE_fs_bench";  // '_' never occurs in the generated text
constexpr size_t kMiB = size_t{1} << 20;
constexpr long kTmpfsMagic = 0x01021994;

// ---------------------------------------------------------------------------------------------
// Process-wide cleanup: children (mesad instances, then mesa-server), mounts left behind, and
// the temp directories go away on every exit path.

std::mutex g_cleanup_mu;
std::vector<pid_t> g_children;  // in start order; stopped in reverse
std::vector<std::string> g_temp_dirs;
bool g_keep_temp = false;

bool WaitExit(pid_t pid, int seconds) {
  auto give_up = Clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// SIGTERM first (mesad flushes and unmounts; it drains RPCs for up to 10 s), SIGKILL after
// `grace_s`.
void StopChild(pid_t pid, int grace_s) {
  kill(pid, SIGTERM);
  if (!WaitExit(pid, grace_s)) {
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
  }
}

void ForgetChild(pid_t pid) {
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  g_children.erase(std::remove(g_children.begin(), g_children.end(), pid), g_children.end());
}

std::string Unescape(const std::string& s) {  // /proc/self/mountinfo escapes ' ', '\t', '\n', '\\' as \ooo
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Mount points at or below `prefix` (deepest first).
std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    point = Unescape(point);
    if (point == prefix || point.rfind(prefix + "/", 0) == 0) out.push_back(point);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

// Lazily detaches whatever is still mounted below `prefix`; returns what it detached.
std::vector<std::string> DetachMountsUnder(const std::string& prefix) {
  std::vector<std::string> detached;
  for (const auto& point : MountsUnder(prefix)) {
    if (umount2(point.c_str(), MNT_DETACH) == 0) detached.push_back(point);
  }
  return detached;
}

void Cleanup() {
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  for (auto it = g_children.rbegin(); it != g_children.rend(); ++it) StopChild(*it, 15);
  g_children.clear();
  for (const auto& dir : g_temp_dirs) {
    // Never remove_all through a live FUSE mount: that would delete files in a repo.
    for (const auto& point : DetachMountsUnder(dir)) std::cerr << "fs_bench: detached a leftover mount " << point << "\n";
    if (!MountsUnder(dir).empty()) {
      std::cerr << "fs_bench: " << dir << " still has mounts; not removed\n";
      continue;
    }
    if (g_keep_temp) {
      std::cerr << "fs_bench: kept " << dir << "\n";
      continue;
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  g_temp_dirs.clear();
}

[[noreturn]] void Die(const std::string& message) {
  static std::atomic<bool> dying{false};
  if (dying.exchange(true)) {
    for (;;) pause();
  }
  std::cerr << "fs_bench: " << message << std::endl;
  Cleanup();
  std::_Exit(1);
}

std::string MakeTempDir(const std::string& parent) {
  std::string tmpl = parent + "/fs_bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) Die("mkdtemp in " + parent + ": " + strerror(errno));
  chmod(tmpl.c_str(), 0755);
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  g_temp_dirs.push_back(tmpl);
  return tmpl;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, format);
  vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string LastLine(const std::string& text) {
  std::string t = TrimRight(text);
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("create " + path + ": " + strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      throw std::runtime_error("write " + path + ": " + strerror(e));
    }
    done += static_cast<size_t>(w);
  }
  if (close(fd) != 0) throw std::runtime_error("close " + path + ": " + strerror(errno));
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// xorshift64*: deterministic, fast, incompressible.
struct Rng {
  uint64_t x;
  explicit Rng(uint64_t seed) : x((seed * 0x9E3779B97F4A7C15ull) | 1) {}
  uint64_t Next() {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545F4914F6CDD1Dull;
  }
};

void FillRandom(char* p, size_t n, uint64_t seed) {
  Rng rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng.Next();
    memcpy(p + i, &v, 8);
  }
  if (i < n) {
    uint64_t v = rng.Next();
    memcpy(p + i, &v, n - i);
  }
}

// Printable text (64 symbols, no '_'): grep has to scan it as text, git compresses it a bit.
std::string RandomText(size_t n, uint64_t seed) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .";
  std::string s(n, '\0');
  Rng rng(seed);
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i % 8 == 0) v = rng.Next();
    s[i] = kAlphabet[(v >> ((i % 8) * 8)) & 63];
    if (i % 72 == 71) s[i] = '\n';
  }
  if (n) s[n - 1] = '\n';
  return s;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];  // nearest rank
}
double Median(const std::vector<double>& v) { return Percentile(v, 0.5); }

std::string LoadAvg() { return TrimRight(ReadAll("/proc/loadavg")); }

// utime + stime of a process in seconds (daemon CPU per scenario).
double CpuSeconds(pid_t pid) {
  std::string stat = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return NAN;
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// ---------------------------------------------------------------------------------------------
// Subprocesses. posix_spawn (this process has gRPC threads); stdout (and stderr unless
// merge_stderr is false) go to one pipe that is read to EOF. `ms` is spawn to reaped.

struct ProcResult {
  int status = -1;
  std::string out;
  double seconds = 0;
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

ProcResult RunProcess(const std::vector<std::string>& argv, bool merge_stderr = true) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) Die(std::string("pipe2: ") + strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  if (merge_stderr) posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGHUP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ProcResult result;
  pid_t pid = -1;
  Clock::time_point t0 = Clock::now();
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    result.status = 127 << 8;
    result.out = "cannot run " + argv[0] + ": " + strerror(rc);
    return result;
  }
  char buf[16384];
  for (;;) {
    ssize_t r = read(out[0], buf, sizeof buf);
    if (r > 0) result.out.append(buf, static_cast<size_t>(r));
    else if (r == 0 || errno != EINTR) break;
  }
  close(out[0]);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  result.seconds = Seconds(Clock::now() - t0);
  return result;
}

ProcResult Shell(const std::string& command) { return RunProcess({"/bin/sh", "-c", command}); }

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool OnPath(const std::string& tool) { return Shell("command -v " + tool + " >/dev/null 2>&1").ok(); }

// A long-running child (mesa-server serve, mesad): stdout and stderr to `log`, SIGTERM when the
// benchmark's main thread dies (even by kill -9). Everything is prepared before fork, so the
// child only makes async-signal-safe calls (this process may have threads by then).
pid_t StartChild(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || null < 0) Die("cannot open " + log + ": " + strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) Die(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, nullptr);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fd);
  close(null);
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  g_children.push_back(pid);
  return pid;
}

bool Exited(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return false;
  ForgetChild(pid);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Options.

struct Options {
  std::string server = MESA_SERVER_BIN;
  std::string mesad = MESAD_BIN;
  std::string out = MESA_SOURCE_DIR "/bench/results/fs_bench.json";
  std::string tmp;  // work dir parent: a disk filesystem (the disk cache lives there)
  std::string shm = "/dev/shm";
  bool quick = false;
  bool keep = false;  // keep the work directories (logs, store) after the run
  int runs = 0;  // 0: 5, or 3 with --quick

  // Derived from --quick.
  int top = 10, sub = 10, per_dir = 100;  // top x sub leaf dirs of per_dir files
  uint64_t big_bytes = uint64_t{1} << 30;
  int cold_rounds = 3;
  int write_rounds = 3;
  int confirm_rounds = 10;
  int files() const { return top * sub * per_dir; }
};

constexpr const char* kUsage =
    "usage: fs_bench [--quick] [--runs N] [--server PATH] [--mesad PATH] [--out FILE.json]\n"
    "                [--tmp DIR] [--shm DIR] [--keep]\n"
    "  --quick    small sizes for a sanity run: 1,000 files, 64 MiB instead of 10,000 files, 1 GiB\n"
    "  --runs     measured runs per tree-walk and stat scenario (median; default 5, 3 with --quick)\n"
    "  --server   mesa-server binary (default: the one from this build)\n"
    "  --mesad    mesad binary (default: the one from this build)\n"
    "  --out      JSON results file; its directory is created (default: bench/results/fs_bench.json)\n"
    "  --tmp      parent of the work directory: store, mesad state and disk cache, git clones; must be\n"
    "             a disk filesystem for the cold-page-cache read (default: $TMPDIR or /tmp)\n"
    "  --shm      parent of the tmpfs baselines (default: /dev/shm)\n"
    "  --keep     keep the work directories (store, mesad logs and state) instead of removing them\n";

Options ParseOptions(int argc, char** argv) {
  Options o;
  const char* tmp_env = getenv("TMPDIR");
  o.tmp = tmp_env && *tmp_env ? tmp_env : "/tmp";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a == "--quick") {
      o.quick = true;
      continue;
    }
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    std::string key = a, value;
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      key = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "fs_bench: " << a << " needs a value\n" << kUsage;
      std::exit(2);
    }
    try {
      if (key == "--server") o.server = value;
      else if (key == "--mesad") o.mesad = value;
      else if (key == "--out") o.out = value;
      else if (key == "--tmp") o.tmp = value;
      else if (key == "--shm") o.shm = value;
      else if (key == "--runs") o.runs = std::stoi(value);
      else {
        std::cerr << "fs_bench: unknown flag " << key << "\n" << kUsage;
        std::exit(2);
      }
    } catch (const std::exception&) {
      std::cerr << "fs_bench: bad value for " << key << ": " << value << "\n";
      std::exit(2);
    }
  }
  if (o.quick) {
    o.top = 2;
    o.sub = 5;
    o.big_bytes = 64 * kMiB;
    o.cold_rounds = 2;
    o.write_rounds = 2;
    o.confirm_rounds = 3;
  }
  if (o.runs == 0) o.runs = o.quick ? 3 : 5;
  if (o.runs < 1 || o.runs > 1000) {
    std::cerr << "fs_bench: --runs must be 1..1000\n";
    std::exit(2);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// The generated tree: top x sub leaf directories pNN/mNN/src/, per_dir text files of 1-8 KiB
// each; every 97th file holds the grep needle.

struct TreeFile {
  std::string path;
  std::string content;
};

struct Tree {
  std::vector<TreeFile> files;
  uint64_t bytes = 0;
  int needles = 0;
  size_t probe = 0;  // index of the file read in (a)
};

Tree MakeTree(const Options& o) {
  Tree t;
  Rng sizes(77);
  int index = 0;
  for (int a = 0; a < o.top; ++a) {
    for (int b = 0; b < o.sub; ++b) {
      for (int f = 0; f < o.per_dir; ++f, ++index) {
        TreeFile file;
        file.path = Fmt("p%02d/m%02d/src/f%03d.txt", a, b, f);
        size_t size = 1024 + static_cast<size_t>(sizes.Next() % (7 * 1024 + 1));
        file.content = RandomText(size, 1000 + static_cast<uint64_t>(index));
        if (index % 97 == 0) {
          memcpy(file.content.data() + size / 2, kNeedle, strlen(kNeedle));
          ++t.needles;
        }
        if (a == o.top / 2 && b == o.sub / 2 && f == o.per_dir / 2) t.probe = t.files.size();
        t.bytes += file.content.size();
        t.files.push_back(std::move(file));
      }
    }
  }
  return t;
}

void MaterializeTree(const Tree& t, const std::string& root) {
  for (const auto& f : t.files) {
    fs::path p = fs::path(root) / f.path;
    fs::create_directories(p.parent_path());
    WriteAll(p.string(), f.content);
  }
}

// Byte-exact comparison of every `stride`-th file under `root` with the generated tree.
void VerifySample(const Tree& t, const std::string& root, size_t stride, const std::string& what) {
  for (size_t i = 0; i < t.files.size(); i += stride) {
    if (ReadAll(root + "/" + t.files[i].path) != t.files[i].content)
      throw std::runtime_error(what + ": " + t.files[i].path + " differs from the generated bytes");
  }
}

// ---------------------------------------------------------------------------------------------
// mesa-server: init, seed through server::Store (before serving), serve.

struct Server {
  int port = 0;
  pid_t pid = -1;
  std::string key, version, data_dir, log;
  std::string api_url() const { return Fmt("http://127.0.0.1:%d/v1", port); }
};

struct SeededRepo {
  std::string id;
  std::string change_id;
};

struct Seed {
  std::map<std::string, SeededRepo> repos;
  double seconds = 0;
};

Server InitServer(const std::string& bin, const std::string& dir) {
  Server s;
  s.data_dir = dir + "/server-store";
  s.log = dir + "/server.log";
  ProcResult version = RunProcess({bin, "--version"});
  if (!version.ok()) Die("cannot run " + bin + " --version (use --server PATH): " + version.out);
  s.version = TrimRight(version.out);
  ProcResult init = RunProcess({bin, "init", "--data", s.data_dir, "--org", kOrg}, /*merge_stderr=*/false);
  if (!init.ok()) Die(bin + " init failed:\n" + init.out);
  s.key = LastLine(init.out);
  if (s.key.empty()) Die("mesa-server init printed no API key");
  return s;
}

Seed SeedStore(const Server& server, const Options& o, const Tree& tree, const std::string& big_tmpfs_path) {
  namespace srv = mesa::server;
  Seed seed;
  Clock::time_point t0 = Clock::now();
  auto store = srv::Store::Open(server.data_dir);
  if (!store.ok()) Die("open the store: " + std::string(store.status().message()));
  auto org = (*store)->GetOrgBySlug(kOrg);
  if (!org.ok()) Die("org " + std::string(kOrg) + ": " + std::string(org.status().message()));
  auto make = [&](const std::string& name, std::vector<srv::FileOp> files) {
    srv::CreateRepoParams rp;
    rp.name = name;
    auto repo = (*store)->CreateRepo(*org, rp);
    if (!repo.ok()) Die("create repo " + name + ": " + std::string(repo.status().message()));
    srv::CreateChangeParams cp;
    cp.base_change_id = std::string(mesa::rest::kVirtualRootChangeId);
    cp.message = "fs_bench seed";
    cp.files = std::move(files);
    srv::Signature who{"fs_bench", "fs_bench@example.com", 0, 0};
    auto change = (*store)->CreateChange(*repo, cp, who);
    if (!change.ok()) Die("seed " + name + ": " + std::string(change.status().message()));
    if (!(*store)->MoveBookmark(*repo, "main", change->id).ok()) {
      auto created = (*store)->CreateBookmark(*repo, "main", change->id);
      if (!created.ok()) Die("bookmark main of " + name + ": " + std::string(created.status().message()));
    }
    seed.repos[name] = {repo->id, change->id};
  };
  auto op = [](const std::string& path, std::string content) {
    srv::FileOp f;
    f.path = path;
    f.content = std::move(content);
    return f;
  };
  {
    std::vector<srv::FileOp> files;
    files.reserve(tree.files.size());
    for (const auto& f : tree.files) files.push_back(op(f.path, f.content));
    make("tree", std::move(files));
  }
  {
    // Incompressible, so neither git's zlib nor any transfer encoding shrinks it.
    std::string big(o.big_bytes, '\0');
    FillRandom(big.data(), big.size(), 4242);
    WriteAll(big_tmpfs_path, big);
    std::vector<srv::FileOp> files;
    files.push_back(op("big.bin", std::move(big)));
    make("big", std::move(files));
  }
  std::vector<std::string> writable = {"wuntar", "wsmall"};
  for (int r = 0; r < o.write_rounds; ++r) writable.push_back(Fmt("wbig%d", r + 1));
  for (const auto& name : writable) {
    std::vector<srv::FileOp> files;
    files.push_back(op("README", "fs_bench write target\n"));
    make(name, std::move(files));
  }
  seed.seconds = Seconds(Clock::now() - t0);
  return seed;
}

void Serve(Server& s, const std::string& bin) {
  // Port 0: the server binds a free port and logs "listening on 127.0.0.1:PORT"; it accepts
  // connections from then on.
  s.pid = StartChild({bin, "serve", "--data", s.data_dir, "--listen", "127.0.0.1:0", "--access-log", "off"}, s.log);
  auto give_up = Clock::now() + std::chrono::seconds(30);
  while (s.port == 0) {
    std::string text = ReadAll(s.log);
    size_t at = text.find("listening on ");
    if (at != std::string::npos) {
      size_t end = text.find_first_of(" \n", at + 13);
      if (end != std::string::npos) {
        std::string address = text.substr(at + 13, end - at - 13);
        s.port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
      }
    }
    if (s.port) break;
    if (Exited(s.pid)) Die("mesa-server serve exited early:\n" + Tail(text));
    if (Clock::now() > give_up) Die("mesa-server did not start within 30 s:\n" + Tail(text));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---------------------------------------------------------------------------------------------
// mesad, remote mode.

struct Daemon {
  pid_t pid = -1;
  std::string dir, socket, log, runtime, cache, version;
  std::unique_ptr<mesa::Client> client;
};

mesa::ClientOptions ClientOptionsFor(const Daemon& d) {
  mesa::ClientOptions o;
  o.socket = d.socket;
  o.timeout = std::chrono::minutes(15);
  return o;
}

// Starts mesad with everything under `dir`, waits for its socket and logs in (make_default).
void StartDaemon(Daemon& d, const std::string& bin, const std::string& dir, const Server& server) {
  d.dir = dir;
  fs::create_directories(dir);
  d.socket = dir + "/mesad.sock";
  d.log = dir + "/mesad.log";
  d.runtime = dir + "/run";
  d.cache = dir + "/cache";
  if (d.version.empty()) {
    ProcResult version = RunProcess({bin, "--version"});
    if (!version.ok()) Die("cannot run " + bin + " --version (use --mesad PATH): " + version.out);
    d.version = TrimRight(version.out);
  }
  d.pid = StartChild({bin, "--socket", d.socket, "--state-dir", dir + "/state", "--cache-dir", d.cache, "--runtime-dir",
                      d.runtime, "--api-url", server.api_url(), "--log-level", "warning"},
                     d.log);
  auto give_up = Clock::now() + std::chrono::seconds(30);
  std::string last_error;
  for (;;) {
    if (Exited(d.pid)) Die("mesad exited early:\n" + Tail(ReadAll(d.log)));
    if (fs::exists(d.socket)) {
      try {
        mesa::Client probe(ClientOptionsFor(d));
        probe.sessions().list();  // daemon-local
        break;
      } catch (const std::exception& e) {
        last_error = e.what();
      }
    }
    if (Clock::now() > give_up)
      Die("mesad did not answer on " + d.socket + " within 30 s (" + last_error + "):\n" + Tail(ReadAll(d.log)));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  d.client = std::make_unique<mesa::Client>(ClientOptionsFor(d));
  dv1::LoginRequest req;
  req.set_api_key(server.key);
  req.set_make_default(true);
  req.set_user_agent("fs_bench");
  try {
    d.client->sessions().login(req);
  } catch (const std::exception& e) {
    Die(std::string("login to mesad with the server's key failed: ") + e.what() + "\n" + Tail(ReadAll(d.log)));
  }
}

// Unmounts through the client, stops mesad, detaches anything it left behind. Returns notes.
std::vector<std::string> StopDaemon(Daemon& d) {
  std::vector<std::string> notes;
  if (d.pid < 0) return notes;
  if (d.client) {
    try {
      for (const auto& m : d.client->mounts().list()) {
        try {
          d.client->mounts().unmount(m.id());
        } catch (const std::exception& e) {
          notes.push_back("unmount " + m.id() + ": " + e.what());
        }
      }
    } catch (const std::exception& e) {
      notes.push_back(std::string("list mounts: ") + e.what());
    }
  }
  d.client.reset();
  StopChild(d.pid, 20);
  ForgetChild(d.pid);
  d.pid = -1;
  for (const auto& point : DetachMountsUnder(d.runtime)) notes.push_back("detached leftover mount " + point);
  return notes;
}

dv1::MountInfo Mount(Daemon& d, const std::vector<std::string>& repos, const std::string& cache_dir = "",
                     const std::string& mode = "rw") {
  dv1::MountRequest req;
  for (const auto& name : repos) {
    auto* r = req.add_repos();
    r->set_name(name);
    r->set_mode(mode);
  }
  if (!cache_dir.empty()) req.mutable_disk_cache()->set_path(cache_dir);
  dv1::MountInfo info = d.client->mounts().mount(req);
  std::string names;
  for (const auto& name : repos) names += (names.empty() ? "" : ",") + name;
  std::cerr << "  mounted " << names << " as " << info.id() << "\n";
  return info;
}

// Unmounts when it goes out of scope, also when a scenario throws: a mount left behind would
// hold mesad's overlay descriptors (one per written file) for the rest of the run.
struct MountGuard {
  Daemon& d;
  std::string id;
  ~MountGuard() {
    if (id.empty() || !d.client) return;
    try {
      d.client->mounts().unmount(id);
    } catch (const std::exception& e) {
      std::cerr << "  note: unmount " << id << ": " << e.what() << "\n";
    }
  }
};

std::string StatusText(const grpc::Status& st) {
  return Fmt("%d %s", static_cast<int>(st.error_code()), st.error_message().c_str());
}

// Workspace.Flush: returns once every pending write of the mount is uploaded (or fails).
grpc::Status FlushMount(Daemon& d, const std::string& mount, int timeout_ms) {
  auto stub = dv1::Workspace::NewStub(d.client->channel());
  dv1::FlushRequest req;
  req.set_mount(mount);
  req.set_timeout_ms(timeout_ms);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms + 60000));
  dv1::Empty out;
  return stub->Flush(&ctx, req, &out);
}

std::string CurrentChange(Daemon& d, const std::string& mount, const std::string& repo) {
  auto stub = dv1::Workspace::NewStub(d.client->channel());
  dv1::ChangesCurrentRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  dv1::ChangeRef out;
  auto st = stub->ChangesCurrent(&ctx, req, &out);
  if (!st.ok()) throw std::runtime_error("ChangesCurrent: " + StatusText(st));
  return out.change_id();
}

// ---------------------------------------------------------------------------------------------
// Results.

enum class Better { kLower, kHigher };

struct Row {
  std::string key;     // JSON name
  std::string label;   // table
  std::string unit;    // s | ms | us | MB/s | files/s
  Better better = Better::kLower;
  std::string description;
  std::vector<double> samples;  // mesad side
  double value = NAN;           // mesad side: median (or the percentile the row names)
  std::string baseline_name;    // empty: no baseline
  std::string baseline_description;
  std::vector<double> baseline_samples;
  double baseline = NAN;
  std::string target;  // human text, empty: none
  std::function<bool(const Row&)> met;
  std::string error;
  json extra = json::object();

  // mesad time ÷ baseline time (for rates: baseline rate ÷ mesad rate): > 1 = slower via mesad.
  double Slowdown() const {
    if (std::isnan(value) || std::isnan(baseline) || value <= 0 || baseline <= 0) return NAN;
    return better == Better::kLower ? value / baseline : baseline / value;
  }
  std::optional<bool> Met() const {
    if (!met || !error.empty() || std::isnan(value)) return std::nullopt;
    return met(*this);
  }
};

json Num(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

std::string FormatValue(double v, const std::string& unit) {
  if (std::isnan(v)) return "-";
  if (unit == "s") return v < 1 ? Fmt("%.1f ms", v * 1000) : Fmt("%.2f s", v);
  if (unit == "ms") return Fmt("%.1f ms", v);
  if (unit == "us") return Fmt("%.2f us", v);
  if (unit == "MB/s") return Fmt("%.0f MB/s", v);
  if (unit == "files/s") return Fmt("%.0f files/s", v);
  return Fmt("%.3g %s", v, unit.c_str());
}

Row NewRow(std::string key, std::string label, std::string unit, Better better, std::string description) {
  Row r;
  r.key = std::move(key);
  r.label = std::move(label);
  r.unit = std::move(unit);
  r.better = better;
  r.description = std::move(description);
  return r;
}

json g_scenario_loadavg = json::object();  // /proc/loadavg as each scenario starts

// Runs a scenario; a failure marks its rows (or adds one) with the error and the run goes on.
void RunScenario(const std::string& name, std::vector<Row>& rows, const std::function<void(std::vector<Row>&)>& body,
                 Daemon* daemon, json& cpu) {
  std::cerr << "[" << name << "]  load average " << LoadAvg() << std::endl;
  g_scenario_loadavg[name] = LoadAvg();
  size_t first = rows.size();
  double cpu0 = daemon && daemon->pid > 0 ? CpuSeconds(daemon->pid) : NAN;
  try {
    body(rows);
  } catch (const std::exception& e) {
    std::string message = e.what();
    std::cerr << "  FAILED: " << message << std::endl;
    bool marked = false;
    for (size_t i = first; i < rows.size(); ++i) {
      if (std::isnan(rows[i].value)) {
        rows[i].error = message;
        marked = true;
      }
    }
    if (!marked) {
      Row r = NewRow(name, name, "", Better::kLower, "");
      r.error = message;
      rows.push_back(std::move(r));
    }
  }
  if (daemon && daemon->pid > 0) cpu[name] = Num(CpuSeconds(daemon->pid) - cpu0);
}

// ---------------------------------------------------------------------------------------------
// Measurement primitives.

struct Buffer {
  char* data = nullptr;
  size_t size = 0;
  explicit Buffer(size_t n) : size(n) {
    if (posix_memalign(reinterpret_cast<void**>(&data), 4096, n) != 0) Die("out of memory");
    memset(data, 0, n);  // fault the pages in before anything is timed
  }
  ~Buffer() { free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// open + 1 MiB read()s to EOF + close; returns seconds, throws on error or a short file.
double TimedRead(const std::string& path, Buffer& buf, uint64_t expect) {
  Clock::time_point t0 = Clock::now();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + strerror(errno));
  uint64_t total = 0;
  for (;;) {
    ssize_t r = read(fd, buf.data, std::min(buf.size, kMiB));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      throw std::runtime_error("read " + path + ": " + strerror(e));
    }
    if (r == 0) break;
    total += static_cast<uint64_t>(r);
  }
  close(fd);
  double s = Seconds(Clock::now() - t0);
  if (total != expect) throw std::runtime_error(Fmt("%s: read %llu bytes, want %llu", path.c_str(),
                                                    static_cast<unsigned long long>(total), static_cast<unsigned long long>(expect)));
  return s;
}

// open(O_CREAT|O_TRUNC) + 1 MiB write()s from `src` (cycled) + close; returns seconds.
double TimedWrite(const std::string& path, const Buffer& src, uint64_t total) {
  Clock::time_point t0 = Clock::now();
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("create " + path + ": " + strerror(errno));
  uint64_t done = 0;
  while (done < total) {
    size_t at = static_cast<size_t>(done % src.size);
    size_t n = static_cast<size_t>(std::min<uint64_t>({kMiB, total - done, src.size - at}));
    ssize_t w = write(fd, src.data + at, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      throw std::runtime_error(Fmt("write %s at %llu: %s", path.c_str(), static_cast<unsigned long long>(done), strerror(e)));
    }
    done += static_cast<uint64_t>(w);
  }
  if (close(fd) != 0) throw std::runtime_error("close " + path + ": " + strerror(errno));
  return Seconds(Clock::now() - t0);
}

// Byte-exact comparison of two files (the mount against the tmpfs copy), 1 MiB at a time.
void CompareFiles(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) throw std::runtime_error("cannot open " + a + " or " + b);
  std::vector<char> ba(kMiB), bb(kMiB);
  uint64_t offset = 0;
  for (;;) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    std::streamsize na = fa.gcount(), nb = fb.gcount();
    if (na != nb || memcmp(ba.data(), bb.data(), static_cast<size_t>(na)) != 0)
      throw std::runtime_error(Fmt("%s differs from %s near offset %llu", a.c_str(), b.c_str(), static_cast<unsigned long long>(offset)));
    if (na == 0) return;
    offset += static_cast<uint64_t>(na);
  }
}

// echo 3 > /proc/sys/vm/drop_caches after sync. Empty on success, else why not.
std::string DropCaches() {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return std::string("open /proc/sys/vm/drop_caches: ") + strerror(errno);
  ssize_t w = write(fd, "3\n", 2);
  int e = errno;
  close(fd);
  if (w != 2) return std::string("write /proc/sys/vm/drop_caches: ") + strerror(e);
  return "";
}

double NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Per-call latency (µs) of stat() (or statx with AT_STATX_FORCE_SYNC) of every path, once.
void StatPass(const std::vector<std::string>& paths, bool force_sync, std::vector<double>& out) {
  struct stat st;
  struct statx stx;
  for (const auto& p : paths) {
    double t0 = NowUs();
    int rc = force_sync ? statx(AT_FDCWD, p.c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx) : stat(p.c_str(), &st);
    double t1 = NowUs();
    if (rc != 0) throw std::runtime_error((force_sync ? "statx " : "stat ") + p + ": " + strerror(errno));
    out.push_back(t1 - t0);
  }
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

struct Bench {
  Options opt;
  std::string work, shm;
  Server server;
  Tree tree;
  Seed seed;
  std::string tmpfs_tree, big_tmpfs, tarball;
  Daemon main;
  std::string grep_tool;  // "rg" or "grep"
  std::string drop_caches_error;
  json cpu = json::object();
  std::vector<Row> rows;

  std::string ProbePath() const { return tree.files[tree.probe].path; }

  // (a) cold mount + read one file vs git clone file:// + read the same file.
  void ColdMount(std::vector<Row>& out) {
    Row r = NewRow("a_cold_mount_read", "(a) cold mount + read 1 file", "s", Better::kLower,
                   "fresh mesad (new state and cache dirs), Mounts.Mount of repo `tree` through the client library, then "
                   "open + read + close of " + ProbePath() + " through the mount; mesad start and login are not timed");
    r.baseline_name = "git clone";
    r.baseline_description = "git clone -q -b main file://STORE/repos/ID.git DEST (the same repo, same store), then "
                             "read the same file from the checkout";
    std::vector<double> mount_rpc, read_only;
    const std::string& want = tree.files[tree.probe].content;
    std::string git_url = "file://" + server.data_dir + "/repos/" + seed.repos.at("tree").id + ".git";
    for (int round = 0; round < opt.cold_rounds; ++round) {
      auto git_side = [&] {
        std::string dest = work + Fmt("/clone-%d", round);
        Clock::time_point t0 = Clock::now();
        ProcResult clone = RunProcess({"git", "clone", "-q", "-b", "main", git_url, dest});
        if (!clone.ok()) throw std::runtime_error("git clone failed: " + Tail(clone.out, 600));
        std::string got = ReadAll(dest + "/" + ProbePath());
        double s = Seconds(Clock::now() - t0);
        if (got != want) throw std::runtime_error("git clone: wrong bytes for " + ProbePath());
        r.baseline_samples.push_back(s);
        std::error_code ec;
        fs::remove_all(dest, ec);
      };
      auto mesad_side = [&] {
        Daemon d;
        d.version = main.version;
        StartDaemon(d, opt.mesad, work + Fmt("/cold-mesad-%d", round), server);
        Clock::time_point t0 = Clock::now();
        dv1::MountInfo m = Mount(d, {"tree"});
        Clock::time_point t1 = Clock::now();
        std::string got = ReadAll(m.path() + "/tree/" + ProbePath());
        Clock::time_point t2 = Clock::now();
        bool right = got == want;
        auto notes = StopDaemon(d);
        for (const auto& n : notes) std::cerr << "  note: " << n << "\n";
        if (!right) throw std::runtime_error("mount: wrong bytes for " + ProbePath());
        r.samples.push_back(Seconds(t2 - t0));
        mount_rpc.push_back(Seconds(t1 - t0));
        read_only.push_back(Seconds(t2 - t1));
        std::error_code ec;
        fs::remove_all(d.dir, ec);
      };
      if (round % 2 == 0) {
        mesad_side();
        git_side();
      } else {
        git_side();
        mesad_side();
      }
      std::cerr << Fmt("  round %d: mount+read %.1f ms (Mount RPC %.1f ms), git clone+read %.1f ms\n", round + 1,
                       r.samples.back() * 1000, mount_rpc.back() * 1000, r.baseline_samples.back() * 1000);
    }
    r.value = Median(r.samples);
    r.baseline = Median(r.baseline_samples);
    r.extra = {{"rounds", opt.cold_rounds},
               {"mount_rpc_s", {{"median", Num(Median(mount_rpc))}, {"samples", mount_rpc}}},
               {"first_read_s", {{"median", Num(Median(read_only))}, {"samples", read_only}}},
               {"file", ProbePath()},
               {"file_bytes", want.size()}};
    out.push_back(std::move(r));
  }

  // (b) warm tree walks: the mount vs the same tree on tmpfs. The read path's figures come from
  // a ro mount; `writable` (rw mount: every close() is a FLUSH round trip, the flusher's upload
  // hint) runs only the content walks, quoted without a target.
  void TreeWalks(std::vector<Row>& out, const std::string& mount_tree, bool writable = false) {
    struct Walk {
      std::string key, label, command, expect;
    };
    // rg when installed (the tool; multithreaded), and grep -r always (single-threaded).
    std::vector<Walk> walks;
    if (!writable) {
      walks.push_back({"b_find", "(b) find . -type f | wc -l", "find . -type f | wc -l", std::to_string(tree.files.size())});
      walks.push_back({"b_ls_lR", "(b) ls -lR > /dev/null", "ls -lR > /dev/null", ""});
    }
    if (grep_tool == "rg")
      walks.push_back({"b_rg", "(b) rg -l NEEDLE | wc -l", std::string("rg -l ") + kNeedle + " . | wc -l",
                       std::to_string(tree.needles)});
    walks.push_back({"b_grep", "(b) grep -rl NEEDLE | wc -l", std::string("grep -rl ") + kNeedle + " . | wc -l",
                     std::to_string(tree.needles)});
    for (auto& w : walks) {
      if (writable) {
        w.key += "_rw";
        w.label += " (rw mount)";
      }
      Row r = NewRow(w.key, w.label, "s", Better::kLower,
                     "wall time of `sh -c 'cd ROOT && " + w.command + "'` with ROOT = the repo in a " +
                         (writable ? "rw" : "ro") + " mount; one warm-up run per side, then the median of the measured "
                         "runs, alternating sides");
      r.baseline_name = "tmpfs";
      r.baseline_description = "the same command over the same tree copied to " + opt.shm;
      if (!writable) {
        r.target = "<= 1.5x tmpfs";
        r.met = [](const Row& row) { return row.Slowdown() <= 1.5; };
      }
      auto run = [&](const std::string& root) {
        ProcResult p = Shell("cd " + Quote(root) + " && " + w.command);
        if (!p.ok()) throw std::runtime_error(w.command + " in " + root + " failed: " + Tail(p.out, 600));
        if (!w.expect.empty() && TrimRight(p.out) != w.expect)
          throw std::runtime_error(w.command + " in " + root + " printed " + TrimRight(p.out) + ", want " + w.expect);
        return p.seconds;
      };
      double first_mount = run(mount_tree);
      double first_tmpfs = run(tmpfs_tree);
      for (int i = 0; i < opt.runs; ++i) {
        if (i % 2 == 0) {
          r.samples.push_back(run(mount_tree));
          r.baseline_samples.push_back(run(tmpfs_tree));
        } else {
          r.baseline_samples.push_back(run(tmpfs_tree));
          r.samples.push_back(run(mount_tree));
        }
      }
      r.value = Median(r.samples);
      r.baseline = Median(r.baseline_samples);
      r.extra = {{"command", w.command}, {"warmup_run_s", {{"mesad", first_mount}, {"tmpfs", first_tmpfs}}}};
      std::cerr << Fmt("  %-28s mount %.3f s, tmpfs %.3f s (warm-up run: mount %.3f s, tmpfs %.3f s)\n", w.command.c_str(),
                       r.value, r.baseline, first_mount, first_tmpfs);
      out.push_back(std::move(r));
    }
  }

  // (d) warm stat() latency, and the forced daemon round trip as a diagnostic.
  void StatLatency(std::vector<Row>& out, const std::string& mount_tree) {
    std::vector<std::string> in_mount, on_tmpfs;
    for (const auto& f : tree.files) {
      in_mount.push_back(mount_tree + "/" + f.path);
      on_tmpfs.push_back(tmpfs_tree + "/" + f.path);
    }
    std::vector<double> warm_m, warm_t, sync_m, sync_t, scratch;
    StatPass(in_mount, false, scratch);  // warm-up: every entry and attribute in the kernel caches
    StatPass(on_tmpfs, false, scratch);
    for (int i = 0; i < opt.runs; ++i) {
      StatPass(in_mount, false, warm_m);
      StatPass(on_tmpfs, false, warm_t);
      StatPass(in_mount, true, sync_m);
      StatPass(on_tmpfs, true, sync_t);
    }
    std::string what = Fmt("%zu files x %d passes, per-call latency of ", tree.files.size(), opt.runs);
    auto make = [&](const std::string& key, const std::string& label, const std::string& desc, const std::vector<double>& m,
                    const std::vector<double>& t, double q, std::string target, std::function<bool(const Row&)> met) {
      Row r = NewRow(key, label, "us", Better::kLower, desc);
      r.value = Percentile(m, q);
      r.baseline = Percentile(t, q);
      r.baseline_name = "tmpfs";
      r.baseline_description = "the same calls on the same tree copied to " + opt.shm;
      r.target = std::move(target);
      r.met = std::move(met);
      r.extra = {{"calls", m.size()},
                 {"percentile", q},
                 {"mesad_us", {{"p50", Percentile(m, 0.5)}, {"p90", Percentile(m, 0.9)}, {"p99", Percentile(m, 0.99)}, {"max", Percentile(m, 1.0)}}},
                 {"tmpfs_us", {{"p50", Percentile(t, 0.5)}, {"p90", Percentile(t, 0.9)}, {"p99", Percentile(t, 0.99)}, {"max", Percentile(t, 1.0)}}}};
      out.push_back(std::move(r));
    };
    make("d_stat_p50", "(d) stat() warm, p50", what + "stat() (kernel attribute cache warm)", warm_m, warm_t, 0.5,
         "p50 <= 1.2x tmpfs (s9.1)", [](const Row& row) { return row.Slowdown() <= 1.2; });
    make("d_stat_p99", "(d) stat() warm, p99", what + "stat() (kernel attribute cache warm)", warm_m, warm_t, 0.99, "", nullptr);
    make("d_statx_sync_p50", "(d') statx FORCE_SYNC, p50",
         what + "statx(AT_STATX_FORCE_SYNC): one GETATTR round trip to mesad per call (diagnostic)", sync_m, sync_t, 0.5,
         "<= 15 us (s9.2)", [](const Row& row) { return row.value <= 15; });
    make("d_statx_sync_p99", "(d') statx FORCE_SYNC, p99",
         what + "statx(AT_STATX_FORCE_SYNC): one GETATTR round trip to mesad per call (diagnostic)", sync_m, sync_t, 0.99,
         "<= 60 us (s9.2)", [](const Row& row) { return row.value <= 60; });
    std::cerr << Fmt("  stat p50 %.2f us vs tmpfs %.2f us; statx FORCE_SYNC p50 %.2f us vs %.2f us\n", Percentile(warm_m, 0.5),
                     Percentile(warm_t, 0.5), Percentile(sync_m, 0.5), Percentile(sync_t, 0.5));
  }

  // (c) the big file: first read (from the server into the disk cache), then rounds of
  // [drop caches, cold read, hot read, tmpfs read].
  void BigRead(std::vector<Row>& out, const std::string& mount_big) {
    const double mb = static_cast<double>(opt.big_bytes) / 1e6;
    Buffer buf(kMiB);
    std::string size_label = opt.big_bytes >= (uint64_t{1} << 30) ? Fmt("%llu GiB", static_cast<unsigned long long>(opt.big_bytes >> 30))
                                                                   : Fmt("%llu MiB", static_cast<unsigned long long>(opt.big_bytes >> 20));
    Row first = NewRow("c_read_uncached", "(c) " + size_label + " read, not yet cached", "MB/s", Better::kHigher,
                       "first sequential read (1 MiB read() calls) through the mount: mesad fetches the blob from "
                       "mesa-server into its disk cache (diagnostic, no baseline)");
    first.samples.push_back(mb / TimedRead(mount_big, buf, opt.big_bytes));
    first.value = first.samples[0];
    std::cerr << Fmt("  first read (from the server): %.0f MB/s\n", first.value);
    CompareFiles(mount_big, big_tmpfs);

    Row cold = NewRow("c_read_cold", "(c) " + size_label + " read, disk cache, cold", "MB/s", Better::kHigher,
                      "sequential read (open, 1 MiB read() calls, close) through the mount right after sync + "
                      "echo 3 > /proc/sys/vm/drop_caches: the blob comes from mesad's disk cache on " + opt.tmp);
    Row hot = NewRow("c_read_hot", "(c) " + size_label + " read, hot (2nd read)", "MB/s", Better::kHigher,
                     "the same read again right after the cold one: the kernel page cache of the FUSE file");
    for (Row* r : {&cold, &hot}) {
      r->baseline_name = "tmpfs";
      r->baseline_description = "the same read of the same bytes in " + opt.shm;
    }
    cold.target = ">= 800 MB/s (s9.11)";
    cold.met = [](const Row& row) { return row.value >= 800; };
    hot.target = ">= 5000 MB/s (s9.10)";
    hot.met = [](const Row& row) { return row.value >= 5000; };
    // The disk's own ceiling for the cold read: the same bytes as a plain file next to mesad's
    // disk cache (same filesystem), read right after dropping the page cache.
    Row disk = NewRow("c_read_disk_cold", "(c) " + size_label + " plain file on disk, cold", "MB/s", Better::kHigher,
                      "diagnostic: the same bytes as a plain file in the work directory on " + opt.tmp +
                      " (the filesystem of mesad's disk cache), read the same way right after sync + drop_caches: "
                      "what the disk itself delivers to a cold read, without FUSE");
    std::string big_disk = work + "/big-disk.bin";
    fs::copy_file(big_tmpfs, big_disk, fs::copy_options::overwrite_existing);
    std::vector<double> tmpfs;
    std::string drop_error;
    for (int i = 0; i < opt.cold_rounds; ++i) {
      std::string e = DropCaches();
      if (!e.empty() && drop_error.empty()) {
        drop_error = e;
        std::cerr << "  WARNING: cannot drop the page cache (" << e << "); the 'cold' read is measured anyway\n";
      }
      cold.samples.push_back(mb / TimedRead(mount_big, buf, opt.big_bytes));
      hot.samples.push_back(mb / TimedRead(mount_big, buf, opt.big_bytes));
      tmpfs.push_back(mb / TimedRead(big_tmpfs, buf, opt.big_bytes));
      DropCaches();
      disk.samples.push_back(mb / TimedRead(big_disk, buf, opt.big_bytes));
      std::cerr << Fmt("  round %d: cold %.0f MB/s, hot %.0f MB/s, tmpfs %.0f MB/s; plain file on disk, cold: %.0f MB/s\n",
                       i + 1, cold.samples.back(), hot.samples.back(), tmpfs.back(), disk.samples.back());
    }
    unlink(big_disk.c_str());
    disk.value = Median(disk.samples);
    disk.extra = {{"bytes", opt.big_bytes}, {"path", big_disk}};
    drop_caches_error = drop_error;
    cold.value = Median(cold.samples);
    hot.value = Median(hot.samples);
    cold.baseline_samples = hot.baseline_samples = tmpfs;
    cold.baseline = hot.baseline = Median(tmpfs);
    cold.extra = {{"bytes", opt.big_bytes}, {"drop_caches", drop_error.empty() ? json("ok") : json(drop_error)}};
    hot.extra = {{"bytes", opt.big_bytes}};
    first.extra = {{"bytes", opt.big_bytes}};
    out.push_back(std::move(cold));
    out.push_back(std::move(hot));
    out.push_back(std::move(first));
    out.push_back(std::move(disk));
  }

  // (e) untar of the tree into an rw mount vs into tmpfs.
  void Untar(std::vector<Row>& out) {
    Row r = NewRow("e_untar", Fmt("(e) untar %zu files", tree.files.size()), "files/s", Better::kHigher,
                   "wall time of `tar -xf TREE.tar -C DEST --no-same-owner` (tarball on tmpfs) into a new directory "
                   "of the rw repo `wuntar` in a mount of its own (mounted fresh each round: mesad keeps one open "
                   "descriptor per written overlay file until unmount, so 2 x 10k files in one mount would hit "
                   "RLIMIT_NOFILE); after tar exits (untimed) the Workspace Flush RPC waits until everything is "
                   "uploaded, then the round's mount is unmounted");
    r.baseline_name = "tmpfs";
    r.baseline_description = "the same tar command into a new directory on " + opt.shm;
    r.target = "<= 3x tmpfs time (s9.38)";
    r.met = [](const Row& row) { return row.Slowdown() <= 3; };
    const double n = static_cast<double>(tree.files.size());
    std::vector<double> upload_s;
    for (int i = 0; i < opt.write_rounds; ++i) {
      dv1::MountInfo m = Mount(main, {"wuntar"});
      MountGuard unmount{main, m.id()};
      std::string root = m.path() + "/wuntar";
      std::string dm = root + Fmt("/r%d", i), dt = shm + Fmt("/untar-r%d", i);
      fs::create_directories(dm);
      fs::create_directories(dt);
      auto untar = [&](const std::string& dest) {
        ProcResult p = RunProcess({"tar", "-xf", tarball, "-C", dest, "--no-same-owner"});
        if (!p.ok()) throw std::runtime_error("tar -x into " + dest + " failed: " + Tail(p.out, 600));
        return p.seconds;
      };
      double sm, st;
      if (i % 2 == 0) {
        sm = untar(dm);
        st = untar(dt);
      } else {
        st = untar(dt);
        sm = untar(dm);
      }
      r.samples.push_back(n / sm);
      r.baseline_samples.push_back(n / st);
      Clock::time_point f0 = Clock::now();
      grpc::Status flushed = FlushMount(main, m.id(), 600000);
      upload_s.push_back(Seconds(Clock::now() - f0));
      if (!flushed.ok()) throw std::runtime_error("Flush after untar: " + StatusText(flushed));
      if (i == 0) {
        size_t count = 0;
        for (const auto& e : fs::recursive_directory_iterator(dm)) count += e.is_regular_file();
        if (count != tree.files.size()) throw std::runtime_error(Fmt("untar into the mount: %zu files, want %zu", count, tree.files.size()));
        VerifySample(tree, dm, 97, "untar into the mount");
      }
      std::cerr << Fmt("  round %d: mount %.2f s (%.0f files/s), tmpfs %.2f s (%.0f files/s); upload confirmed %.2f s later\n",
                       i + 1, sm, n / sm, st, n / st, upload_s.back());
      std::error_code ec;
      fs::remove_all(dt, ec);
    }
    r.value = Median(r.samples);
    r.baseline = Median(r.baseline_samples);
    r.extra = {{"files", tree.files.size()},
               {"tree_bytes", tree.bytes},
               {"rounds", opt.write_rounds},
               {"flush_after_untar_s", {{"median", Num(Median(upload_s))}, {"samples", upload_s}}}};
    out.push_back(std::move(r));
  }

  // (f) a big file written into an rw mount (each round a fresh repo and mount) vs tmpfs.
  void BigWrite(std::vector<Row>& out) {
    std::string size_label = opt.big_bytes >= (uint64_t{1} << 30) ? Fmt("%llu GiB", static_cast<unsigned long long>(opt.big_bytes >> 30))
                                                                   : Fmt("%llu MiB", static_cast<unsigned long long>(opt.big_bytes >> 20));
    Row r = NewRow("f_write_big", "(f) write " + size_label + " (1 MiB writes)", "MB/s", Better::kHigher,
                   "open(O_CREAT|O_TRUNC) + 1 MiB write() calls of incompressible bytes + close() of big.bin in a "
                   "fresh rw repo wbigN of its own mount (each round); then, untimed, the Workspace Flush RPC "
                   "(upload outcome recorded), unlink, flush and unmount");
    r.baseline_name = "tmpfs";
    r.baseline_description = "the same writes to a file in " + opt.shm;
    r.target = ">= 500 MB/s (s9.38)";
    r.met = [](const Row& row) { return row.value >= 500; };
    Buffer src(16 * kMiB);
    FillRandom(src.data, src.size, 99);
    const double mb = static_cast<double>(opt.big_bytes) / 1e6;
    json uploads = json::array();
    for (int i = 0; i < opt.write_rounds; ++i) {
      std::string repo = Fmt("wbig%d", i + 1);
      dv1::MountInfo m = Mount(main, {repo});
      MountGuard unmount{main, m.id()};
      std::string pm = m.path() + "/" + repo + "/big.bin", pt = shm + "/big-write.bin";
      double sm, st;
      if (i % 2 == 0) {
        sm = TimedWrite(pm, src, opt.big_bytes);
        st = TimedWrite(pt, src, opt.big_bytes);
      } else {
        st = TimedWrite(pt, src, opt.big_bytes);
        sm = TimedWrite(pm, src, opt.big_bytes);
      }
      unlink(pt.c_str());
      r.samples.push_back(mb / sm);
      r.baseline_samples.push_back(mb / st);
      struct stat info {};
      if (stat(pm.c_str(), &info) != 0 || static_cast<uint64_t>(info.st_size) != opt.big_bytes)
        throw std::runtime_error("the written file has the wrong size in the mount");
      Clock::time_point f0 = Clock::now();
      grpc::Status flushed = FlushMount(main, m.id(), 300000);
      double fs_s = Seconds(Clock::now() - f0);
      json upload = {{"round", i + 1}, {"flush_s", fs_s}, {"ok", flushed.ok()}};
      if (!flushed.ok()) upload["error"] = flushed.error_message();
      uploads.push_back(upload);
      std::cerr << Fmt("  round %d: mount %.0f MB/s, tmpfs %.0f MB/s; Flush after close: %s in %.1f s\n", i + 1, mb / sm,
                       mb / st, flushed.ok() ? "uploaded" : ("FAILED (" + flushed.error_message() + ")").c_str(), fs_s);
      unlink(pm.c_str());
      grpc::Status cleaned = FlushMount(main, m.id(), 120000);
      if (!cleaned.ok()) std::cerr << "  note: flush after unlink: " << cleaned.error_message() << "\n";
    }
    r.value = Median(r.samples);
    r.baseline = Median(r.baseline_samples);
    r.extra = {{"bytes", opt.big_bytes}, {"rounds", opt.write_rounds}, {"upload_after_close", uploads}};
    out.push_back(std::move(r));
  }

  // (g) close() -> confirmed on the server, 100 small files: Flush RPC, and the idle upload.
  void Confirm(std::vector<Row>& out) {
    const int kFiles = 100;
    dv1::MountInfo m = Mount(main, {"wsmall"});
    MountGuard unmount{main, m.id()};
    std::string root = m.path() + "/wsmall";
    WriteAll(root + "/g-init.txt", "first write: forks the working change\n");
    std::string change = CurrentChange(main, m.id(), "wsmall");  // flushes
    std::vector<double> flush_ms, idle_ms, write_ms;
    std::vector<int> polls;
    auto write_batch = [&](const std::string& dir, uint64_t seed_base) {
      fs::create_directories(root + "/" + dir);
      std::string last;
      Clock::time_point t0 = Clock::now();
      for (int k = 0; k < kFiles; ++k) {
        last = RandomText(1024, seed_base + static_cast<uint64_t>(k));
        WriteAll(root + "/" + dir + Fmt("/f%03d.txt", k), last);
      }
      write_ms.push_back(Seconds(Clock::now() - t0) * 1000);
      return last;
    };
    for (int i = 0; i < opt.confirm_rounds; ++i) {
      // Flush path.
      std::string dir = Fmt("flush-%d", i);
      std::string last = write_batch(dir, 500000 + static_cast<uint64_t>(i) * 1000);
      Clock::time_point t0 = Clock::now();
      grpc::Status st = FlushMount(main, m.id(), 60000);
      double ms = Seconds(Clock::now() - t0) * 1000;
      if (!st.ok()) throw std::runtime_error("Flush: " + StatusText(st));
      if (main.client->content().read("wsmall", dir + Fmt("/f%03d.txt", kFiles - 1), change) != last)
        throw std::runtime_error("after Flush the server does not have the last file of " + dir);
      flush_ms.push_back(ms);

      // Background path: nothing pending, then 100 files, then poll the server's content API.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      dir = Fmt("idle-%d", i);
      last = write_batch(dir, 700000 + static_cast<uint64_t>(i) * 1000);
      std::string path = dir + Fmt("/f%03d.txt", kFiles - 1);
      t0 = Clock::now();
      int n = 0;
      std::string seen = "nothing (404)";
      for (;;) {
        ++n;
        // The server may first get an earlier state of the file (an upload that started
        // between its create and its write, e.g. on the previous file's close): only the
        // final bytes count as confirmed.
        try {
          std::string got = main.client->content().read("wsmall", path, change);
          if (got == last) break;
          seen = Fmt("%zu other bytes", got.size());
        } catch (const mesa::NotFoundError&) {
        }
        if (Clock::now() - t0 > std::chrono::seconds(60))
          throw std::runtime_error(path + " did not reach the server within 60 s (last seen: " + seen + ")");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      idle_ms.push_back(Seconds(Clock::now() - t0) * 1000);
      polls.push_back(n);
      std::cerr << Fmt("  round %d: Flush %.1f ms, no Flush (background upload) %.1f ms (%d polls)\n", i + 1, flush_ms.back(), idle_ms.back(), n);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Row f = NewRow("g_confirm_flush", "(g) close->server, Flush RPC, p50", "ms", Better::kLower,
                   Fmt("%d files of 1 KiB written (create, write, close each) into a new directory of rw repo wsmall; time "
                       "from the last close() until the Workspace Flush RPC returns (every pending write uploaded); "
                       "median over rounds", kFiles));
    f.samples = flush_ms;
    f.value = Median(flush_ms);
    Row idle = NewRow("g_confirm_idle", "(g) close->server, no Flush, p50", "ms", Better::kLower,
                      Fmt("the same %d files, no Flush: time from the last close() until GET content of the last file at "
                          "the working change (Content.read through mesad, polled every 2 ms) returns its bytes; mesad "
                          "uploads by itself (a close asks the flusher to upload; otherwise after flush_idle_ms, 200 ms "
                          "by default); median over rounds", kFiles));
    idle.samples = idle_ms;
    idle.value = Median(idle_ms);
    json common = {{"files_per_round", kFiles}, {"file_bytes", 1024}, {"rounds", opt.confirm_rounds},
                   {"write_batch_ms", {{"median", Num(Median(write_ms))}, {"samples", write_ms}}}, {"working_change", change}};
    f.extra = common;
    f.extra["p90_ms"] = Num(Percentile(flush_ms, 0.9));
    idle.extra = common;
    idle.extra["p90_ms"] = Num(Percentile(idle_ms, 0.9));
    idle.extra["polls"] = polls;
    idle.extra["flush_idle_ms_default"] = 200;
    out.push_back(std::move(f));
    out.push_back(std::move(idle));
  }
};

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool IsTmpfs(const std::string& path) {
  struct statfs s {};
  return statfs(path.c_str(), &s) == 0 && static_cast<long>(s.f_type) == kTmpfsMagic;
}

}  // namespace

int main(int argc, char** argv) {
  Bench b;
  b.opt = ParseOptions(argc, argv);
  Options& opt = b.opt;
  g_keep_temp = opt.keep;
  if (geteuid() != 0) {
    std::cerr << "fs_bench: run as root (mesad mounts FUSE, and the cold read drops the page cache)\n";
    return 2;
  }
  // A private mount namespace for this process and its children (while still single-threaded:
  // unshare(CLONE_NEWNS) fails once threads share the fs context). mesad detaches every FUSE
  // mount named "mesad:*" it can see when it starts, live ones of other daemons included; in
  // here, no other mesad on the machine can take the benchmark's mounts away, and the
  // benchmark's daemons cannot take theirs. Leftover mounts die with the namespace.
  std::string mount_ns = "private";
  if (unshare(CLONE_NEWNS) != 0) {
    mount_ns = std::string("shared (unshare: ") + strerror(errno) + ")";
  } else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    mount_ns = std::string("new but not private (") + strerror(errno) + ")";
  }
  if (mount_ns != "private")
    std::cerr << "fs_bench: WARNING: mount namespace " << mount_ns
              << "; another mesad starting on this machine would detach the benchmark's mounts\n";

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  b.work = MakeTempDir(opt.tmp);
  b.shm = MakeTempDir(opt.shm);
  if (IsTmpfs(b.work)) std::cerr << "fs_bench: WARNING: " << opt.tmp << " is tmpfs: the disk cache is in memory and the cold read is not cold\n";
  if (!IsTmpfs(b.shm)) std::cerr << "fs_bench: WARNING: " << opt.shm << " is not tmpfs: the baselines are not tmpfs\n";
  b.grep_tool = OnPath("rg") ? "rg" : "grep";
  std::string git_version = TrimRight(RunProcess({"git", "--version"}).out);
  std::string loadavg_start = LoadAvg();

  std::cerr << Fmt("fs_bench: %d files in %dx%d dirs of %d, big file %llu MiB, %d runs%s; work %s, tmpfs %s\n",
                   opt.files(), opt.top, opt.sub, opt.per_dir, static_cast<unsigned long long>(opt.big_bytes >> 20), opt.runs,
                   opt.quick ? " (--quick)" : "", b.work.c_str(), b.shm.c_str());

  // Generate, seed the store (before it serves), copy to tmpfs, tar.
  Clock::time_point g0 = Clock::now();
  b.tree = MakeTree(opt);
  b.tmpfs_tree = b.shm + "/tree";
  b.big_tmpfs = b.shm + "/big.bin";
  b.tarball = b.shm + "/tree.tar";
  b.server = InitServer(opt.server, b.work);
  try {
    MaterializeTree(b.tree, b.tmpfs_tree);
  } catch (const std::exception& e) {
    Die(e.what());
  }
  std::cerr << "seeding the store (the big file is compressed by git: this takes a while) ..." << std::endl;
  b.seed = SeedStore(b.server, opt, b.tree, b.big_tmpfs);
  ProcResult tar = RunProcess({"tar", "-cf", b.tarball, "-C", b.tmpfs_tree, "."});
  if (!tar.ok()) Die("tar -c failed: " + tar.out);
  std::cerr << Fmt("  generated and seeded in %.1f s (store: %.1f s)\n", Seconds(Clock::now() - g0), b.seed.seconds);

  // Children are forked from this (main) thread only: PR_SET_PDEATHSIG follows the forking thread.
  Serve(b.server, opt.server);
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    Die(std::string("interrupted by ") + strsignal(sig));
  }).detach();
  {
    ProcResult v = RunProcess({opt.mesad, "--version"});
    if (!v.ok()) Die("cannot run " + opt.mesad + " --version (use --mesad PATH): " + v.out);
    b.main.version = TrimRight(v.out);
  }
  std::cerr << b.server.version << " on 127.0.0.1:" << b.server.port << ", " << b.main.version << std::endl;

  // (a) needs fresh daemons; everything else shares one.
  RunScenario("a_cold_mount", b.rows, [&](std::vector<Row>& out) { b.ColdMount(out); }, nullptr, b.cpu);

  StartDaemon(b.main, opt.mesad, b.work + "/mesad", b.server);
  dv1::MountInfo read_mount;
  std::string mount_tree, mount_big;
  try {
    read_mount = Mount(b.main, {"tree", "big"}, "", "ro");
    mount_tree = read_mount.path() + "/tree";
    mount_big = read_mount.path() + "/big/big.bin";
  } catch (const std::exception& e) {
    Die(std::string("mount of tree and big: ") + e.what() + "\n" + Tail(ReadAll(b.main.log)));
  }
  RunScenario("b_tree_walks", b.rows, [&](std::vector<Row>& out) {
    b.TreeWalks(out, mount_tree);
    VerifySample(b.tree, mount_tree, 53, "the mounted tree");
  }, &b.main, b.cpu);
  RunScenario("d_stat", b.rows, [&](std::vector<Row>& out) { b.StatLatency(out, mount_tree); }, &b.main, b.cpu);
  RunScenario("c_big_read", b.rows, [&](std::vector<Row>& out) { b.BigRead(out, mount_big); }, &b.main, b.cpu);
  try {
    b.main.client->mounts().unmount(read_mount.id());
  } catch (const std::exception& e) {
    std::cerr << "note: unmount " << read_mount.id() << ": " << e.what() << "\n";
  }
  RunScenario("b_tree_walks_rw", b.rows, [&](std::vector<Row>& out) {
    MountGuard guard{b.main, ""};
    dv1::MountInfo m = Mount(b.main, {"tree"});
    guard.id = m.id();
    b.TreeWalks(out, m.path() + "/tree", /*writable=*/true);
  }, &b.main, b.cpu);
  RunScenario("e_untar", b.rows, [&](std::vector<Row>& out) { b.Untar(out); }, &b.main, b.cpu);
  RunScenario("g_confirm", b.rows, [&](std::vector<Row>& out) { b.Confirm(out); }, &b.main, b.cpu);
  RunScenario("f_big_write", b.rows, [&](std::vector<Row>& out) { b.BigWrite(out); }, &b.main, b.cpu);

  std::vector<std::string> stop_notes = StopDaemon(b.main);
  for (const auto& n : stop_notes) std::cerr << "note: " << n << "\n";
  std::string loadavg_end = LoadAvg();

  // Rows in the order of the brief: a, b, c, d, e, f, g.
  std::stable_sort(b.rows.begin(), b.rows.end(), [](const Row& x, const Row& y) { return x.key.substr(0, 1) < y.key.substr(0, 1); });

  // --- human table
  struct utsname un {};
  uname(&un);
  unsigned cpus = std::thread::hardware_concurrency();
  std::printf("\nfs_bench  %s via %s  |  %d files (%.1f MB), big file %llu MiB, median of %d runs%s  |  %u CPUs, %s %s\n",
              b.main.version.c_str(), b.server.version.c_str(), opt.files(), static_cast<double>(b.tree.bytes) / 1e6,
              static_cast<unsigned long long>(opt.big_bytes >> 20), opt.runs, opt.quick ? " (--quick)" : "", cpus,
              un.sysname, un.release);
  std::printf("(slowdown = mesad time / baseline time, same run: 1 = as fast, > 1 = slower through mesad;\n"
              " rates are converted the same way: baseline rate / mesad rate. Targets from fuse-daemon-anchors.md s9.)\n\n");
  std::printf("%-36s %14s %14s %-10s %9s  %-24s %s\n", "scenario", "mesad", "baseline", "(name)", "slowdown", "target", "");
  std::printf("%s\n", std::string(36 + 1 + 14 + 1 + 14 + 1 + 10 + 1 + 9 + 2 + 24 + 8, '-').c_str());
  int missed = 0, met = 0, failed = 0;
  json scenarios = json::object();
  for (const auto& r : b.rows) {
    if (!r.error.empty()) {
      ++failed;
      std::printf("%-36s %14s  FAILED: %s\n", r.label.c_str(), "", r.error.substr(0, 200).c_str());
    } else {
      auto m = r.Met();
      std::string verdict = !m ? "" : *m ? "ok" : "MISS";
      if (m) (*m ? met : missed)++;
      double slow = r.Slowdown();
      std::printf("%-36s %14s %14s %-10s %9s  %-24s %s\n", r.label.c_str(), FormatValue(r.value, r.unit).c_str(),
                  r.baseline_name.empty() ? "-" : FormatValue(r.baseline, r.unit).c_str(),
                  r.baseline_name.empty() ? "" : r.baseline_name.c_str(), std::isnan(slow) ? "-" : Fmt("%.2fx", slow).c_str(),
                  r.target.empty() ? "-" : r.target.c_str(), verdict.c_str());
    }
    json j = {{"label", r.label},
              {"description", r.description},
              {"unit", r.unit},
              {"better", r.better == Better::kLower ? "lower" : "higher"},
              {"mesad", {{"value", Num(r.value)}, {"samples", r.samples}}},
              {"baseline", nullptr},
              {"slowdown", Num(r.Slowdown())},
              {"target", r.target.empty() ? json(nullptr) : json(r.target)},
              {"met", r.Met() ? json(*r.Met()) : json(nullptr)},
              {"extra", r.extra}};
    if (!r.baseline_name.empty())
      j["baseline"] = {{"name", r.baseline_name},
                       {"description", r.baseline_description},
                       {"value", Num(r.baseline)},
                       {"samples", r.baseline_samples}};
    if (!r.error.empty()) j["error"] = r.error;
    scenarios[r.key] = j;
  }
  std::printf("\ntargets: %d met, %d missed%s\n", met, missed, failed ? Fmt(", %d scenario(s) FAILED", failed).c_str() : "");
  for (const auto& r : b.rows) {
    if (r.key == "a_cold_mount_read" && r.error.empty())
      std::printf("(a) Mount RPC alone: %.1f ms (median); first read of the file after it: %.1f ms\n",
                  r.extra["mount_rpc_s"]["median"].get<double>() * 1000, r.extra["first_read_s"]["median"].get<double>() * 1000);
    if (r.key == "e_untar" && r.error.empty())
      std::printf("(e) everything untarred was confirmed on the server %.2f s (median) after tar exited (Flush RPC)\n",
                  r.extra["flush_after_untar_s"]["median"].get<double>());
    if (r.key == "f_write_big" && r.error.empty()) {
      for (const auto& u : r.extra["upload_after_close"]) {
        std::printf("(f) round %d: Flush after close %s after %.1f s%s\n", u["round"].get<int>(),
                    u["ok"].get<bool>() ? "confirmed the upload" : "FAILED", u["flush_s"].get<double>(),
                    u.contains("error") ? (": " + u["error"].get<std::string>().substr(0, 160)).c_str() : "");
      }
    }
  }
  std::printf("(b) grep tool: %s; (c) drop_caches: %s\n", b.grep_tool.c_str(),
              b.drop_caches_error.empty() ? "ok" : ("FAILED (" + b.drop_caches_error + "), cold figures are not cold").c_str());
  std::printf("load average: start %s, end %s\n", loadavg_start.c_str(), loadavg_end.c_str());

  // --- JSON
  json seed_repos = json::object();
  for (const auto& [name, r] : b.seed.repos) seed_repos[name] = {{"id", r.id}, {"change_id", r.change_id}};
  json report = {
      {"benchmark", "fs_bench"},
      {"schema_version", 1},
      {"finished_at", UtcNow()},
      {"config",
       {{"quick", opt.quick},
        {"runs", opt.runs},
        {"cold_rounds", opt.cold_rounds},
        {"write_rounds", opt.write_rounds},
        {"confirm_rounds", opt.confirm_rounds},
        {"server", opt.server},
        {"server_version", b.server.version},
        {"mesad", opt.mesad},
        {"mesad_version", b.main.version},
        {"mesad_mode", "remote, --api-url http://127.0.0.1:PORT/v1"},
        {"git_version", git_version},
        {"grep_tool", b.grep_tool},
        {"mount_namespace", mount_ns},
        {"work_dir_parent", opt.tmp},
        {"work_dir_is_tmpfs", IsTmpfs(opt.tmp)},
        {"tmpfs_dir_parent", opt.shm},
        {"tmpfs_dir_is_tmpfs", IsTmpfs(opt.shm)},
        {"drop_caches", b.drop_caches_error.empty() ? json("ok") : json(b.drop_caches_error)}}},
      {"host",
       {{"cpus", cpus},
        {"kernel", std::string(un.sysname) + " " + un.release},
        {"machine", un.machine},
        {"loadavg_start", loadavg_start},
        {"loadavg_end", loadavg_end},
        {"loadavg_per_scenario", g_scenario_loadavg}}},
      {"units",
       {{"s", "seconds of wall time"},
        {"ms", "milliseconds"},
        {"us", "microseconds per call"},
        {"MB/s", "10^6 bytes per second"},
        {"files/s", "files extracted per second"},
        {"slowdown", "mesad time / baseline time (rates: baseline / mesad); > 1 = slower through mesad"}}},
      {"seed",
       {{"files", b.tree.files.size()},
        {"dirs", Fmt("%d x %d leaf dirs pNN/mNN/src, %d files each", opt.top, opt.sub, opt.per_dir)},
        {"tree_bytes", b.tree.bytes},
        {"needle_files", b.tree.needles},
        {"big_bytes", opt.big_bytes},
        {"seconds", b.seed.seconds},
        {"repos", seed_repos}}},
      {"mesad_cpu_s", b.cpu},
      {"scenarios", scenarios},
      {"targets", {{"met", met}, {"missed", missed}}},
      {"errors", failed},
  };
  fs::path out(opt.out);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  std::ofstream file(out);
  file << report.dump(2) << "\n";
  file.close();
  if (!file) Die("cannot write " + opt.out);
  std::printf("\nJSON: %s\n", fs::absolute(out).c_str());
  std::fflush(stdout);

  Cleanup();
  return failed ? 1 : 0;
}
