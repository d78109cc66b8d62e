// daemon_bench: what going through mesad costs. Every mesad figure is measured next to a
// same-run baseline that makes the same REST request straight to the same mesa-server, so the
// results read as ratios (mesad latency ÷ direct latency). See bench/README.md.
//
//   daemon_bench [--server PATH] [--mesad PATH] [--cli PATH] [--out FILE.json]
//                [--seconds N] [--threads N] [--runs N] [--shared-client]
//
// It starts its own mesa-server (init + serve on a fresh temp store, a free loopback port, access
// log off) and its own mesad in remote mode against it (socket, state and cache in the same temp
// directory), logs in to mesad with the server's admin key (make_default), seeds repo acme/bench
// with one 4 KiB file f.txt (main moved to it), then measures:
//   1. unary RPCs through the C++ client library at concurrency 1 and --threads:
//      Sessions.ListSessions (daemon-local), Repos.GetRepo and Content.GetContent raw (one REST
//      GET each, forwarded by mesad); the last two next to the same GET made directly with a
//      keep-alive cpp-httplib client;
//   2. `mesa --socket S whoami` as a process, --runs times, next to `curl -s ... /v1/whoami`.
// The direct GETs are also repeated with the Accept-Encoding header that mesad's libcurl sends
// (CURLOPT_ACCEPT_ENCODING ""), a diagnostic that separates the cost of response compression
// from the cost of the extra hop.
#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mesa/client.h"
#include "nlohmann/json.hpp"
#include "rest/encoding.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kRootChange = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
constexpr const char* kOrg = "acme";
constexpr const char* kRepo = "bench";
constexpr const char* kFile = "f.txt";
constexpr size_t kFileSize = 4096;
// What mesad's libcurl sends with CURLOPT_ACCEPT_ENCODING "" (libcurl 7.88 with zlib, brotli and
// zstd); cpp-httplib's client sends no Accept-Encoding at all.
constexpr const char* kMesadAcceptEncoding = "deflate, gzip, br, zstd";

// ---------------------------------------------------------------------------------------------
// Process-wide cleanup: the children (mesad first, then mesa-server) and the temp directory go
// away on every exit path.

std::mutex g_cleanup_mu;
std::vector<pid_t> g_children;  // in start order; stopped in reverse
std::vector<std::string> g_temp_dirs;

