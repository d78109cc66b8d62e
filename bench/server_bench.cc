// server_bench: throughput and latency of mesa-server's hot paths, each measured next to a
// same-run baseline on the same machine so that results read as ratios. See bench/README.md.
//
//   server_bench [--server PATH] [--out FILE.json] [--seconds N] [--clients N]
//
// It starts its own mesa-server (init + serve on a fresh temp store, a free loopback port, access
// log off), seeds one repo (200 files of 4 KiB in a few directories plus one 8 MiB file, one
// change, main moved to it), then runs every scenario for --seconds with --clients threads, each
// thread holding one keep-alive connection (or one set of file descriptors for the baselines).
#include <fcntl.h>
#include <httplib.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "rest/encoding.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kRootChange = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
constexpr const char* kOrg = "bench";
constexpr const char* kRepo = "bench";
constexpr int kSmallFiles = 200;
constexpr size_t kSmallSize = 4096;
constexpr size_t kBigSize = size_t{8} << 20;
constexpr const char* kSmallDirs[] = {"src/core", "src/util", "docs/guide", "assets/icons"};
constexpr const char* kBigPath = "data/big.bin";
constexpr int kChangeFiles = 100;
constexpr size_t kChangeFileSize = 1024;

// ---------------------------------------------------------------------------------------------
// Process-wide cleanup: the server child and the temp directories go away on every exit path.

std::atomic<pid_t> g_server_pid{-1};
std::mutex g_cleanup_mu;
std::vector<std::string> g_temp_dirs;

void Cleanup() {
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  pid_t pid = g_server_pid.exchange(-1);
  if (pid > 0) {
    // SIGTERM first; a keep-alive connection still open (an early exit) can hold the server's
    // shutdown for its keep-alive timeout, so SIGKILL after 3 s.
    kill(pid, SIGTERM);
    auto give_up = Clock::now() + std::chrono::seconds(3);
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (Clock::now() > give_up) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (const auto& dir : g_temp_dirs) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  g_temp_dirs.clear();
}

[[noreturn]] void Die(const std::string& message) {
  static std::atomic<bool> dying{false};
  if (dying.exchange(true)) {
    // Another thread is already cleaning up and exiting.
    for (;;) pause();
  }
  std::cerr << "server_bench: " << message << std::endl;
  Cleanup();
  std::_Exit(1);
}

std::string MakeTempDir(const std::string& parent) {
  std::string tmpl = parent + "/server_bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) Die("mkdtemp in " + parent + ": " + strerror(errno));
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  g_temp_dirs.push_back(tmpl);
  return tmpl;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  char buf[512];
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

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

// Deterministic, incompressible bytes (xorshift64*), so runs are reproducible and neither git's
// zlib nor any transport compression flatters the numbers.
void FillBytes(uint64_t seed, char* out, size_t n) {
  uint64_t x = Mix(seed, 0x5EEDull) | 1;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1Dull;
    memcpy(out + i, &v, std::min<size_t>(8, n - i));
  }
}

std::string Bytes(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  FillBytes(seed, s.data(), n);
  return s;
}

bool IsHexOid(std::string_view s) {
  if (s.size() != 40) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void WriteFileOrDie(const std::string& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("open " + path + ": " + strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) Die("write " + path + ": " + strerror(errno));
    done += static_cast<size_t>(w);
  }
  close(fd);
}

// ---------------------------------------------------------------------------------------------
// Subprocesses (posix_spawn: no copy of this process's page tables per git call).

struct ProcResult {
  int status = -1;
  std::string out;
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

ProcResult RunProcess(const std::vector<std::string>& argv, std::string_view input) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) Die(std::string("pipe2: ") + strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) Die(std::string("pipe2: ") + strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    Die("cannot run " + argv[0] + ": " + strerror(rc));
  }
  int to_child = in[1];
  fcntl(to_child, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) {
    close(to_child);
    to_child = -1;
  }
  ProcResult result;
  char buf[65536];
  for (;;) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {to_child, POLLOUT, 0}};
    int n = to_child >= 0 ? 2 : 1;
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      Die(std::string("poll: ") + strerror(errno));
    }
    if (n == 2 && fds[1].revents != 0) {
      ssize_t w = write(to_child, input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      bool broken = w < 0 && errno != EAGAIN && errno != EINTR;
      if (broken || written == input.size()) {
        close(to_child);
        to_child = -1;
      }
    }
    if (fds[0].revents != 0) {
      ssize_t r = read(out[0], buf, sizeof buf);
      if (r > 0) {
        result.out.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        break;
      }
    }
  }
  if (to_child >= 0) close(to_child);
  close(out[0]);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Options.

struct Options {
  std::string server = MESA_SERVER_BIN;
  std::string out = MESA_SOURCE_DIR "/bench/results/server_bench.json";
  double seconds = 3;
  int clients = 4;
};

