// exec_bench: what running a command inside a mount costs. See bench/README.md.
//
//   exec_bench [--mesad PATH] [--cli PATH] [--runs N] [--compile-runs N] [--files N]
//              [--uid UID] [--warm-idle-ms N] [--out FILE.json]
//
// Starts its own mesad (embedded store; socket, state and cache in a temp directory) and then
// re-executes itself as an unprivileged uid (the common case: bwrap through a user namespace)
// to measure, as that user:
//   1. `mesa exec M -- true` as a process, end to end, next to `bash -c true` (same-run
//      baseline, alternating), and, to split the difference, the Exec RPC alone through the
//      client library, a bare `bwrap ... bash -c true`, and `mesa --version` (CLI start-up);
//   2. compiling a small C project (--files translation units + a link) inside the sandbox with
//      the sources read through the mount (objects to the sandbox's tmpfs) next to the same
//      build from a copy of the sources on that tmpfs; and, when the mount is writable, the
//      build in-tree in the mount (objects written through it).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mesa/client.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace {

using json = nlohmann::json;
namespace dv1 = ::mesa::daemon::v1;

struct Options {
  std::string mesad = MESAD_BIN;
  std::string cli = MESA_CLI_BIN;
  std::string out = MESA_SOURCE_DIR "/bench/results/exec_bench.json";
  int runs = 100;
  int compile_runs = 5;
  int files = 40;
  uid_t uid = 47000;
  int warm_idle_ms = -1;  // mesad's exec_warm_idle_ms; -1: its default
};

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs argv (stdout/stderr to /dev/null unless `out`), waits; returns the exit status or -1.
int Spawn(const std::vector<std::string>& argv, std::string* out = nullptr) {
  int pipefd[2] = {-1, -1};
  if (out && pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (out) {
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (out) close(pipefd[1]);
  if (rc != 0) {
    if (out) close(pipefd[0]);
    return -1;
  }
  if (out) {
    char buf[4096];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
    close(pipefd[0]);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

json Stats(std::vector<double> ms) {
  if (ms.empty()) return nullptr;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double q) {
    size_t rank = static_cast<size_t>(q * static_cast<double>(ms.size()) + 0.999999);
    return ms[std::min(ms.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  double sum = 0;
  for (double v : ms) sum += v;
  return {{"n", ms.size()},         {"p50", pct(0.5)},       {"p90", pct(0.9)}, {"p99", pct(0.99)},
          {"mean", sum / ms.size()}, {"min", ms.front()}, {"max", ms.back()}};
}

// ---- the C project ----
std::vector<std::pair<std::string, std::string>> Project(int files) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string header = "#pragma once\n#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n";
  for (int i = 0; i < files; ++i) header += "uint64_t unit" + std::to_string(i) + "(uint64_t x);\n";
  out.push_back({"include/common.h", header});
  for (int i = 0; i < files; ++i) {
    std::string src = "#include \"common.h\"\n";
    for (int f = 0; f < 40; ++f) {
      std::string name = "f" + std::to_string(i) + "_" + std::to_string(f);
      src += "static uint64_t " + name + "(uint64_t x) {\n  uint64_t acc = x;\n  char buf[64];\n"
             "  for (int k = 0; k < 16; ++k) {\n    acc = acc * 6364136223846793005ull + 1442695040888963407ull;\n"
             "    memset(buf, (int)(acc & 0xff), sizeof buf);\n    acc ^= (uint64_t)buf[k % 64] << (k % 7);\n  }\n"
             "  return acc + " + std::to_string(f) + ";\n}\n";
    }
    src += "uint64_t unit" + std::to_string(i) + "(uint64_t x) {\n  uint64_t s = 0;\n";
    for (int f = 0; f < 40; ++f) src += "  s += f" + std::to_string(i) + "_" + std::to_string(f) + "(x + s);\n";
    src += "  return s;\n}\n";
    out.push_back({"src/unit" + std::to_string(i) + ".c", src});
  }
  std::string main_c = "#include <stdio.h>\n#include \"common.h\"\nint main(void) {\n  uint64_t s = 1;\n";
  for (int i = 0; i < files; ++i) main_c += "  s = unit" + std::to_string(i) + "(s);\n";
  main_c += "  printf(\"%llu\\n\", (unsigned long long)s);\n  return 0;\n}\n";
  out.push_back({"src/main.c", main_c});
  out.push_back({"Makefile",
                 "OUT ?= build\nSRCS := $(wildcard src/*.c)\nOBJS := $(patsubst src/%.c,$(OUT)/%.o,$(SRCS))\n"
                 "$(OUT)/app: $(OBJS)\n\tcc -o $@ $^\n"
                 "$(OUT)/%.o: src/%.c include/common.h | $(OUT)\n\tcc -O1 -Iinclude -c $< -o $@\n"
                 "$(OUT):\n\tmkdir -p $@\n"});
  return out;
}

// The build's own time, measured inside the sandbox (ms), or -1 with `error`.
double TimedBuild(mesa::Client& client, const std::string& mount, const std::string& setup,
                  const std::string& dir, const std::string& out_dir, std::string* error) {
  dv1::ExecRequest req;
  req.set_mount(mount);
  req.set_timeout_ms(600000);
  req.set_command(setup + " cd " + dir + " && s=$(date +%s%N) && make -s -j2 OUT=" + out_dir +
                  " >/dev/null && e=$(date +%s%N) && echo $(( (e - s) / 1000 )) && " + out_dir + "/app >/dev/null");
  auto r = client.exec().exec(req);
  if (r.exit_code() != 0) {
    *error = "exit " + std::to_string(r.exit_code()) + ": " + r.stderr().substr(0, 300);
    return -1;
  }
  return std::stod(r.stdout()) / 1000.0;
}

// ---- the worker: runs as the bench uid ----
int WorkerMain(const Options& o, const std::string& socket) {
  json result;
  mesa::ClientOptions co;
  co.socket = socket;
  co.timeout = std::chrono::minutes(10);
  mesa::Client client(co);
  try {
    client.repos().create("bench");
    dv1::CreateChangeRequest change;
    change.set_repo("bench");
    change.set_base_change_id(std::string(32, 'z'));
    change.set_message("bench project");
    change.mutable_author()->set_name("Bench");
    change.mutable_author()->set_email("bench@example.com");
    for (const auto& [path, content] : Project(o.files)) {
      auto* f = change.add_files();
      f->set_path(path);
      f->set_content(content);
    }
    auto created = client.changes().create(change);
    client.bookmarks().move("bench", "main", created.id());
    dv1::MountRequest mreq;
    mreq.add_repos()->set_name("bench");
    auto mount = client.mounts().mount(mreq);
    result["mount"] = mount.id();

    for (int i = 0; i < 5; ++i) client.exec().exec(mount.id(), "true");  // warm-up
    for (int i = 0; i < 3; ++i) {
      Spawn({"bash", "-c", "true"});
      Spawn({o.cli, "--socket", socket, "exec", mount.id(), "--", "true"});
    }
    std::vector<double> bash, cli, rpc, bwrap, cli_start;
    std::vector<std::string> bwrap_cmd = {"bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                          "--unshare-net", "--die-with-parent", "--new-session", "--ro-bind", "/usr",
                                          "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                                          "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
                                          "--tmpfs", "/tmp", "/bin/bash", "-c", "true"};
    int errors = 0;
    int rpc_warm = 0;
    for (int i = 0; i < o.runs; ++i) {
      double t = NowMs();
      errors += Spawn({"bash", "-c", "true"}) != 0;
      bash.push_back(NowMs() - t);
      t = NowMs();
      errors += Spawn({o.cli, "--socket", socket, "exec", mount.id(), "--", "true"}) != 0;
      cli.push_back(NowMs() - t);
      t = NowMs();
      auto rpc_result = client.exec().exec(mount.id(), "true");
      rpc.push_back(NowMs() - t);
      errors += rpc_result.exit_code() != 0;
      rpc_warm += rpc_result.warm_sandbox();
      t = NowMs();
      errors += Spawn(bwrap_cmd) != 0;
      bwrap.push_back(NowMs() - t);
      t = NowMs();
      errors += Spawn({o.cli, "--version"}) != 0;
      cli_start.push_back(NowMs() - t);
    }
    result["exec_true"] = {{"mesa_exec_cli", Stats(cli)},
                           {"bash_c_true", Stats(bash)},
                           {"exec_rpc", Stats(rpc)},
                           {"bwrap_bash_true", Stats(bwrap)},
                           {"mesa_version", Stats(cli_start)},
                           {"exec_rpc_warm_sandbox", rpc_warm},
                           {"errors", errors}};

    // Compile: sources through the mount vs a tmpfs copy, alternating; the first mount build
    // is the cold one (sources fetched from the store).
    std::vector<double> in_mount, on_tmpfs, in_tree;
    std::string error;
    double cold = TimedBuild(client, mount.id(), "rm -rf /tmp/o &&", "/bench", "/tmp/o", &error);
    std::string in_tree_error;
    for (int i = 0; i < o.compile_runs && error.empty(); ++i) {
      double m = TimedBuild(client, mount.id(), "rm -rf /tmp/o &&", "/bench", "/tmp/o", &error);
      double t = TimedBuild(client, mount.id(), "rm -rf /tmp/src /tmp/o && cp -r /bench /tmp/src &&", "/tmp/src", "/tmp/o", &error);
      if (m >= 0) in_mount.push_back(m);
      if (t >= 0) on_tmpfs.push_back(t);
      if (in_tree_error.empty()) {
        double w = TimedBuild(client, mount.id(), "rm -rf /bench/build &&", "/bench", "build", &in_tree_error);
        if (w >= 0) in_tree.push_back(w);
      }
    }
    json compile = {{"files", o.files + 1},
                    {"cold_in_mount_ms", cold >= 0 ? json(cold) : json(nullptr)},
                    {"sources_in_mount", Stats(in_mount)},
                    {"sources_on_tmpfs", Stats(on_tmpfs)},
                    {"in_tree_in_mount", Stats(in_tree)}};
    if (!error.empty()) compile["error"] = error;
    if (!in_tree_error.empty()) compile["in_tree_skipped"] = in_tree_error;
    result["compile"] = compile;
    client.mounts().unmount(mount.id());
  } catch (const mesa::MesaError& e) {
    result["error"] = e.code() + ": " + e.what();
  }
  std::cout << result.dump() << std::endl;
  return 0;
}

std::string Fmt(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string worker_socket;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--mesad") o.mesad = next();
    else if (a == "--cli") o.cli = next();
    else if (a == "--out") o.out = next();
    else if (a == "--runs") o.runs = std::stoi(next());
    else if (a == "--compile-runs") o.compile_runs = std::stoi(next());
    else if (a == "--files") o.files = std::stoi(next());
    else if (a == "--uid") o.uid = static_cast<uid_t>(std::stoul(next()));
    else if (a == "--warm-idle-ms") o.warm_idle_ms = std::stoi(next());
    else if (a == "--worker") worker_socket = next();
    else {
      std::cerr << "usage: exec_bench [--mesad PATH] [--cli PATH] [--runs N] [--compile-runs N] [--files N] [--uid UID]"
                   " [--warm-idle-ms N] [--out FILE]\n";
      return 2;
    }
  }
  if (!worker_socket.empty()) return WorkerMain(o, worker_socket);
  if (geteuid() != 0) {
    std::cerr << "exec_bench: run as root (it starts mesad, which mounts FUSE and runs commands as another uid)\n";
    return 2;
  }

  // A private mount namespace (while still single-threaded): mesad's FUSE mount lives only in
  // here, so nothing outside can detach it and a leftover mount dies with the benchmark.
  std::string mount_ns = "private";
  if (unshare(CLONE_NEWNS) != 0) {
    mount_ns = std::string("shared (unshare: ") + strerror(errno) + ")";
  } else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    mount_ns = std::string("new but not private (") + strerror(errno) + ")";
  }
  auto loadavg = [] {
    std::ifstream in("/proc/loadavg");
    std::string line;
    std::getline(in, line);
    return line;
  };
  std::string loadavg_start = loadavg();
  std::cerr << "exec_bench: load average at start " << loadavg_start << "\n";

  char tmpl[] = "/tmp/exec_bench-XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  std::string dir = tmpl;
  chmod(dir.c_str(), 0755);
  std::string socket = dir + "/mesad.sock";
  std::string config = dir + "/mesad.yaml";
  {
    std::ofstream cfg(config);
    if (o.warm_idle_ms >= 0) cfg << "exec_warm_idle_ms: " << o.warm_idle_ms << "\n";
  }
  pid_t mesad = fork();
  if (mesad == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int log = open((dir + "/mesad.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, 2);
    execl(o.mesad.c_str(), o.mesad.c_str(), "--config", config.c_str(), "--socket", socket.c_str(), "--state-dir",
          (dir + "/state").c_str(), "--cache-dir", (dir + "/cache").c_str(), "--runtime-dir", (dir + "/run").c_str(),
          "--log-level", "warning", nullptr);
    _exit(127);
  }
  for (int i = 0; i < 500 && !std::filesystem::exists(socket); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  // The worker: this binary again, as the bench uid.
  std::string self = std::filesystem::read_symlink("/proc/self/exe");
  std::vector<std::string> wargs = {self,     "--worker", socket,   "--cli",           o.cli,
                                    "--runs", std::to_string(o.runs), "--compile-runs", std::to_string(o.compile_runs),
                                    "--files", std::to_string(o.files)};
  int out[2];
  if (pipe(out) != 0) return 1;
  pid_t worker = fork();
  if (worker == 0) {
    dup2(out[1], 1);
    close(out[0]);
    if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, o.uid, o.uid, o.uid) != 0 ||
        syscall(SYS_setresuid, o.uid, o.uid, o.uid) != 0) {
      _exit(90);
    }
    std::vector<char*> args;
    for (auto& a : wargs) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(out[0]);
  waitpid(worker, nullptr, 0);
  kill(mesad, SIGTERM);
  waitpid(mesad, nullptr, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  json r = json::parse(text, nullptr, false);
  if (!r.is_object()) {
    std::cerr << "exec_bench: the worker failed: " << text << "\n";
    return 1;
  }
  utsname u{};
  uname(&u);
  r["config"] = {{"runs", o.runs}, {"compile_runs", o.compile_runs}, {"files", o.files}, {"uid", o.uid},
                 {"mesad", o.mesad}, {"cli", o.cli}, {"warm_idle_ms", o.warm_idle_ms}};
  r["config"]["mount_namespace"] = mount_ns;
  r["host"] = {{"cpus", std::thread::hardware_concurrency()},
               {"kernel", u.release},
               {"loadavg_start", loadavg_start},
               {"loadavg_end", loadavg()}};
  if (r.contains("error")) {
    std::cerr << "exec_bench: " << r["error"].get<std::string>() << "\n";
    return 1;
  }
  const auto& e = r["exec_true"];
  double cli50 = e["mesa_exec_cli"]["p50"], bash50 = e["bash_c_true"]["p50"];
  r["ratios"] = {{"mesa_exec_vs_bash_p50", cli50 / bash50}};
  std::cout << "exec overhead (" << o.runs << " runs each, alternating; ms)\n"
            << "  scenario                          p50     p90     p99\n";
  for (const auto& [name, label] : std::vector<std::pair<std::string, std::string>>{
           {"mesa_exec_cli", "mesa exec M -- true (process)"},
           {"bash_c_true", "bash -c true (process)"},
           {"exec_rpc", "Exec RPC, client library"},
           {"bwrap_bash_true", "bwrap ... bash -c true (process)"},
           {"mesa_version", "mesa --version (process)"}}) {
    const auto& s = e[name];
    printf("  %-32s %6s  %6s  %6s\n", label.c_str(), Fmt(s["p50"]).c_str(), Fmt(s["p90"]).c_str(), Fmt(s["p99"]).c_str());
  }
  printf("  mesa exec / bash -c, p50: %.2fx (target: mesa exec p50 <= 10 ms)\n", cli50 / bash50);
  printf("  Exec RPCs run in a warm sandbox: %d of %d\n", e["exec_rpc_warm_sandbox"].get<int>(), o.runs);
  const auto& c = r["compile"];
  if (c.contains("error")) {
    std::cout << "compile: failed: " << c["error"].get<std::string>() << "\n";
  } else {
    double m = c["sources_in_mount"]["p50"], t = c["sources_on_tmpfs"]["p50"];
    r["ratios"]["compile_mount_vs_tmpfs_p50"] = m / t;
    printf("compile %d C files + link, make -j2, inside the sandbox (ms, p50 of %d)\n", o.files + 1, o.compile_runs);
    printf("  sources in the mount            %8.1f   (cold, first build: %.1f)\n", m, c["cold_in_mount_ms"].get<double>());
    printf("  sources on tmpfs                %8.1f\n", t);
    printf("  ratio mount / tmpfs             %8.2fx\n", m / t);
    if (c["in_tree_in_mount"].is_null()) {
      std::cout << "  in-tree build in the mount      skipped: "
                << c.value("in_tree_skipped", std::string("no result")).substr(0, 120) << "\n";
    } else {
      double w = c["in_tree_in_mount"]["p50"];
      r["ratios"]["compile_in_tree_mount_vs_tmpfs_p50"] = w / t;
      printf("  in-tree in the mount (writes)   %8.1f   (%.2fx tmpfs)\n", w, w / t);
    }
  }
  std::filesystem::create_directories(std::filesystem::path(o.out).parent_path(), ec);
  std::ofstream(o.out) << r.dump(2) << "\n";
  std::cout << "load average: start " << loadavg_start << ", end " << r["host"]["loadavg_end"].get<std::string>() << "\n";
  std::cout << "results: " << o.out << "\n";
  return e["errors"].get<int>() == 0 ? 0 : 1;
}