void StopChild(pid_t pid) {
  // SIGTERM first; mesad drains RPCs for up to 10 s and a keep-alive connection can hold
  // mesa-server's shutdown, so SIGKILL after 3 s.
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

void Cleanup() {
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  for (auto it = g_children.rbegin(); it != g_children.rend(); ++it) StopChild(*it);
  g_children.clear();
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
  std::cerr << "daemon_bench: " << message << std::endl;
  Cleanup();
  std::_Exit(1);
}

std::string MakeTempDir(const std::string& parent) {
  std::string tmpl = parent + "/daemon_bench-XXXXXX";
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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Tail(const std::string& text, size_t n = 2000) { return text.size() <= n ? text : "..." + text.substr(text.size() - n); }

// Deterministic, incompressible bytes (xorshift64*), identical on every run.
std::string Bytes(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  uint64_t x = (seed * 0x9E3779B97F4A7C15ull) | 1;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1Dull;
    memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---------------------------------------------------------------------------------------------
// Subprocesses. posix_spawn (no fork of a process that has gRPC threads); stdout (and stderr,
// unless merge_stderr is false) of the child go to one pipe that is read to EOF.

struct ProcResult {
  int status = -1;
  std::string out;  // stdout (+ stderr)
  double ms = 0;    // wall time from spawn to reaped
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
  result.ms = Ms(Clock::now() - t0);
  return result;
}

// A long-running child (mesa-server serve, mesad): stdout and stderr to `log`, SIGTERM when the
// benchmark dies (even by kill -9). Called before any thread exists, so fork is safe.
pid_t StartChild(const std::vector<std::string>& argv, const std::string& log) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) Die(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
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
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  g_children.push_back(pid);
  return pid;
}

bool Exited(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return false;
  std::lock_guard<std::mutex> lock(g_cleanup_mu);
  g_children.erase(std::remove(g_children.begin(), g_children.end(), pid), g_children.end());
  return true;
}

// ---------------------------------------------------------------------------------------------
// Options.

struct Options {
  std::string server = MESA_SERVER_BIN;
  std::string mesad = MESAD_BIN;
  std::string cli = MESA_CLI_BIN;  // empty when this build has no `mesa` target
  std::string out = MESA_SOURCE_DIR "/bench/results/daemon_bench.json";
  double seconds = 3;
  int threads = 8;
  int runs = 50;
  bool shared_client = false;
};

constexpr const char* kUsage =
    "usage: daemon_bench [--server PATH] [--mesad PATH] [--cli PATH] [--out FILE.json]\n"
    "                    [--seconds N] [--threads N] [--runs N] [--shared-client]\n"
    "  --server         mesa-server binary (default: the one from this build)\n"
    "  --mesad          mesad binary (default: the one from this build)\n"
    "  --cli            mesa CLI binary (default: the one from this build; empty: skip the CLI scenario)\n"
    "  --out            JSON results file; its directory is created (default: bench/results/daemon_bench.json)\n"
    "  --seconds        measured seconds per RPC scenario, per side and per concurrency (default 3)\n"
    "  --threads        the higher concurrency of the RPC scenarios; the lower is always 1 (default 8)\n"
    "  --runs           process spawns per side in the CLI scenario (default 50)\n"
    "  --shared-client  all threads share one mesa::Client (default: one mesa::Client per thread)\n";

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a == "--shared-client") {
      o.shared_client = true;
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
      std::cerr << "daemon_bench: " << a << " needs a value\n" << kUsage;
      std::exit(2);
    }
    try {
      if (key == "--server") o.server = value;
      else if (key == "--mesad") o.mesad = value;
      else if (key == "--cli") o.cli = value;
      else if (key == "--out") o.out = value;
      else if (key == "--seconds") o.seconds = std::stod(value);
      else if (key == "--threads") o.threads = std::stoi(value);
      else if (key == "--runs") o.runs = std::stoi(value);
      else {
        std::cerr << "daemon_bench: unknown flag " << key << "\n" << kUsage;
        std::exit(2);
      }
    } catch (const std::exception&) {
      std::cerr << "daemon_bench: bad value for " << key << ": " << value << "\n";
      std::exit(2);
    }
  }
  if (!(o.seconds > 0) || o.threads < 1 || o.threads > 256 || o.runs < 1 || o.runs > 100000) {
    std::cerr << "daemon_bench: need --seconds > 0, 1 <= --threads <= 256 and --runs >= 1\n";
    std::exit(2);
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// mesa-server.

struct Server {
  int port = 0;
  pid_t pid = -1;
  std::string key;
  std::string version;
  std::string data_dir;
  std::string log;
  std::string api_url() const { return Fmt("http://127.0.0.1:%d/v1", port); }
};

// One keep-alive connection, like each of mesad's pooled curl handles.
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
  server.data_dir = dir + "/server-store";
  server.log = dir + "/server.log";
  ProcResult version = RunProcess({bin, "--version"});
  if (!version.ok()) Die("cannot run " + bin + " --version (use --server PATH): " + version.out);
  server.version = TrimRight(version.out);
  ProcResult init = RunProcess({bin, "init", "--data", server.data_dir, "--org", kOrg}, /*merge_stderr=*/false);
  if (!init.ok()) Die(bin + " init failed:\n" + init.out);
  server.key = LastLine(init.out);
  if (server.key.empty()) Die("mesa-server init printed no API key");

  // Port 0: the server binds a free port and logs "listening on 127.0.0.1:PORT", so there is no
  // window between picking a port and binding it.
  server.pid = StartChild({bin, "serve", "--data", server.data_dir, "--listen", "127.0.0.1:0", "--access-log", "off"},
                          server.log);
  auto give_up = Clock::now() + std::chrono::seconds(20);
  while (server.port == 0) {
    std::string text = ReadFile(server.log);
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
    if (Exited(server.pid)) Die("mesa-server serve exited early:\n" + Tail(text));
    if (Clock::now() > give_up) Die("mesa-server did not start within 20 s:\n" + Tail(text));
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

// Repo acme/bench with one change holding f.txt (4 KiB), main moved to it.
std::string SeedRepo(const Server& server, const std::string& data) {
  auto cli = Connect(server);
  auto repo = cli->Post(Fmt("/v1/%s/repos", kOrg), json({{"name", kRepo}}).dump(), "application/json");
  if (!repo || repo->status != 201) Die("create repo: " + Describe(repo));
  json body = {{"base_change_id", kRootChange},
               {"message", "daemon_bench seed"},
               {"files", json::array({{{"path", kFile}, {"content", mesa::rest::Base64Encode(data)}}})}};
  auto change = cli->Post(Fmt("/v1/%s/%s/changes", kOrg, kRepo), body.dump(), "application/json");
  if (!change || change->status != 201) Die("create seed change: " + Describe(change));
  std::string change_id = json::parse(change->body).at("id").get<std::string>();
  auto main = cli->Patch(Fmt("/v1/%s/%s/bookmarks/main", kOrg, kRepo), json({{"change_id", change_id}}).dump(),
                         "application/json");
  if (!main || main->status != 200) Die("move main: " + Describe(main));
  return change_id;
}

// ---------------------------------------------------------------------------------------------
// mesad, remote mode.

struct Daemon {
  pid_t pid = -1;
  std::string socket;
  std::string log;
  std::string version;
  std::string session_id;
};

mesa::ClientOptions ClientOptionsFor(const Daemon& d) {
  mesa::ClientOptions o;
  o.socket = d.socket;
  o.timeout = std::chrono::seconds(60);
  return o;
}

Daemon StartDaemon(const std::string& bin, const std::string& dir, const Server& server) {
  Daemon d;
  d.socket = dir + "/mesad.sock";
  d.log = dir + "/mesad.log";
  ProcResult version = RunProcess({bin, "--version"});
  if (!version.ok()) Die("cannot run " + bin + " --version (use --mesad PATH): " + version.out);
  d.version = TrimRight(version.out);
  d.pid = StartChild({bin, "--socket", d.socket, "--state-dir", dir + "/mesad-state", "--cache-dir", dir + "/mesad-cache",
                      "--api-url", server.api_url(), "--log-level", "warning"},
                     d.log);
  return d;
}

// After the gRPC library is up (creates threads): waits for the socket, then logs in.
void LoginDaemon(Daemon& d, const Server& server) {
  auto give_up = Clock::now() + std::chrono::seconds(20);
  std::string last_error;
  for (;;) {
    if (Exited(d.pid)) Die("mesad exited early:\n" + Tail(ReadFile(d.log)));
    if (fs::exists(d.socket)) {
      try {
        mesa::Client probe(ClientOptionsFor(d));
        probe.sessions().list();  // daemon-local: does not need the backend
        break;
      } catch (const std::exception& e) {
        last_error = e.what();
      }
    }
    if (Clock::now() > give_up) Die("mesad did not answer on " + d.socket + " within 20 s (" + last_error + "):\n" + Tail(ReadFile(d.log)));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  mesa::Client client(ClientOptionsFor(d));
  mesa::dv1::LoginRequest req;
  req.set_api_key(server.key);
  req.set_make_default(true);
  req.set_user_agent("daemon_bench");
  try {
    d.session_id = client.sessions().login(req).session_id();
    mesa::v1::Whoami who = client.sessions().whoami();
    (void)who;
  } catch (const std::exception& e) {
    Die(std::string("login to mesad with the server's key failed: ") + e.what() + "\n" + Tail(ReadFile(d.log)));
  }
}

// ---------------------------------------------------------------------------------------------
// The measurement loop (the same shape as server_bench's).

struct OpResult {
  bool ok = false;
  uint64_t bytes = 0;  // payload bytes (file bytes for reads), 0 where it means nothing
  std::string error;   // filled only when !ok
};

OpResult Fail(std::string error) { return {false, 0, std::move(error)}; }

class Worker {
 public:
  virtual ~Worker() = default;
  // One timed operation. `verify` (warm-up only) compares full contents, not just sizes.
  virtual OpResult Run(uint64_t iter, bool verify) = 0;
};
using WorkerFactory = std::function<std::unique_ptr<Worker>(int thread)>;

struct Stats {
  uint64_t ops = 0, errors = 0, bytes = 0;
  double seconds = 0;
  double p50 = 0, p90 = 0, p99 = 0, mean = 0, min = 0, max = 0;
  std::string first_error;

  double OpsPerS() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }

  json ToJson() const {
    json j = {{"ops", ops},
              {"errors", errors},
              {"seconds", seconds},
              {"ops_per_s", OpsPerS()},
              {"bytes_per_op", ops ? static_cast<double>(bytes) / static_cast<double>(ops) : 0},
              {"latency_ms", {{"p50", p50}, {"p90", p90}, {"p99", p99}, {"mean", mean}, {"min", min}, {"max", max}}}};
    if (!first_error.empty()) j["first_error"] = first_error;
    return j;
  }
};

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];  // nearest rank
}