constexpr const char* kUsage =
    "usage: server_bench [--server PATH] [--out FILE.json] [--seconds N] [--clients N]\n"
    "  --server   mesa-server binary (default: the one from this build)\n"
    "  --out      JSON results file; its directory is created (default: bench/results/server_bench.json)\n"
    "  --seconds  measured seconds per scenario and per baseline (default 3)\n"
    "  --clients  concurrent client threads, one keep-alive connection each (default 4)\n";

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    std::string key = a, value;
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      key = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "server_bench: " << a << " needs a value\n" << kUsage;
      std::exit(2);
    }
    try {
      if (key == "--server") o.server = value;
      else if (key == "--out") o.out = value;
      else if (key == "--seconds") o.seconds = std::stod(value);
      else if (key == "--clients") o.clients = std::stoi(value);
      else {
        std::cerr << "server_bench: unknown flag " << key << "\n" << kUsage;
        std::exit(2);
      }
    } catch (const std::exception&) {
      std::cerr << "server_bench: bad value for " << key << ": " << value << "\n";
      std::exit(2);
    }
  }
  if (!(o.seconds > 0) || o.clients < 1 || o.clients > 256) {
    std::cerr << "server_bench: need --seconds > 0 and 1 <= --clients <= 256\n";
    std::exit(2);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// The server under test.

struct Server {
  int port = 0;
  std::string key;
  std::string version;
  std::string data_dir;
};

std::unique_ptr<httplib::Client> Connect(const Server& server) {
  auto cli = std::make_unique<httplib::Client>("127.0.0.1", server.port);
  cli->set_keep_alive(true);
  cli->set_tcp_nodelay(true);
  cli->set_connection_timeout(5, 0);
  cli->set_read_timeout(60, 0);
  cli->set_write_timeout(60, 0);
  cli->set_default_headers({{"Authorization", "Bearer " + server.key}});
  return cli;
}

std::string Describe(const httplib::Result& res) {
  if (!res) return "transport error: " + httplib::to_string(res.error());
  return "HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 300);
}

Server StartServer(const std::string& bin, const std::string& dir) {
  Server server;
  server.data_dir = dir + "/store";
  ProcResult version = RunProcess({bin, "--version"}, "");
  if (!version.ok()) Die("cannot run " + bin + " --version (use --server PATH)");
  server.version = TrimRight(version.out);

  ProcResult init = RunProcess({bin, "init", "--data", server.data_dir, "--org", kOrg}, "");
  if (!init.ok()) Die(bin + " init failed:\n" + init.out);
  server.key = LastLine(init.out);
  if (server.key.empty()) Die("mesa-server init printed no API key");

  // Port 0: the server binds any free port and logs "listening on 127.0.0.1:PORT" on stderr, so
  // there is no window between picking a port and binding it.
  std::string log = dir + "/server.log";
  std::string data = server.data_dir;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) Die(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the benchmark, even on kill -9
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (fd < 0 || null < 0) _exit(126);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(bin.c_str(), "mesa-server", "serve", "--data", data.c_str(), "--listen", "127.0.0.1:0",
          "--access-log", "off", static_cast<char*>(nullptr));
    _exit(127);
  }
  g_server_pid = pid;

  auto give_up = Clock::now() + std::chrono::seconds(20);
  while (server.port == 0) {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t at = text.find("listening on ");
    if (at != std::string::npos) {
      size_t end = text.find_first_of(" \n", at + 13);
      if (end != std::string::npos) {
        std::string address = text.substr(at + 13, end - at - 13);
        server.port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
        if (server.port <= 0) Die("cannot parse the server address from: " + text);
        break;
      }
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_server_pid = -1;
      Die("mesa-server serve exited early:\n" + text);
    }
    if (Clock::now() > give_up) Die("mesa-server did not start within 20 s:\n" + text);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto cli = Connect(server);
  for (;;) {
    auto res = cli->Get("/v1/whoami");
    if (res && res->status == 200) break;
    if (Clock::now() > give_up) Die("mesa-server does not answer /v1/whoami: " + Describe(res));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return server;
}

// ---------------------------------------------------------------------------------------------
// The seeded repo and its mirror on tmpfs.

struct Seed {
  std::string change_id;
  bool has_big = false;   // false if the server refused the 8 MiB file
  std::string big_error;  // the server's answer then
  std::vector<std::string> small_paths;
  std::vector<std::string> small_data;
  std::string big_data;
  size_t root_entries = 0;  // entries of the root at depth 1
  size_t all_entries = 0;   // every file and directory (depth 10 covers the whole tree)
  double seconds = 0;       // time to POST the seed change and move main
};

Seed SeedRepo(const Server& server) {
  Seed seed;
  std::set<std::string> top, dirs;
  json files = json::array();
  for (int i = 0; i < kSmallFiles; ++i) {
    std::string dir = kSmallDirs[i % std::size(kSmallDirs)];
    std::string path = dir + Fmt("/file_%03d.bin", i);
    seed.small_paths.push_back(path);
    seed.small_data.push_back(Bytes(1000 + static_cast<uint64_t>(i), kSmallSize));
    files.push_back({{"path", path}, {"content", mesa::rest::Base64Encode(seed.small_data.back())}});
  }
  seed.big_data = Bytes(999, kBigSize);
  files.push_back({{"path", kBigPath}, {"content", mesa::rest::Base64Encode(seed.big_data)}});

  auto cli = Connect(server);
  auto start = Clock::now();
  auto repo = cli->Post(Fmt("/v1/%s/repos", kOrg), json({{"name", kRepo}}).dump(), "application/json");
  if (!repo || repo->status != 201) Die("create repo: " + Describe(repo));
  json body = {{"base_change_id", kRootChange}, {"message", "server_bench seed"}, {"files", files}};
  auto change = cli->Post(Fmt("/v1/%s/%s/changes", kOrg, kRepo), body.dump(), "application/json");
  std::string big_field = Fmt("files[%d]", kSmallFiles);
  seed.has_big = true;
  if (change && change->status == 400 && change->body.find(big_field) != std::string::npos) {
    // The server refuses the big file itself (not the request): seed the small files alone, and
    // report the 8 MiB scenario as skipped with the server's answer rather than shrink it.
    seed.has_big = false;
    seed.big_error = "HTTP 400 " + change->body;
    files.erase(files.size() - 1);
    body["files"] = files;
    change = cli->Post(Fmt("/v1/%s/%s/changes", kOrg, kRepo), body.dump(), "application/json");
  }
  if (!change || change->status != 201) Die("create seed change: " + Describe(change));
  std::vector<std::string> all_paths = seed.small_paths;
  if (seed.has_big) all_paths.push_back(kBigPath);
  for (const auto& p : all_paths) {
    top.insert(p.substr(0, p.find('/')));
    for (size_t s = p.find('/'); s != std::string::npos; s = p.find('/', s + 1)) dirs.insert(p.substr(0, s));
  }
  seed.root_entries = top.size();
  seed.all_entries = all_paths.size() + dirs.size();
  seed.change_id = json::parse(change->body).at("id").get<std::string>();
  auto main = cli->Patch(Fmt("/v1/%s/%s/bookmarks/main", kOrg, kRepo), json({{"change_id", seed.change_id}}).dump(),
                         "application/json");
  if (!main || main->status != 200) Die("move main: " + Describe(main));
  seed.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return seed;
}

// The same bytes as plain files on tmpfs, opened once (the analog of a keep-alive connection).
struct Mirror {
  std::vector<int> small_fds;
  int big_fd = -1;
};

Mirror MirrorOnTmpfs(const Seed& seed, const std::string& dir) {
  Mirror m;
  auto put = [&](const std::string& rel, const std::string& data) {
    fs::path p = fs::path(dir) / "files" / rel;
    fs::create_directories(p.parent_path());
    WriteFileOrDie(p.string(), data);
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Die("open " + p.string() + ": " + strerror(errno));
    return fd;
  };
  for (size_t i = 0; i < seed.small_paths.size(); ++i) m.small_fds.push_back(put(seed.small_paths[i], seed.small_data[i]));
  m.big_fd = put(kBigPath, seed.big_data);
  return m;
}

// ---------------------------------------------------------------------------------------------
// The measurement loop.

struct OpResult {
  bool ok = false;
  uint64_t bytes = 0;       // payload bytes: file bytes read or written, or the JSON body read
  uint64_t wire_bytes = 0;  // HTTP body bytes (request for writes, response for reads)
  std::string error;        // filled only when !ok
};

OpResult Fail(std::string error) { return {false, 0, 0, std::move(error)}; }

class Worker {
 public:
  virtual ~Worker() = default;
  // Untimed work before each operation (e.g. building a request body).
  virtual void Prepare(uint64_t iter) {}
  // One timed operation. `verify` (warm-up only) compares full contents, not just sizes.
  virtual OpResult Run(uint64_t iter, bool verify) = 0;
};
using WorkerFactory = std::function<std::unique_ptr<Worker>(int thread)>;

// Spreads threads over the file set so that they do not read the same file in lock step.
size_t Pick(int thread, uint64_t iter, size_t n) { return (static_cast<uint64_t>(thread) * 53 + iter) % n; }

struct Stats {
  uint64_t ops = 0, errors = 0, bytes = 0, wire_bytes = 0;
  double seconds = 0;
  double p50 = 0, p99 = 0, mean = 0, max = 0;
  std::string first_error;

  double OpsPerS() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
  double MBPerS() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }
  double WireMBPerS() const { return seconds > 0 ? static_cast<double>(wire_bytes) / seconds / 1e6 : 0; }

  json ToJson() const {
    json j = {{"ops", ops},
              {"errors", errors},
              {"seconds", seconds},
              {"ops_per_s", OpsPerS()},
              {"bytes", bytes},
              {"mb_per_s", MBPerS()},
              {"bytes_per_op", ops ? static_cast<double>(bytes) / static_cast<double>(ops) : 0},
              {"wire_bytes", wire_bytes},
              {"wire_mb_per_s", WireMBPerS()},
              {"latency_ms", {{"p50", p50}, {"p99", p99}, {"mean", mean}, {"max", max}}}};
    if (!first_error.empty()) j["first_error"] = first_error;
    return j;
  }
};

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];  // nearest rank
}

Stats Measure(const std::string& label, const Options& opt, int warmup, const WorkerFactory& make) {
  std::cerr << "  " << label << " ..." << std::flush;
  const int n = opt.clients;
  std::vector<std::vector<double>> latencies(n);
  std::vector<Stats> per_thread(n);
  std::vector<Clock::time_point> ends(n);
  Clock::time_point start, deadline;
  auto seconds = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.seconds));
  std::barrier sync(n, [&]() noexcept {
    start = Clock::now();
    deadline = start + seconds;
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Worker> worker = make(t);
      uint64_t iter = 0;
      for (; iter < static_cast<uint64_t>(warmup); ++iter) {
        worker->Prepare(iter);
        OpResult r = worker->Run(iter, /*verify=*/true);
        if (!r.ok) Die(label + ": warm-up operation failed in thread " + std::to_string(t) + ": " + r.error);
      }
      std::vector<double>& lat = latencies[t];
      lat.reserve(1 << 16);
      Stats& s = per_thread[t];
      sync.arrive_and_wait();
      Clock::time_point now = Clock::now();
      while (now < deadline) {
        worker->Prepare(iter);
        Clock::time_point t0 = Clock::now();
        OpResult r = worker->Run(iter, /*verify=*/false);
        now = Clock::now();
        ++iter;
        if (!r.ok) {
          if (s.errors++ == 0) s.first_error = r.error;
          continue;
        }
        ++s.ops;
        s.bytes += r.bytes;
        s.wire_bytes += r.wire_bytes;
        lat.push_back(std::chrono::duration<double, std::milli>(now - t0).count());
      }
      ends[t] = now;
    });
  }
  for (auto& th : threads) th.join();

  Stats total;
  std::vector<double> all;
  for (int t = 0; t < n; ++t) {
    total.ops += per_thread[t].ops;
    total.errors += per_thread[t].errors;
    total.bytes += per_thread[t].bytes;
    total.wire_bytes += per_thread[t].wire_bytes;
    if (total.first_error.empty()) total.first_error = per_thread[t].first_error;
    all.insert(all.end(), latencies[t].begin(), latencies[t].end());
  }
  // Operations that started before the deadline all count, so the window ends at the last one.
  total.seconds = std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) - start).count();
  std::sort(all.begin(), all.end());
  if (!all.empty()) {
    total.p50 = Percentile(all, 0.50);
    total.p99 = Percentile(all, 0.99);
    total.max = all.back();
    double sum = 0;
    for (double v : all) sum += v;
    total.mean = sum / static_cast<double>(all.size());
  }
  std::cerr << Fmt(" %.1f ops/s", total.OpsPerS()) << (total.errors ? Fmt(", %llu errors", static_cast<unsigned long long>(total.errors)) : "")
            << std::endl;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Workers: reads.