void FillLatencies(Stats& s, std::vector<double>& all) {
  std::sort(all.begin(), all.end());
  if (all.empty()) return;
  s.p50 = Percentile(all, 0.50);
  s.p90 = Percentile(all, 0.90);
  s.p99 = Percentile(all, 0.99);
  s.min = all.front();
  s.max = all.back();
  double sum = 0;
  for (double v : all) sum += v;
  s.mean = sum / static_cast<double>(all.size());
}

Stats Measure(const std::string& label, double seconds_per_run, int n, int warmup, const WorkerFactory& make) {
  std::cerr << "  " << label << " ..." << std::flush;
  std::vector<std::vector<double>> latencies(n);
  std::vector<Stats> per_thread(n);
  std::vector<Clock::time_point> ends(n);
  Clock::time_point start, deadline;
  auto seconds = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds_per_run));
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
        OpResult r = worker->Run(iter, /*verify=*/true);
        if (!r.ok) Die(label + ": warm-up operation failed in thread " + std::to_string(t) + ": " + r.error);
      }
      std::vector<double>& lat = latencies[t];
      lat.reserve(1 << 16);
      Stats& s = per_thread[t];
      sync.arrive_and_wait();
      Clock::time_point now = Clock::now();
      while (now < deadline) {
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
        lat.push_back(Ms(now - t0));
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
    if (total.first_error.empty()) total.first_error = per_thread[t].first_error;
    all.insert(all.end(), latencies[t].begin(), latencies[t].end());
  }
  // Operations that started before the deadline all count, so the window ends at the last one.
  total.seconds = std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) - start).count();
  FillLatencies(total, all);
  std::cerr << Fmt(" %.0f ops/s, p50 %.3f ms", total.OpsPerS(), total.p50)
            << (total.errors ? Fmt(", %llu errors", static_cast<unsigned long long>(total.errors)) : "") << std::endl;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Workers: through mesad (the C++ client library).