struct FileSet {
  std::vector<std::string> paths;
  std::vector<const std::string*> data;
  std::vector<int> fds;  // tmpfs mirror
  size_t max_size = 0;
};

std::string ContentUrl(const std::string& path, const std::string& change_id, int depth = -1) {
  std::string url = Fmt("/v1/%s/%s/content?path=", kOrg, kRepo) + path + "&change_id=" + change_id;
  if (depth >= 0) url += "&depth=" + std::to_string(depth);
  return url;
}

// GET .../content with Accept: application/octet-stream; the body streams into a preallocated
// buffer, like pread into a buffer on the baseline side.
class RawHttpRead : public Worker {
 public:
  RawHttpRead(const Server& server, const FileSet* files, const std::string& change_id, int thread)
      : cli_(Connect(server)), files_(files), thread_(thread), buf_(files->max_size) {
    for (const auto& p : files->paths) urls_.push_back(ContentUrl(p, change_id));
  }
  OpResult Run(uint64_t iter, bool verify) override {
    size_t i = Pick(thread_, iter, urls_.size());
    const std::string& want = *files_->data[i];
    size_t got = 0;
    bool overflow = false;
    auto res = cli_->Get(urls_[i], headers_, [&](const char* data, size_t len) {
      if (got + len > buf_.size()) {
        overflow = true;
        return false;
      }
      memcpy(buf_.data() + got, data, len);
      got += len;
      return true;
    });
    if (!res) return Fail(Describe(res));
    if (res->status != 200) return Fail("HTTP " + std::to_string(res->status) + " for " + urls_[i]);
    if (overflow || got != want.size()) return Fail(Fmt("%zu bytes for %s, want %zu", got, urls_[i].c_str(), want.size()));
    if (verify && memcmp(buf_.data(), want.data(), got) != 0) return Fail("wrong bytes for " + urls_[i]);
    return {true, got, got, {}};
  }

 private:
  std::unique_ptr<httplib::Client> cli_;
  const FileSet* files_;
  int thread_;
  std::vector<char> buf_;
  std::vector<std::string> urls_;
  httplib::Headers headers_ = {{"Accept", "application/octet-stream"}};
};

class TmpfsRead : public Worker {
 public:
  TmpfsRead(const FileSet* files, int thread) : files_(files), thread_(thread), buf_(files->max_size) {}
  OpResult Run(uint64_t iter, bool verify) override {
    size_t i = Pick(thread_, iter, files_->fds.size());
    const std::string& want = *files_->data[i];
    size_t got = 0;
    while (got < want.size()) {
      ssize_t r = pread(files_->fds[i], buf_.data() + got, want.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return Fail(std::string("pread: ") + (r < 0 ? strerror(errno) : "short file"));
      got += static_cast<size_t>(r);
    }
    if (verify && memcmp(buf_.data(), want.data(), got) != 0) return Fail("wrong bytes on tmpfs");
    return {true, got, got, {}};
  }

 private:
  const FileSet* files_;
  int thread_;
  std::vector<char> buf_;
};

// GET .../content as JSON: a file (base64 `content`) or a directory listing (`entries`).
class JsonHttpRead : public Worker {
 public:
  JsonHttpRead(const Server& server, std::vector<std::string> urls, std::vector<const std::string*> want_data,
               size_t want_entries, int thread)
      : cli_(Connect(server)), urls_(std::move(urls)), want_data_(std::move(want_data)), want_entries_(want_entries),
        thread_(thread) {}
  OpResult Run(uint64_t iter, bool verify) override {
    size_t i = Pick(thread_, iter, urls_.size());
    auto res = cli_->Get(urls_[i], headers_);
    if (!res) return Fail(Describe(res));
    if (res->status != 200) return Fail(Describe(res));
    if (verify) {
      json j = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) return Fail("response is not JSON: " + res->body.substr(0, 200));
      if (!want_data_.empty()) {
        auto bytes = mesa::rest::Base64Decode(j.value("content", ""));
        if (j.value("encoding", "") != "base64" || !bytes || *bytes != *want_data_[i])
          return Fail("wrong file content in JSON for " + urls_[i]);
      } else if (j.value("type", "") != "dir" || !j.contains("entries") || j["entries"].size() != want_entries_) {
        return Fail(Fmt("listing %s: want %zu entries, got: ", urls_[i].c_str(), want_entries_) + res->body.substr(0, 300));
      }
    }
    return {true, res->body.size(), res->body.size(), {}};
  }

 private:
  std::unique_ptr<httplib::Client> cli_;
  std::vector<std::string> urls_;
  std::vector<const std::string*> want_data_;
  size_t want_entries_;
  int thread_;
  httplib::Headers headers_ = {{"Accept", "application/json"}};
};

// ---------------------------------------------------------------------------------------------
// Workers: change creation. Both sides store kChangeFiles new blobs of kChangeFileSize bytes
// (contents unique per side, thread and iteration, so nothing is deduplicated), one tree with
// those files at its root, and one commit whose tree is that tree and which has no parent.

std::string ChangeFileName(int f) { return Fmt("f%03d.bin", f); }

uint64_t ChangeSeed(uint64_t side, int thread, uint64_t iter, int file) {
  return Mix(Mix(Mix(side, static_cast<uint64_t>(thread)), iter), static_cast<uint64_t>(file));
}

class HttpCreateChange : public Worker {
 public:
  HttpCreateChange(const Server& server, int thread) : cli_(Connect(server)), thread_(thread), content_(kChangeFileSize, '\0') {
    url_ = Fmt("/v1/%s/%s/changes", kOrg, kRepo);
  }
  void Prepare(uint64_t iter) override {
    body_.clear();
    body_ += "{\"base_change_id\":\"";
    body_ += kRootChange;
    body_ += Fmt("\",\"message\":\"server_bench t%d i%llu\",\"files\":[", thread_, static_cast<unsigned long long>(iter));
    for (int f = 0; f < kChangeFiles; ++f) {
      FillBytes(ChangeSeed(1, thread_, iter, f), content_.data(), content_.size());
      if (f) body_ += ',';
      body_ += "{\"path\":\"" + ChangeFileName(f) + "\",\"content\":\"";
      body_ += mesa::rest::Base64Encode(content_);
      body_ += "\"}";
    }
    body_ += "]}";
  }
  OpResult Run(uint64_t iter, bool verify) override {
    auto res = cli_->Post(url_, body_, "application/json");
    if (!res || res->status != 201) return Fail(Describe(res));
    if (verify) {
      json j = json::parse(res->body, nullptr, false);
      if (j.is_discarded() || !j.contains("id")) return Fail("no change id in: " + res->body.substr(0, 300));
    }
    return {true, kChangeFiles * kChangeFileSize, body_.size(), {}};
  }

 private:
  std::unique_ptr<httplib::Client> cli_;
  int thread_;
  std::string url_, body_, content_;
};

// The same with git plumbing in a bare repo, one subprocess per step:
//   git hash-object -w --no-filters --stdin-paths   (the 100 files, written to tmpfs beforehand)
//   git mktree                                       (one tree of the 100 blobs)
//   git commit-tree TREE -m MSG                      (one commit)
class GitCreateChange : public Worker {
 public:
  GitCreateChange(const std::string& git_dir, const std::string& input_dir, int thread)
      : git_dir_(git_dir), thread_(thread), content_(kChangeFileSize, '\0') {
    fs::path dir = fs::path(input_dir) / ("t" + std::to_string(thread));
    fs::create_directories(dir);
    for (int f = 0; f < kChangeFiles; ++f) {
      files_.push_back((dir / ChangeFileName(f)).string());
      paths_ += files_.back() + "\n";
    }
  }
  void Prepare(uint64_t iter) override {
    iter_ = iter;
    for (int f = 0; f < kChangeFiles; ++f) {
      FillBytes(ChangeSeed(2, thread_, iter, f), content_.data(), content_.size());
      WriteFileOrDie(files_[f], content_);
    }
  }
  OpResult Run(uint64_t iter, bool verify) override {
    ProcResult blobs = RunProcess({"git", "--git-dir=" + git_dir_, "hash-object", "-w", "--no-filters", "--stdin-paths"}, paths_);
    if (!blobs.ok()) return Fail("git hash-object failed: " + blobs.out);
    std::string tree_input;
    size_t pos = 0;
    for (int f = 0; f < kChangeFiles; ++f) {
      size_t nl = blobs.out.find('\n', pos);
      if (nl == std::string::npos) return Fail("git hash-object printed too few ids");
      std::string_view oid(blobs.out.data() + pos, nl - pos);
      if (!IsHexOid(oid)) return Fail("git hash-object printed " + std::string(oid));
      tree_input += "100644 blob ";
      tree_input += oid;
      tree_input += "\t" + ChangeFileName(f) + "\n";
      pos = nl + 1;
    }
    ProcResult tree = RunProcess({"git", "--git-dir=" + git_dir_, "mktree"}, tree_input);
    std::string tree_oid = TrimRight(tree.out);
    if (!tree.ok() || !IsHexOid(tree_oid)) return Fail("git mktree failed: " + tree.out);
    ProcResult commit = RunProcess({"git", "--git-dir=" + git_dir_, "commit-tree", tree_oid, "-m",
                                    Fmt("server_bench t%d i%llu", thread_, static_cast<unsigned long long>(iter_))},
                                   "");
    if (!commit.ok() || !IsHexOid(TrimRight(commit.out))) return Fail("git commit-tree failed: " + commit.out);
    return {true, kChangeFiles * kChangeFileSize, kChangeFiles * kChangeFileSize, {}};
  }