// Either one mesa::Client per thread or one shared by all threads (--shared-client).
class ClientPool {
 public:
  ClientPool(const Daemon& d, bool shared) : options_(ClientOptionsFor(d)), shared_(shared) {}
  std::shared_ptr<mesa::Client> Get() {
    if (!shared_) return std::make_shared<mesa::Client>(options_);
    std::lock_guard<std::mutex> lock(mu_);
    if (!one_) one_ = std::make_shared<mesa::Client>(options_);
    return one_;
  }

 private:
  mesa::ClientOptions options_;
  bool shared_;
  std::mutex mu_;
  std::shared_ptr<mesa::Client> one_;
};

template <typename Fn>
OpResult Guard(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
}

class ListSessionsRpc : public Worker {
 public:
  ListSessionsRpc(std::shared_ptr<mesa::Client> c, std::string session_id) : c_(std::move(c)), session_id_(std::move(session_id)) {}
  OpResult Run(uint64_t, bool verify) override {
    return Guard([&]() -> OpResult {
      auto sessions = c_->sessions().list();
      if (sessions.empty()) return Fail("ListSessions returned no session");
      if (verify) {
        bool found = false;
        for (const auto& s : sessions) found = found || (s.id() == session_id_ && s.is_default());
        if (!found) return Fail("ListSessions does not list the bench session as the default");
      }
      return {true, 0, {}};
    });
  }

 private:
  std::shared_ptr<mesa::Client> c_;
  std::string session_id_;
};

class GetRepoRpc : public Worker {
 public:
  explicit GetRepoRpc(std::shared_ptr<mesa::Client> c) : c_(std::move(c)) {}
  OpResult Run(uint64_t, bool verify) override {
    return Guard([&]() -> OpResult {
      mesa::v1::Repo repo = c_->repos().get(kRepo);
      if (repo.name() != kRepo) return Fail("GetRepo returned repo " + repo.name());
      if (verify && repo.org() != kOrg) return Fail("GetRepo returned org " + repo.org());
      return {true, 0, {}};
    });
  }

 private:
  std::shared_ptr<mesa::Client> c_;
};

class ReadRpc : public Worker {
 public:
  ReadRpc(std::shared_ptr<mesa::Client> c, const std::string* want) : c_(std::move(c)), want_(want) {}
  OpResult Run(uint64_t, bool verify) override {
    return Guard([&]() -> OpResult {
      std::string bytes = c_->content().read(kRepo, kFile);
      if (bytes.size() != want_->size()) return Fail(Fmt("read %zu bytes, want %zu", bytes.size(), want_->size()));
      if (verify && bytes != *want_) return Fail("wrong bytes for f.txt through mesad");
      return {true, bytes.size(), {}};
    });
  }

 private:
  std::shared_ptr<mesa::Client> c_;
  const std::string* want_;
};

// ---------------------------------------------------------------------------------------------
// Workers: the same REST requests straight to mesa-server (one keep-alive connection per thread).

// `mesad_encoding`: also send mesad's Accept-Encoding (the client then decompresses, as libcurl
// does in mesad). The Content-Encoding of the warm-up answers is recorded in `*seen_encoding`.
struct DirectVariant {
  bool mesad_encoding = false;
  std::mutex* mu = nullptr;
  std::string* seen_encoding = nullptr;
};

class DirectGet : public Worker {
 public:
  DirectGet(const Server& s, std::string url, std::string accept, DirectVariant v)
      : cli_(Connect(s)), url_(std::move(url)), variant_(v) {
    headers_ = {{"Accept", std::move(accept)}};
    if (v.mesad_encoding) headers_.emplace("Accept-Encoding", kMesadAcceptEncoding);
  }
  OpResult Run(uint64_t, bool verify) override {
    auto res = cli_->Get(url_, headers_);
    if (!res || res->status != 200) return Fail(Describe(res));
    if (verify && variant_.seen_encoding) {
      std::string enc = res->get_header_value("Content-Encoding");
      std::lock_guard<std::mutex> lock(*variant_.mu);
      *variant_.seen_encoding = enc.empty() ? "identity" : enc;
    }
    return Check(res->body, verify);
  }

 protected:
  virtual OpResult Check(const std::string& body, bool verify) = 0;

 private:
  std::unique_ptr<httplib::Client> cli_;
  std::string url_;
  DirectVariant variant_;
  httplib::Headers headers_;
};

class GetRepoDirect : public DirectGet {
 public:
  GetRepoDirect(const Server& s, DirectVariant v) : DirectGet(s, Fmt("/v1/%s/%s", kOrg, kRepo), "application/json", v) {}

 protected:
  OpResult Check(const std::string& body, bool verify) override {
    if (verify) {
      json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || j.value("name", "") != kRepo) return Fail("unexpected repo: " + body.substr(0, 300));
    }
    return {true, 0, {}};
  }
};

class ReadDirect : public DirectGet {
 public:
  ReadDirect(const Server& s, const std::string* want, DirectVariant v)
      : DirectGet(s, Fmt("/v1/%s/%s/content?path=%s", kOrg, kRepo, kFile), "application/octet-stream", v), want_(want) {}

 protected:
  OpResult Check(const std::string& body, bool verify) override {
    if (body.size() != want_->size()) return Fail(Fmt("read %zu bytes, want %zu", body.size(), want_->size()));
    if (verify && body != *want_) return Fail("wrong bytes for f.txt from mesa-server");
    return {true, body.size(), {}};
  }

 private:
  const std::string* want_;
};

// ---------------------------------------------------------------------------------------------
// Process-spawn scenario: `mesa --socket S whoami` against `curl -s ... /v1/whoami`, alternating
// one run of each so that drift on the machine hits both sides alike.

struct SpawnSide {
  std::string name;
  std::vector<std::string> argv;
  std::string must_contain;  // checked on every run
  Stats stats;
  std::vector<double> latencies;
  std::string sample_output;
};