 private:
  std::string git_dir_;
  int thread_;
  uint64_t iter_ = 0;
  std::string content_, paths_;
  std::vector<std::string> files_;
};

// ---------------------------------------------------------------------------------------------
// Report.

struct Row {
  std::string scenario, side;
  const Stats* stats;
};

struct RatioLine {
  std::string scenario, definition;
  double value;
};

double Ratio(const Stats& a, const Stats& b) { return b.OpsPerS() > 0 ? a.OpsPerS() / b.OpsPerS() : 0; }

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool OnTmpfs(const std::string& path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
}

std::string Human(double v) {
  if (v >= 100) return Fmt("%.0f", v);
  if (v >= 10) return Fmt("%.1f", v);
  return Fmt("%.2f", v);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);

  // Signals go to one thread that cleans up (kills the server, removes temp dirs) and exits.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // git must not read the user's or the system's configuration; commits need an identity.
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  for (const char* who : {"AUTHOR", "COMMITTER"}) {
    setenv(Fmt("GIT_%s_NAME", who).c_str(), "server_bench", 1);
    setenv(Fmt("GIT_%s_EMAIL", who).c_str(), "server_bench@localhost", 1);
  }

  const char* tmp_env = getenv("TMPDIR");
  std::string work = MakeTempDir(tmp_env && *tmp_env ? tmp_env : "/tmp");
  std::string shm = fs::is_directory("/dev/shm") ? MakeTempDir("/dev/shm") : MakeTempDir(work);
  bool shm_is_tmpfs = OnTmpfs(shm);
  if (!shm_is_tmpfs) std::cerr << "server_bench: warning: " << shm << " is not tmpfs; baselines read from it anyway\n";

  Server server = StartServer(opt.server, work);
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    Die(std::string("interrupted by ") + strsignal(sig));
  }).detach();

  ProcResult git_version = RunProcess({"git", "--version"}, "");
  if (!git_version.ok()) Die("git is required for the change-creation baseline");
  std::string git_dir = work + "/git-baseline.git";
  if (!RunProcess({"git", "init", "-q", "--bare", git_dir}, "").ok()) Die("git init --bare " + git_dir + " failed");

  std::cerr << "server_bench: " << server.version << " on 127.0.0.1:" << server.port << ", " << opt.clients
            << " clients, " << opt.seconds << " s per scenario\n";
  std::cerr << "  seeding " << kSmallFiles << " x 4 KiB + 1 x 8 MiB ..." << std::flush;
  Seed seed = SeedRepo(server);
  std::cerr << Fmt(" %.2f s, change %s", seed.seconds, seed.change_id.c_str()) << std::endl;
  Mirror mirror = MirrorOnTmpfs(seed, shm);

  FileSet small, big;
  small.paths = seed.small_paths;
  for (const auto& d : seed.small_data) small.data.push_back(&d);
  small.fds = mirror.small_fds;
  small.max_size = kSmallSize;
  big.paths = {kBigPath};
  big.data = {&seed.big_data};
  big.fds = {mirror.big_fd};
  big.max_size = kBigSize;

  const std::string& cid = seed.change_id;
  std::vector<std::string> json_file_urls;
  for (const auto& p : small.paths) json_file_urls.push_back(ContentUrl(p, cid));

  Stats raw_small = Measure("raw read 4 KiB (mesa-server)", opt, 20, [&](int t) {
    return std::make_unique<RawHttpRead>(server, &small, cid, t);
  });
  Stats raw_small_tmpfs = Measure("raw read 4 KiB (tmpfs pread)", opt, 100, [&](int t) {
    return std::make_unique<TmpfsRead>(&small, t);
  });
  std::optional<Stats> raw_big, raw_big_tmpfs;
  if (seed.has_big) {
    raw_big = Measure("raw read 8 MiB (mesa-server)", opt, 2, [&](int t) {
      return std::make_unique<RawHttpRead>(server, &big, cid, t);
    });
    raw_big_tmpfs = Measure("raw read 8 MiB (tmpfs pread)", opt, 2, [&](int t) {
      return std::make_unique<TmpfsRead>(&big, t);
    });
  } else {
    std::cerr << "  raw read 8 MiB: SKIPPED, the server refused the 8 MiB file: " << seed.big_error << std::endl;
  }
  Stats json_small = Measure("JSON read 4 KiB (mesa-server)", opt, 20, [&](int t) {
    return std::make_unique<JsonHttpRead>(server, json_file_urls, small.data, 0, t);
  });
  Stats list_d1 = Measure("list root depth=1 (mesa-server)", opt, 10, [&](int t) {
    return std::make_unique<JsonHttpRead>(server, std::vector<std::string>{ContentUrl("", cid, 1)},
                                          std::vector<const std::string*>{}, seed.root_entries, t);
  });
  Stats list_d10 = Measure("list root depth=10 (mesa-server)", opt, 5, [&](int t) {
    return std::make_unique<JsonHttpRead>(server, std::vector<std::string>{ContentUrl("", cid, 10)},
                                          std::vector<const std::string*>{}, seed.all_entries, t);
  });
  Stats create = Measure("create change 100 x 1 KiB (mesa-server)", opt, 2, [&](int t) {
    return std::make_unique<HttpCreateChange>(server, t);
  });
  Stats create_git = Measure("create change 100 x 1 KiB (git plumbing)", opt, 1, [&](int t) {
    return std::make_unique<GitCreateChange>(git_dir, shm + "/git-input", t);
  });

  // --- human table
  const Stats* none = nullptr;
  std::vector<Row> rows = {
      {"raw read 4 KiB", "mesa-server", &raw_small},
      {"", "tmpfs pread", &raw_small_tmpfs},
      {"raw read 8 MiB", "mesa-server", raw_big ? &*raw_big : none},
      {"", "tmpfs pread", raw_big_tmpfs ? &*raw_big_tmpfs : none},
      {"JSON read 4 KiB", "mesa-server", &json_small},
      {"list / depth=1", "mesa-server", &list_d1},
      {"list / depth=10", "mesa-server", &list_d10},
      {"create change 100x1KiB", "mesa-server", &create},
      {"", "git plumbing", &create_git},
  };
  std::vector<RatioLine> ratios = {
      {"raw read 4 KiB", "mesa-server / tmpfs pread", Ratio(raw_small, raw_small_tmpfs)},
      {"raw read 8 MiB", "mesa-server / tmpfs pread", raw_big ? Ratio(*raw_big, *raw_big_tmpfs) : -1},
      {"create change 100x1KiB", "mesa-server / git plumbing", Ratio(create, create_git)},
      {"JSON read 4 KiB", "JSON / raw, both mesa-server", Ratio(json_small, raw_small)},
  };
  struct utsname un {};
  uname(&un);
  unsigned cpus = std::thread::hardware_concurrency();
  auto per_op_kb = [](const Stats& s, uint64_t bytes) {
    return Human(s.ops ? static_cast<double>(bytes) / static_cast<double>(s.ops) / 1e3 : 0);
  };

  std::printf("\nserver_bench  %s  |  %d clients, %.3g s per scenario  |  %u CPUs, %s %s %s\n", server.version.c_str(),
              opt.clients, opt.seconds, cpus, un.sysname, un.release, un.machine);
  std::printf("(ops = requests, or changes for 'create change'; MB = 10^6 bytes of file payload, or of the JSON body)\n\n");
  std::printf("%-24s %-13s %12s %10s %9s %9s %7s\n", "scenario", "side", "ops/s", "MB/s", "p50 ms", "p99 ms", "errors");
  std::printf("%s\n", std::string(24 + 1 + 13 + 1 + 12 + 1 + 10 + 1 + 9 + 1 + 9 + 1 + 7, '-').c_str());
  for (const auto& r : rows) {
    if (!r.stats) {
      std::printf("%-24s %-13s %12s   (server refused the 8 MiB file, see below)\n", r.scenario.c_str(), r.side.c_str(),
                  "SKIPPED");
      continue;
    }
    std::printf("%-24s %-13s %12.1f %10.2f %9.4g %9.4g %7llu\n", r.scenario.c_str(), r.side.c_str(), r.stats->OpsPerS(),
                r.stats->MBPerS(), r.stats->p50, r.stats->p99, static_cast<unsigned long long>(r.stats->errors));
  }
  std::printf("\nper op: JSON 4 KiB read %s KB body; listing depth=1 %zu entries, %s KB; depth=10 %zu entries, %s KB;\n"
              "        change POST %s KB body (%s MB/s on the wire)\n",
              per_op_kb(json_small, json_small.bytes).c_str(), seed.root_entries, per_op_kb(list_d1, list_d1.bytes).c_str(),
              seed.all_entries, per_op_kb(list_d10, list_d10.bytes).c_str(), per_op_kb(create, create.wire_bytes).c_str(),
              Human(create.WireMBPerS()).c_str());
  std::printf("\nratios (throughput, same run; > 1 means the first is faster)\n");
  for (const auto& r : ratios) {
    if (r.value < 0) std::printf("  %-24s %-30s %10s\n", r.scenario.c_str(), r.definition.c_str(), "skipped");
    else std::printf("  %-24s %-30s %10.4f\n", r.scenario.c_str(), r.definition.c_str(), r.value);
  }
  if (!seed.has_big) std::printf("\nSKIPPED raw read 8 MiB: POST /changes with the 8 MiB file got %s\n", seed.big_error.c_str());

  // --- JSON
  auto scenario = [](const std::string& description, const Stats& s) {
    return json{{"description", description}, {"mesa_server", s.ToJson()}, {"baseline", nullptr}, {"ratio", nullptr}};
  };
  json scenarios;
  scenarios["raw_read_4k"] = scenario(
      "GET /content of one of 200 files of 4 KiB (rotating), Accept: application/octet-stream, body into a buffer",
      raw_small);
  scenarios["raw_read_4k"]["baseline"] = {{"name", "tmpfs_pread"},
                                          {"description", "pread of the same 200 files from " + shm + " into a buffer, same threads"},
                                          {"stats", raw_small_tmpfs.ToJson()}};
  scenarios["raw_read_4k"]["ratio"] = Ratio(raw_small, raw_small_tmpfs);
  const char* big_description = "GET /content of the 8 MiB file, Accept: application/octet-stream, body into a buffer";
  if (raw_big) {
    scenarios["raw_read_8m"] = scenario(big_description, *raw_big);
    scenarios["raw_read_8m"]["baseline"] = {{"name", "tmpfs_pread"},
                                            {"description", "pread of the same 8 MiB file from " + shm + " into a buffer, same threads"},
                                            {"stats", raw_big_tmpfs->ToJson()}};
    scenarios["raw_read_8m"]["ratio"] = Ratio(*raw_big, *raw_big_tmpfs);
  } else {
    scenarios["raw_read_8m"] = {{"description", big_description},
                                {"skipped", true},
                                {"reason", "the server refused to store the 8 MiB file: " + seed.big_error},
                                {"mesa_server", nullptr},
                                {"baseline", nullptr},
                                {"ratio", nullptr}};
  }
  scenarios["json_read_4k"] = scenario("GET /content of one of 200 files of 4 KiB as JSON (base64 content); bytes = JSON body",
                                       json_small);
  scenarios["json_read_4k"]["baseline"] = {{"name", "raw_read_4k"},
                                           {"description", "the raw 4 KiB read of this run (same server, same files)"},
                                           {"stats", raw_small.ToJson()}};
  scenarios["json_read_4k"]["ratio"] = Ratio(json_small, raw_small);
  scenarios["list_root_depth1"] = scenario("GET /content?path=&depth=1 (root listing); bytes = JSON body", list_d1);
  scenarios["list_root_depth1"]["entries_per_response"] = seed.root_entries;
  scenarios["list_root_depth10"] = scenario("GET /content?path=&depth=10 (whole tree, flattened); bytes = JSON body", list_d10);
  scenarios["list_root_depth10"]["entries_per_response"] = seed.all_entries;
  scenarios["create_change_100x1k"] = scenario(
      "POST /changes on the root with 100 new files of 1 KiB; bytes = file payload (102400 per change), "
      "wire_bytes = JSON request body (base64)",
      create);
  scenarios["create_change_100x1k"]["baseline"] = {
      {"name", "git_plumbing"},
      {"description",
       "per change, as subprocesses in a bare repo: git hash-object -w --stdin-paths (100 files on tmpfs), "
       "git mktree, git commit-tree"},
      {"stats", create_git.ToJson()}};
  scenarios["create_change_100x1k"]["ratio"] = Ratio(create, create_git);

  uint64_t errors = 0;
  for (const auto& r : rows)
    if (r.stats) errors += r.stats->errors;

  json report = {
      {"benchmark", "server_bench"},
      {"schema_version", 1},
      {"finished_at", UtcNow()},
      {"config",
       {{"seconds", opt.seconds},
        {"clients", opt.clients},
        {"server", opt.server},
        {"server_version", server.version},
        {"git_version", TrimRight(git_version.out)},
        {"store_dir", server.data_dir},
        {"baseline_dir", shm},
        {"baseline_dir_is_tmpfs", shm_is_tmpfs}}},
      {"host", {{"cpus", cpus}, {"kernel", std::string(un.sysname) + " " + un.release}, {"machine", un.machine}}},
      {"units",
       {{"ops_per_s", "requests per second (changes per second for create_change_100x1k)"},
        {"mb_per_s", "10^6 bytes per second of `bytes`"},
        {"latency_ms", "milliseconds per operation, nearest-rank percentiles over all threads"},
        {"ratio", "mesa_server.ops_per_s / baseline.stats.ops_per_s"}}},
      {"seed",
       {{"change_id", seed.change_id},
        {"small_files", kSmallFiles},
        {"small_file_bytes", kSmallSize},
        {"small_file_dirs", kSmallDirs},
        {"big_file", kBigPath},
        {"big_file_bytes", kBigSize},
        {"big_file_stored", seed.has_big},
        {"seed_seconds", seed.seconds}}},
      {"scenarios", scenarios},
      {"errors", errors},
  };
  if (!seed.has_big) report["seed"]["big_file_error"] = seed.big_error;

  fs::path out(opt.out);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  std::ofstream file(out);
  file << report.dump(2) << "\n";
  file.close();
  if (!file) Die("cannot write " + opt.out);
  std::printf("\nJSON: %s\n", fs::absolute(out).c_str());
  std::fflush(stdout);

  for (int fd : mirror.small_fds) close(fd);
  close(mirror.big_fd);
  Cleanup();
  if (errors) {
    std::cerr << "server_bench: " << errors << " operations failed (see first_error in " << opt.out << ")\n";
    return 1;
  }
  return 0;
}