void RunSpawnPair(SpawnSide& a, SpawnSide& b, int runs, int warmup) {
  std::cerr << "  " << a.name << " vs " << b.name << ", " << runs << " runs each ..." << std::flush;
  for (SpawnSide* side : {&a, &b}) {
    for (int i = 0; i < warmup; ++i) {
      ProcResult r = RunProcess(side->argv);
      if (!r.ok() || r.out.find(side->must_contain) == std::string::npos)
        Die(side->name + ": warm-up run failed (status " + std::to_string(r.status) + "): " + Tail(r.out, 600));
      side->sample_output = TrimRight(r.out);
    }
  }
  Clock::time_point start = Clock::now();
  for (int i = 0; i < runs; ++i) {
    for (SpawnSide* side : {&a, &b}) {
      ProcResult r = RunProcess(side->argv);
      if (!r.ok() || r.out.find(side->must_contain) == std::string::npos) {
        if (side->stats.errors++ == 0)
          side->stats.first_error = "status " + std::to_string(r.status) + ": " + Tail(r.out, 600);
        continue;
      }
      ++side->stats.ops;
      side->latencies.push_back(r.ms);
    }
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (SpawnSide* side : {&a, &b}) {
    // Each side ran during about half the window; ops/s is reported per side as 1000 / mean.
    FillLatencies(side->stats, side->latencies);
    side->stats.seconds = side->stats.mean * static_cast<double>(side->stats.ops) / 1000.0;
  }
  std::cerr << Fmt(" %.1f s, p50 %.2f ms vs %.2f ms", seconds, a.stats.p50, b.stats.p50) << std::endl;
}

// ---------------------------------------------------------------------------------------------
// Report.

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double SafeDiv(double a, double b) { return b > 0 ? a / b : 0; }

struct RpcScenario {
  std::string key;        // JSON name
  std::string label;      // table name
  std::string description;
  std::string baseline_description;  // empty: no baseline
  int concurrency = 1;
  Stats mesad;
  std::optional<Stats> direct;     // the baseline of the brief: Authorization + Accept only
  std::optional<Stats> direct_ae;  // diagnostic: plus mesad's Accept-Encoding
  std::string direct_encoding, direct_ae_encoding;  // Content-Encoding the server answered with

  static json RatioOf(const Stats& a, const Stats& b) {
    return {{"p50", SafeDiv(a.p50, b.p50)}, {"p99", SafeDiv(a.p99, b.p99)}, {"ops_per_s", SafeDiv(a.OpsPerS(), b.OpsPerS())}};
  }
};

RpcScenario NewScenario(std::string key, std::string label, std::string description, std::string baseline_description,
                        int concurrency) {
  RpcScenario s;
  s.key = std::move(key);
  s.label = std::move(label);
  s.description = std::move(description);
  s.baseline_description = std::move(baseline_description);
  s.concurrency = concurrency;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = ParseOptions(argc, argv);

  // Signals go to one thread that cleans up (stops the children, removes temp dirs) and exits.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const char* tmp_env = getenv("TMPDIR");
  std::string work = MakeTempDir(tmp_env && *tmp_env ? tmp_env : "/tmp");

  // Both children are forked before any thread exists (gRPC starts threads with the first client).
  Server server = StartServer(opt.server, work);
  Daemon daemon = StartDaemon(opt.mesad, work, server);
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    Die(std::string("interrupted by ") + strsignal(sig));
  }).detach();

  const std::string file_data = Bytes(4242, kFileSize);
  std::string change_id = SeedRepo(server, file_data);
  LoginDaemon(daemon, server);

  // The CLI and curl for the process-spawn scenario.
  std::string cli_skip_reason;
  std::string cli_version;
  if (opt.cli.empty()) {
    cli_skip_reason = "no mesa CLI: this build has no `mesa` target, or --cli was empty";
  } else if (ProcResult v = RunProcess({opt.cli, "--version"}); !v.ok()) {
    cli_skip_reason = "cannot run " + opt.cli + " --version: " + Tail(TrimRight(v.out), 300);
  } else {
    cli_version = TrimRight(v.out);
  }
  std::string curl_version;
  if (ProcResult v = RunProcess({"curl", "--version"}); v.ok()) {
    curl_version = v.out.substr(0, v.out.find('\n'));
  } else if (cli_skip_reason.empty()) {
    cli_skip_reason = "curl is not on PATH (the baseline of the CLI scenario)";
  }

  const int high = opt.threads;
  std::vector<int> levels = {1};
  if (high != 1) levels.push_back(high);
  std::string client_model = opt.shared_client ? "one mesa::Client shared by all threads"
                                               : "one mesa::Client per thread";

  std::cerr << "daemon_bench: " << server.version << " on 127.0.0.1:" << server.port << ", " << daemon.version
            << " on " << daemon.socket << "\n  " << opt.seconds << " s per scenario and side, concurrency 1 and " << high
            << " (" << client_model << "; direct: one keep-alive HTTP connection per thread), " << opt.runs
            << " process runs per side\n";

  ClientPool pool(daemon, opt.shared_client);
  std::mutex enc_mu;
  std::vector<RpcScenario> rpc;
  for (int n : levels) {
    RpcScenario s = NewScenario(Fmt("list_sessions_c%d", n), "ListSessions (local)",
                  "Sessions.ListSessions through the C++ client: answered by mesad alone (no backend call)", "", n);
    s.mesad = Measure(Fmt("ListSessions, mesad, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<ListSessionsRpc>(pool.Get(), daemon.session_id);
    });
    rpc.push_back(std::move(s));
  }
  for (int n : levels) {
    RpcScenario s = NewScenario(Fmt("get_repo_c%d", n), "GetRepo", "Repos.GetRepo(\"bench\") through the C++ client: mesad forwards one GET /v1/acme/bench",
                  "GET /v1/acme/bench straight to mesa-server, Accept: application/json, cpp-httplib keep-alive, one connection per thread",
                  n);
    s.mesad = Measure(Fmt("GetRepo, mesad, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<GetRepoRpc>(pool.Get());
    });
    s.direct = Measure(Fmt("GET /v1/acme/bench, direct, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<GetRepoDirect>(server, DirectVariant{false, &enc_mu, &s.direct_encoding});
    });
    s.direct_ae = Measure(Fmt("GET /v1/acme/bench, direct + mesad's Accept-Encoding, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<GetRepoDirect>(server, DirectVariant{true, &enc_mu, &s.direct_ae_encoding});
    });
    rpc.push_back(std::move(s));
  }
  for (int n : levels) {
    RpcScenario s = NewScenario(Fmt("read_4k_c%d", n), "read f.txt 4 KiB",
                  "Content.read(\"bench\", \"f.txt\") through the C++ client (GetContent raw): mesad forwards one GET "
                  "/v1/acme/bench/content?path=f.txt with Accept: application/octet-stream",
                  "GET /v1/acme/bench/content?path=f.txt straight to mesa-server, Accept: application/octet-stream, "
                  "cpp-httplib keep-alive, one connection per thread",
                  n);
    s.mesad = Measure(Fmt("read 4 KiB, mesad, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<ReadRpc>(pool.Get(), &file_data);
    });
    s.direct = Measure(Fmt("GET content raw 4 KiB, direct, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<ReadDirect>(server, &file_data, DirectVariant{false, &enc_mu, &s.direct_encoding});
    });
    s.direct_ae = Measure(Fmt("GET content raw 4 KiB, direct + mesad's Accept-Encoding, c=%d", n), opt.seconds, n, 20, [&](int) {
      return std::make_unique<ReadDirect>(server, &file_data, DirectVariant{true, &enc_mu, &s.direct_ae_encoding});
    });
    rpc.push_back(std::move(s));
  }

  SpawnSide cli_side{"mesa whoami", {opt.cli, "--socket", daemon.socket, "whoami"}, kOrg, {}, {}, {}};
  SpawnSide curl_side{"curl /v1/whoami",
                      {"curl", "-s", "-H", "Authorization: Bearer " + server.key, server.api_url() + "/whoami"},
                      Fmt("\"%s\"", kOrg), {}, {}, {}};
  if (cli_skip_reason.empty()) {
    RunSpawnPair(cli_side, curl_side, opt.runs, 3);
  } else {
    std::cerr << "  mesa whoami: SKIPPED, " << cli_skip_reason << std::endl;
  }

  // --- human table
  struct utsname un {};
  uname(&un);
  unsigned cpus = std::thread::hardware_concurrency();
  std::printf("\ndaemon_bench  %s via %s  |  %.3g s per scenario and side, %d spawns per side  |  %u CPUs, %s %s %s\n",
              daemon.version.c_str(), server.version.c_str(), opt.seconds, opt.runs, cpus, un.sysname, un.release,
              un.machine);
  std::printf("(c = concurrent threads; mesad side: %s over the Unix socket; direct side: one keep-alive HTTP\n"
              " connection per thread to mesa-server on 127.0.0.1; latencies in ms)\n\n",
              client_model.c_str());
  const int width = 22 + 1 + 3 + 1 + 16 + 1 + 10 + 1 + 8 + 1 + 8 + 1 + 8 + 1 + 6;
  std::printf("%-22s %3s %-16s %10s %8s %8s %8s %6s\n", "scenario", "c", "side", "ops/s", "p50", "p90", "p99", "errors");
  std::printf("%s\n", std::string(width, '-').c_str());
  auto row = [](const std::string& scenario, const std::string& c, const std::string& side, const Stats& s) {
    std::printf("%-22s %3s %-16s %10.1f %8.3f %8.3f %8.3f %6llu\n", scenario.c_str(), c.c_str(), side.c_str(), s.OpsPerS(),
                s.p50, s.p90, s.p99, static_cast<unsigned long long>(s.errors));
  };
  for (const auto& s : rpc) {
    row(s.label, std::to_string(s.concurrency), "mesad (client)", s.mesad);
    if (s.direct) row("", "", "direct HTTP", *s.direct);
    if (s.direct_ae) row("", "", "direct HTTP +AE", *s.direct_ae);
  }
  if (cli_skip_reason.empty()) {
    row("whoami, process spawn", "1", "mesa CLI", cli_side.stats);
    row("", "", "curl", curl_side.stats);
  } else {
    std::printf("%-22s %3s %-16s %10s   (%s)\n", "whoami, process spawn", "1", "mesa CLI", "SKIPPED", cli_skip_reason.c_str());
  }
  std::printf("(+AE: the same direct GET with mesad's \"Accept-Encoding: %s\"; a diagnostic, not the baseline)\n",
              kMesadAcceptEncoding);
  std::printf("\nratios, mesad ÷ baseline (same run; latency > 1 = slower through mesad; ops/s < 1 = fewer through mesad)\n");
  std::printf("  %-22s %3s %-16s %8s %8s %8s %13s\n", "scenario", "c", "baseline", "p50", "p99", "ops/s", "p50 added ms");
  auto ratio_row = [](const std::string& label, const std::string& c, const char* base, const Stats& a, const Stats& b) {
    std::printf("  %-22s %3s %-16s %8.3f %8.3f %8.3f %+13.3f\n", label.c_str(), c.c_str(), base, SafeDiv(a.p50, b.p50),
                SafeDiv(a.p99, b.p99), SafeDiv(a.OpsPerS(), b.OpsPerS()), a.p50 - b.p50);
  };
  for (const auto& s : rpc) {
    if (!s.direct) continue;
    ratio_row(s.label, std::to_string(s.concurrency), "direct HTTP", s.mesad, *s.direct);
    if (s.direct_ae) ratio_row("", "", "direct HTTP +AE", s.mesad, *s.direct_ae);
  }
  if (cli_skip_reason.empty()) {
    std::printf("  %-22s %3d %-16s %8.3f %8.3f %8s %+13.3f\n", "whoami, process spawn", 1, "curl",
                SafeDiv(cli_side.stats.p50, curl_side.stats.p50), SafeDiv(cli_side.stats.p99, curl_side.stats.p99), "-",
                cli_side.stats.p50 - curl_side.stats.p50);
  } else {
    std::printf("  %-22s %3d %-16s %8s\n", "whoami, process spawn", 1, "curl", "skipped");
  }
  std::string encodings;
  for (const auto& s : rpc) {
    if (!s.direct) continue;
    encodings += Fmt("\n  %s c=%d: %s without Accept-Encoding, %s with mesad's", s.label.c_str(), s.concurrency,
                     s.direct_encoding.c_str(), s.direct_ae_encoding.c_str());
  }
  std::printf("\nContent-Encoding of mesa-server's answers:%s\n", encodings.c_str());

  // --- JSON
  json scenarios = json::object();
  uint64_t errors = 0;
  for (const auto& s : rpc) {
    json j = {{"description", s.description},
              {"concurrency", s.concurrency},
              {"client", client_model},
              {"mesad", s.mesad.ToJson()},
              {"baseline", nullptr},
              {"ratio", nullptr}};
    errors += s.mesad.errors;
    if (s.direct) {
      j["baseline"] = {{"name", "direct_rest"},
                       {"description", s.baseline_description},
                       {"content_encoding", s.direct_encoding},
                       {"stats", s.direct->ToJson()}};
      j["ratio"] = RpcScenario::RatioOf(s.mesad, *s.direct);
      errors += s.direct->errors;
    }
    if (s.direct_ae) {
      j["diagnostic_baseline"] = {
          {"name", "direct_rest_mesad_accept_encoding"},
          {"description", s.baseline_description + Fmt(", plus Accept-Encoding: %s (what mesad's libcurl sends); "
                                                       "the client decompresses", kMesadAcceptEncoding)},
          {"content_encoding", s.direct_ae_encoding},
          {"stats", s.direct_ae->ToJson()}};
      j["diagnostic_ratio"] = RpcScenario::RatioOf(s.mesad, *s.direct_ae);
      errors += s.direct_ae->errors;
    }
    scenarios[s.key] = j;
  }
  const char* whoami_description =
      "wall time of one process, spawn to exit (output read to EOF): `mesa --socket SOCKET whoami` (gRPC to mesad, "
      "which calls GET /v1/whoami on mesa-server), runs alternating with the baseline";
  if (cli_skip_reason.empty()) {
    scenarios["cli_whoami"] = {
        {"description", whoami_description},
        {"runs", opt.runs},
        {"command", cli_side.argv},
        {"mesa_cli", cli_side.stats.ToJson()},
        {"baseline",
         {{"name", "curl"},
          {"description", "curl -s -H 'Authorization: Bearer KEY' http://127.0.0.1:PORT/v1/whoami, one process per run"},
          {"stats", curl_side.stats.ToJson()}}},
        {"ratio",
         {{"p50", SafeDiv(cli_side.stats.p50, curl_side.stats.p50)}, {"p99", SafeDiv(cli_side.stats.p99, curl_side.stats.p99)}}},
        {"sample_output", cli_side.sample_output}};
    errors += cli_side.stats.errors + curl_side.stats.errors;
  } else {
    scenarios["cli_whoami"] = {{"description", whoami_description},
                               {"skipped", true},
                               {"reason", cli_skip_reason},
                               {"mesa_cli", nullptr},
                               {"baseline", nullptr},
                               {"ratio", nullptr}};
  }

  json report = {
      {"benchmark", "daemon_bench"},
      {"schema_version", 1},
      {"finished_at", UtcNow()},
      {"config",
       {{"seconds", opt.seconds},
        {"threads", opt.threads},
        {"concurrency_levels", levels},
        {"runs", opt.runs},
        {"client", client_model},
        {"shared_client", opt.shared_client},
        {"server", opt.server},
        {"server_version", server.version},
        {"mesad", opt.mesad},
        {"mesad_version", daemon.version},
        {"mesad_mode", "remote, --api-url " + server.api_url()},
        {"cli", opt.cli},
        {"cli_version", cli_version},
        {"curl_version", curl_version}}},
      {"host", {{"cpus", cpus}, {"kernel", std::string(un.sysname) + " " + un.release}, {"machine", un.machine}}},
      {"units",
       {{"ops_per_s", "completed operations per second over all threads (RPCs, HTTP requests or processes)"},
        {"latency_ms", "milliseconds per operation, nearest-rank percentiles over all threads"},
        {"ratio", "mesad.latency_ms.{p50,p99} / baseline.stats.latency_ms.{p50,p99}; ops_per_s: mesad / baseline"}}},
      {"seed", {{"org", kOrg}, {"repo", kRepo}, {"file", kFile}, {"file_bytes", kFileSize}, {"change_id", change_id}}},
      {"scenarios", scenarios},
      {"errors", errors},
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
  if (errors) {
    std::cerr << "daemon_bench: " << errors << " operations failed (see first_error in " << opt.out << ")\n";
    return 1;
  }
  return 0;
}
