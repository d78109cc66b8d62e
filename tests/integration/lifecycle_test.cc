// mesad as a system service: the systemd units, socket activation and the notify protocol,
// SIGTERM with busy mounts and a running command, kill -9 and restart under a read loop,
// SIGHUP reloads, the Status RPC, grpc.health.v1 and the metrics endpoint. Real processes:
// mesa-server, mesad (spawned with NOTIFY_SOCKET pointing at a datagram socket of the test),
// real FUSE mounts and real sandboxed commands.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/support/byte_buffer.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "mesa/client.h"
#include "nlohmann/json.hpp"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/fs_test_util.h"

namespace mesa::testing {
namespace {

namespace fsys = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t MonotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The receiving end of sd_notify(): a datagram socket whose path goes into NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    EXPECT_LT(path.size(), sizeof addr.sun_path);
    memcpy(addr.sun_path, path.c_str(), path.size());
    unlink(path.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

  // Receives until a message containing `needle` (returned) or the timeout (nullopt). Every
  // message received is kept in messages().
  std::optional<std::string> WaitFor(const std::string& needle, milliseconds timeout) {
    for (size_t i = seen_; i < messages_.size(); ++i) {
      if (messages_[i].find(needle) != std::string::npos) {
        seen_ = i + 1;
        return messages_[i];
      }
    }
    seen_ = messages_.size();
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      int left = static_cast<int>(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
      if (poll(&p, 1, std::max(left, 1)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      messages_.emplace_back(buf, static_cast<size_t>(n));
      seen_ = messages_.size();
      if (messages_.back().find(needle) != std::string::npos) return messages_.back();
    }
    return std::nullopt;
  }
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
  size_t seen_ = 0;
};

// A child process with its environment; killed (SIGKILL) and reaped by the destructor if the
// test did not reap it.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the test
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      dup2(fd, 2);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (!WaitExit(milliseconds(20000))) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
  }
  pid_t pid() const { return pid_; }
  void Signal(int sig) { kill(pid_, sig); }
  // The wait status once the child ended within `timeout`; nullopt if it still runs.
  std::optional<int> WaitExit(milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(milliseconds(5));
    }
  }

 private:
  pid_t pid_ = -1;
};

// Processes whose command line contains `token`.
std::vector<std::string> ProcessesWith(const std::string& token) {
  std::vector<std::string> out;
  for (const auto& e : fsys::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = Slurp(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(token) != std::string::npos && std::stoi(name) != getpid()) out.push_back(name + " (" + cmdline + ")");
  }
  return out;
}

// FUSE mounts in this mount namespace whose mount point is under `dir`.
std::vector<std::string> FuseMountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream info("/proc/self/mountinfo");
  std::string line;
  while (std::getline(info, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    size_t dash = line.find(" - ");
    std::string fstype = dash == std::string::npos ? "" : line.substr(dash + 3, line.find(' ', dash + 3) - dash - 3);
    if (fstype.rfind("fuse", 0) == 0 && point.rfind(dir, 0) == 0) out.push_back(point);
  }
  return out;
}

// grpc.health.v1.Health/Check by hand (the message is one string field; the answer one enum).
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string req;
  req.push_back(0x0a);
  req.push_back(static_cast<char>(service.size()));
  req += service;
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check", grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status st = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(channel.get(), method, &ctx,
                                                                                          request, &response);
  if (!st.ok()) return -static_cast<int>(st.error_code());
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return bytes.empty() ? 0 : -100;  // 0: UNKNOWN (proto3 default)
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() != 0) GTEST_SKIP() << "needs root (mesad mounts FUSE)";
    chmod(dir_.path().c_str(), 0755);
  }
  void TearDown() override {
    mesad_.reset();
    server_.reset();
  }

  void StartServer() { server_ = std::make_unique<MesaServerProcess>(dir_.path()); }

  // Writes mesad.yaml (`extra` lines appended to the test's base settings).
  void WriteConfig(const std::string& extra) {
    std::ofstream cfg(dir_.path() + "/mesad.yaml");
    cfg << "fs_backend_timeout_ms: 5000\nmax_attempts: 3\nbackoff_max_ms: 200\nconnect_timeout_ms: 1000\n"
        << "exec_kill_grace_ms: 200\n" << extra;
  }

  std::vector<std::string> MesadArgs() const {
    std::vector<std::string> a = {MESAD_BIN,     "--socket",      socket(),        "--state-dir", dir_.path() + "/state",
                                  "--cache-dir", dir_.path() + "/cache", "--runtime-dir", dir_.path() + "/run",
                                  "--config",    dir_.path() + "/mesad.yaml"};  // log_level: the file's
    if (server_) {
      a.push_back("--api-url");
      a.push_back(server_->api_url());
    }
    return a;
  }

  // Starts mesad with NOTIFY_SOCKET and waits for READY=1; returns the time it took.
  Clock::duration StartMesad() {
    if (!fsys::exists(dir_.path() + "/mesad.yaml")) WriteConfig("");
    notify_ = std::make_unique<NotifySocket>(dir_.path() + "/notify-" + std::to_string(++starts_) + ".sock");
    auto t0 = Clock::now();
    mesad_ = std::make_unique<Child>(MesadArgs(), std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}},
                                     log());
    auto ready = notify_->WaitFor("READY=1", milliseconds(60000));
    EXPECT_TRUE(ready.has_value()) << "no READY=1 from mesad:\n" << Slurp(log());
    auto took = Clock::now() - t0;
    client_ = NewClient();
    return took;
  }

  std::unique_ptr<Client> NewClient() const {
    ClientOptions o;
    o.socket = socket();
    o.timeout = std::chrono::seconds(60);
    return std::make_unique<Client>(o);
  }

  void Login() {
    dv1::LoginRequest login;
    login.set_api_key(server_->key());
    login.set_make_default(true);
    client_->sessions().login(login);
  }

  dv1::MountInfo MountRepo(const std::string& repo, const std::string& mode = "rw") {
    dv1::MountRequest req;
    auto* r = req.add_repos();
    r->set_name(repo);
    r->set_mode(mode);
    return client_->mounts().mount(req);
  }

  std::string CurrentChange(const std::string& mount, const std::string& repo) {
    dv1::ChangesCurrentRequest req;
    req.set_mount(mount);
    req.set_repo(repo);
    grpc::ClientContext ctx;
    dv1::ChangeRef out;
    auto st = dv1::Workspace::NewStub(client_->channel())->ChangesCurrent(&ctx, req, &out);
    if (!st.ok()) ThrowForStatus(st);
    return out.change_id();
  }

  std::string socket() const { return dir_.path() + "/mesad.sock"; }
  std::string log() const { return dir_.path() + "/mesad.log"; }

  TempDir dir_;
  std::unique_ptr<MesaServerProcess> server_;
  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<Child> mesad_;
  std::unique_ptr<Client> client_;
  int starts_ = 0;
};

// ---- 1. the units ----

// systemd-analyze verify on a copy of both units whose ExecStart names the built binaries,
// and on the units `cmake --install` writes (which name the installed binaries). Warnings
// count as failures: verify exits 0 on an unknown key or a bad value.
std::string Verify(const std::string& dir) {
  std::string out;
  int rc = RunCommand("cd " + dir + " && SYSTEMD_LOG_COLOR=0 systemd-analyze verify " + dir + "/mesad.service " + dir +
                          "/mesad.socket 2>&1",
                      &out);
  std::string problems;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("mesad.") != std::string::npos) problems += line + "\n";
  }
  if (rc != 0) problems += "exit status " + std::to_string(rc) + ": " + out;
  return problems;
}

std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
  return text;
}

TEST_F(LifecycleTest, UnitsPassSystemdAnalyzeVerify) {
  if (RunCommand("command -v systemd-analyze >/dev/null") != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  std::string units = dir_.path() + "/units";
  fsys::create_directories(units);
  std::string service = Slurp(std::string(MESA_SOURCE_DIR) + "/systemd/mesad.service");
  std::string sock = Slurp(std::string(MESA_SOURCE_DIR) + "/systemd/mesad.socket");
  ASSERT_NE(service.find("ExecStart=/usr/local/bin/mesad "), std::string::npos);
  {
    std::ofstream(units + "/mesad.service") << Replaced(service, "/usr/local/bin/mesad", MESAD_BIN);
    std::ofstream(units + "/mesad.socket") << sock;
  }
  EXPECT_EQ(Verify(units), "");

  // What the issue asks of the units, by directive.
  for (const char* d : {"Type=notify\n", "NotifyAccess=main\n", "StateDirectory=mesad\n", "CacheDirectory=mesad\n",
                        "RuntimeDirectory=mesad\n", "RuntimeDirectoryPreserve=yes\n", "ExecReload=/bin/kill -HUP $MAINPID\n",
                        "TimeoutStopSec=", "WatchdogSec=", "DeviceAllow=/dev/fuse rw\n", "CAP_SYS_ADMIN"}) {
    EXPECT_NE(service.find(d), std::string::npos) << "mesad.service lacks " << d;
  }
  for (const char* d : {"ListenStream=/run/mesad/mesad.sock\n", "SocketMode=0666\n"}) {
    EXPECT_NE(sock.find(d), std::string::npos) << "mesad.socket lacks " << d;
  }
  // Anything that gives mesad a private mount namespace would hide its mounts from users.
  for (const char* d : {"\nProtectSystem=", "\nProtectHome=", "\nPrivateTmp=", "\nPrivateDevices=", "\nPrivateMounts=",
                        "\nReadWritePaths=", "\nProtectKernelTunables=", "\nProtectControlGroups="}) {
    EXPECT_EQ(service.find(d), std::string::npos) << "mesad.service must not set " << d + 1;
  }

  // The check catches a broken unit (so the test can fail).
  std::ofstream(units + "/mesad.service") << Replaced(Replaced(service, "/usr/local/bin/mesad", MESAD_BIN), "KillMode=", "KilMode=");
  EXPECT_NE(Verify(units), "");
}

TEST_F(LifecycleTest, InstallPutsBinariesUnitsAndConfigInPlace) {
  if (RunCommand("command -v systemd-analyze >/dev/null") != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  std::string prefix = dir_.path() + "/prefix";
  std::string out;
  ASSERT_EQ(RunCommand("cmake --install " + std::string(MESA_BINARY_DIR) + " --prefix " + prefix + " 2>&1", &out), 0) << out;
  for (const char* f : {"bin/mesad", "bin/mesad-exec-shim", "bin/mesa-server", "bin/mesa", "lib/systemd/system/mesad.service",
                        "lib/systemd/system/mesad.socket", "etc/mesad/mesad.yaml", "etc/mesad/mesa-server.yaml"}) {
    EXPECT_TRUE(fsys::exists(prefix + "/" + f)) << f << " not installed:\n" << out;
  }
  std::string service = Slurp(prefix + "/lib/systemd/system/mesad.service");
  EXPECT_NE(service.find("ExecStart=" + prefix + "/bin/mesad --config " + prefix + "/etc/mesad/mesad.yaml\n"), std::string::npos)
      << service.substr(0, 2000);
  EXPECT_EQ(service.find("/usr/local/"), std::string::npos);
  EXPECT_EQ(Verify(prefix + "/lib/systemd/system"), "");
  // The installed default config is the documented one, and mesad accepts it.
  EXPECT_EQ(Slurp(prefix + "/etc/mesad/mesad.yaml"), Slurp(std::string(MESA_SOURCE_DIR) + "/config/mesad.yaml"));
  EXPECT_EQ(RunCommand(prefix + "/bin/mesad --version"), 0);
}

// mesad under the unit's restrictions (its capability bounding set and no_new_privs, applied
// with setpriv as systemd would) still mounts, and runs a command as another uid in a mount
// that uid made; then stops cleanly.
TEST_F(LifecycleTest, TheUnitsCapabilitiesSufficeForMountsAndExecAsAnotherUser) {
  if (RunCommand("command -v setpriv >/dev/null") != 0) GTEST_SKIP() << "setpriv is not installed";
  std::string service = Slurp(std::string(MESA_SOURCE_DIR) + "/systemd/mesad.service");
  std::smatch line;
  ASSERT_TRUE(std::regex_search(service, line, std::regex("\nCapabilityBoundingSet=([^\n]*)\n")));
  std::string caps = "-all";
  std::istringstream names(line[1].str());
  for (std::string cap; names >> cap;) {
    std::string lower = cap.substr(4);  // CAP_SYS_ADMIN -> sys_admin
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    caps += ",+" + lower;
  }
  ASSERT_NE(caps.find("+sys_admin"), std::string::npos);
  ASSERT_NE(service.find("\nNoNewPrivileges=yes\n"), std::string::npos);

  StartServer();
  Seeder seed(server_->data());
  seed.Bookmark("cap", "main", seed.Change("cap", seed.Root(), {Op("a.txt", "alpha\n")}));
  WriteConfig("");
  notify_ = std::make_unique<NotifySocket>(dir_.path() + "/notify-cap.sock");
  std::vector<std::string> argv = {"/usr/bin/setpriv", "--bounding-set", caps, "--inh-caps", "-all", "--no-new-privs", "--"};
  for (const auto& a : MesadArgs()) argv.push_back(a);
  mesad_ = std::make_unique<Child>(argv, std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}}, log());
  ASSERT_TRUE(notify_->WaitFor("READY=1", milliseconds(60000))) << Slurp(log());
  std::string status = Slurp("/proc/" + std::to_string(mesad_->pid()) + "/status");
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos);
  EXPECT_EQ(status.find("CapBnd:\t000001ffffffffff"), std::string::npos) << "the bounding set was not applied";

  // A user of its own (unique per test process), through the CLI.
  uid_t uid = static_cast<uid_t>(7000000 + getpid());
  std::string as_user = "setpriv --reuid=" + std::to_string(uid) + " --regid=" + std::to_string(uid) + " --clear-groups " +
                        MESA_CLI_BIN + " --socket " + socket() + " ";
  std::string out;
  ASSERT_EQ(RunCommand("MESA_API_KEY=" + server_->key() + " " + as_user + "login 2>&1", &out), 0) << out;
  out.clear();
  ASSERT_EQ(RunCommand(as_user + "--json mount cap 2>&1", &out), 0) << out << Slurp(log());
  auto info = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(info.is_object()) << out;
  std::string id = info.value("id", "");
  ASSERT_FALSE(id.empty()) << out;
  out.clear();
  ASSERT_EQ(RunCommand(as_user + "exec " + id + " -- 'cat /cap/a.txt; id -u; echo made > /cap/new.txt; cat /cap/new.txt' 2>&1",
                       &out),
            0)
      << out << Slurp(log());
  EXPECT_EQ(out, "alpha\n" + std::to_string(uid) + "\nmade\n");

  mesad_->Signal(SIGTERM);
  auto exited = mesad_->WaitExit(milliseconds(15000));
  ASSERT_TRUE(exited);
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << Slurp(log());
  EXPECT_EQ(FuseMountsUnder(dir_.path()), std::vector<std::string>{});
  EXPECT_EQ(ProcessesWith("--reuid=" + std::to_string(uid)), std::vector<std::string>{});
}

// ---- 2. socket activation and the notify protocol ----

TEST_F(LifecycleTest, SocketActivationAndNotifyReadyReloadingStoppingInOrder) {
  if (RunCommand("command -v systemd-socket-activate >/dev/null") != 0) GTEST_SKIP() << "systemd-socket-activate missing";
  WriteConfig("");
  NotifySocket notify(dir_.path() + "/notify.sock");
  std::vector<std::string> argv = {"/usr/bin/systemd-socket-activate", "-l", socket(), "-E", "NOTIFY_SOCKET=" + notify.path()};
  for (const auto& a : MesadArgs()) argv.push_back(a);
  Child activator(argv, {}, log());
  for (int i = 0; i < 500 && !fsys::exists(socket()); ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(fsys::exists(socket())) << Slurp(log());
  struct stat before {};
  ASSERT_EQ(stat(socket().c_str(), &before), 0);
  // Nothing runs until the first connection; that call waits in the backlog and is answered by
  // mesad through the inherited socket.
  EXPECT_TRUE(notify.messages().empty());
  auto client = NewClient();
  auto status = client->status();
  EXPECT_EQ(status.version(), MESA_VERSION);
  // The first call may be answered while mesad still restores mounts (before READY=1).
  EXPECT_TRUE(status.state() == "starting" || status.state() == "serving") << status.state();
  auto ready = notify.WaitFor("READY=1", milliseconds(30000));
  ASSERT_TRUE(ready) << Slurp(log());
  EXPECT_EQ(client->status().state(), "serving");
  EXPECT_NE(ready->find("STATUS=serving 0 sessions, 0 mounts"), std::string::npos) << *ready;
  EXPECT_NE(Slurp(log()).find("using the socket passed by systemd"), std::string::npos);
  struct stat after {};
  ASSERT_EQ(stat(socket().c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "mesad bound a socket of its own instead of the inherited one";

  // SIGHUP: RELOADING=1 with the monotonic time of the reload, then READY=1 again.
  int64_t before_usec = MonotonicUsec();
  activator.Signal(SIGHUP);
  auto reloading = notify.WaitFor("RELOADING=1", milliseconds(10000));
  ASSERT_TRUE(reloading) << Slurp(log());
  int64_t after_usec = MonotonicUsec();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*reloading, m, std::regex("MONOTONIC_USEC=([0-9]+)"))) << *reloading;
  int64_t usec = std::stoll(m[1]);
  EXPECT_GE(usec, before_usec);
  EXPECT_LE(usec, after_usec);
  ASSERT_TRUE(notify.WaitFor("READY=1", milliseconds(10000))) << Slurp(log());
  EXPECT_EQ(client->status().reloads(), 1);  // still answering through the same socket

  // SIGTERM: STOPPING=1, exit 0.
  activator.Signal(SIGTERM);
  ASSERT_TRUE(notify.WaitFor("STOPPING=1", milliseconds(10000))) << Slurp(log());
  auto exited = activator.WaitExit(milliseconds(15000));
  ASSERT_TRUE(exited) << "mesad did not exit within 15 s";
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << "wait status " << *exited;

  // In order, and nothing but these state changes (STATUS= updates may come in between).
  std::vector<std::string> states;
  for (const auto& msg : notify.messages()) {
    for (const char* s : {"READY=1", "RELOADING=1", "STOPPING=1"}) {
      if (msg.find(s) != std::string::npos) states.push_back(s);
    }
  }
  EXPECT_EQ(states, (std::vector<std::string>{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}));
}

// Without socket activation, READY=1 comes only once the socket answers and the recorded
// mounts are back.
TEST_F(LifecycleTest, ReadyOnlyAfterSocketListensAndMountsAreRestored) {
  StartServer();
  Seeder seed(server_->data());
  seed.Bookmark("r", "main", seed.Change("r", seed.Root(), {Op("hello.txt", "hello")}));
  StartMesad();
  Login();
  auto m = MountRepo("r", "ro");
  mesad_->Signal(SIGTERM);
  ASSERT_TRUE(mesad_->WaitExit(milliseconds(15000)));
  EXPECT_TRUE(FuseMountsUnder(dir_.path()).empty());

  // At READY=1 (and not before it) the socket answers and the mount serves.
  notify_ = std::make_unique<NotifySocket>(dir_.path() + "/notify-again.sock");
  mesad_ = std::make_unique<Child>(MesadArgs(), std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}}, log());
  auto ready = notify_->WaitFor("READY=1", milliseconds(60000));
  ASSERT_TRUE(ready) << Slurp(log());
  EXPECT_EQ(FuseMountsUnder(dir_.path()), std::vector<std::string>{m.path()});
  EXPECT_EQ(ReadFile(m.path() + "/r/hello.txt"), "hello");
  client_ = NewClient();
  EXPECT_EQ(client_->status().mounts(), 1);
  EXPECT_NE(ready->find("STATUS=serving 1 session, 1 mount"), std::string::npos) << *ready;
}

// ---- 3. SIGTERM with three busy mounts and a running command ----

TEST_F(LifecycleTest, SigtermWithBusyMountsAndACommandStopsCleanlyAndLosesNoWrite) {
  StartServer();
  Seeder seed(server_->data());
  const int kMounts = 3;
  for (int i = 0; i < kMounts; ++i) {
    std::string repo = "busy" + std::to_string(i);
    seed.Bookmark(repo, "main", seed.Change(repo, seed.Root(), {Op("data.txt", "data of " + repo + "\n")}));
  }
  StartMesad();
  Login();
  struct Busy {
    std::string repo, root, change;
    std::mutex mu;
    std::vector<std::pair<int, Clock::time_point>> acked;  // file k, when its close() returned
    std::atomic<int> read_errors{0};
    std::atomic<int> reads{0};
  };
  std::vector<std::unique_ptr<Busy>> busy;
  std::vector<dv1::MountInfo> mounts;
  for (int i = 0; i < kMounts; ++i) {
    auto b = std::make_unique<Busy>();
    b->repo = "busy" + std::to_string(i);
    mounts.push_back(MountRepo(b->repo));
    b->root = mounts.back().path() + "/" + b->repo;
    ASSERT_TRUE(fsys::create_directory(b->root + "/loop"));
    ASSERT_TRUE(WriteFile(b->root + "/loop/first.txt", "first"));
    b->change = CurrentChange(mounts.back().id(), b->repo);  // the working change later writes amend
    busy.push_back(std::move(b));
  }

  // A command that would run for 1000 s, with a token to find its processes by.
  std::string token = "1000." + std::to_string(getpid());
  std::atomic<bool> exec_done{false};
  std::string exec_outcome;
  std::thread exec_thread([&] {
    auto client = NewClient();
    dv1::ExecRequest req;
    req.set_mount(mounts[0].id());
    req.set_command("sleep " + token);
    req.set_timeout_ms(300000);
    try {
      auto r = client->exec().exec(req);
      exec_outcome = "exit " + std::to_string(r.exit_code()) + " cancelled " + r.cancel_reason();
    } catch (const MesaError& e) {
      exec_outcome = std::string("error ") + e.what();
    }
    exec_done = true;
  });
  for (int i = 0; i < 1000 && ProcessesWith(token).empty() && !exec_done; ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_FALSE(ProcessesWith(token).empty()) << "the command did not start: " << exec_outcome << "\n" << Slurp(log());

  std::atomic<bool> stop{false};
  std::vector<std::thread> loops;
  for (auto& bp : busy) {
    Busy* b = bp.get();
    loops.emplace_back([b, &stop] {  // writer: a new file per iteration
      for (int k = 0; !stop; ++k) {
        if (WriteFile(b->root + "/loop/f" + std::to_string(k) + ".txt", b->repo + " file " + std::to_string(k) + "\n")) {
          std::lock_guard<std::mutex> lock(b->mu);
          b->acked.emplace_back(k, Clock::now());
        }
        std::this_thread::sleep_for(milliseconds(3));
      }
    });
    loops.emplace_back([b, &stop] {  // reader: a seeded file and the growing directory
      while (!stop) {
        std::string got = ReadFile(b->root + "/data.txt");
        std::error_code ec;
        fsys::directory_iterator it(b->root + "/loop", ec);
        if (got != "data of " + b->repo + "\n" || ec) ++b->read_errors;
        ++b->reads;
        std::this_thread::sleep_for(milliseconds(2));
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(1500));
  for (auto& b : busy) {
    EXPECT_EQ(b->read_errors, 0) << b->repo << " failed reads before the signal";
    EXPECT_GT(b->reads, 10);
  }

  auto signalled = Clock::now();
  mesad_->Signal(SIGTERM);
  auto exited = mesad_->WaitExit(milliseconds(20000));
  auto took = Clock::now() - signalled;
  stop = true;
  for (auto& t : loops) t.join();
  exec_thread.join();
  ASSERT_TRUE(exited) << "mesad still runs 20 s after SIGTERM:\n" << Slurp(log());
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << "wait status " << *exited;
  EXPECT_LT(took, std::chrono::seconds(15));
  std::cout << "[ figures ] SIGTERM with " << kMounts << " busy mounts and a running command: exit after "
            << Seconds(took) << " s; command: " << exec_outcome << "\n";
  EXPECT_TRUE(notify_->WaitFor("STOPPING=1", milliseconds(1)));

  // No mount left, no process of the command left.
  EXPECT_EQ(FuseMountsUnder(dir_.path()), std::vector<std::string>{});
  EXPECT_EQ(ProcessesWith(token), std::vector<std::string>{});
  EXPECT_NE(exec_outcome.find("cancelled shutdown"), std::string::npos) << exec_outcome;

  // Every write acknowledged before the signal is on the server, byte for byte.
  size_t checked = 0;
  for (auto& b : busy) {
    auto repo = seed.Repo(b->repo);
    auto listing = seed.store()->GetContent(repo, b->change, "loop", 1, false);
    ASSERT_TRUE(listing.ok()) << listing.status();
    std::set<std::string> on_server;
    for (const auto& e : listing->entries) on_server.insert(e.name);
    EXPECT_TRUE(on_server.count("first.txt"));
    std::lock_guard<std::mutex> lock(b->mu);
    ASSERT_GT(b->acked.size(), 10u) << b->repo;
    for (const auto& [k, when] : b->acked) {
      if (when >= signalled) continue;
      std::string name = "f" + std::to_string(k) + ".txt";
      ASSERT_TRUE(on_server.count(name)) << b->repo << "/loop/" << name << " was acknowledged before SIGTERM but is not on the server";
      auto file = seed.store()->GetContent(repo, b->change, "loop/" + name, 0, true);
      ASSERT_TRUE(file.ok()) << file.status();
      EXPECT_EQ(file->data, b->repo + " file " + std::to_string(k) + "\n");
      ++checked;
    }
  }
  std::cout << "[ figures ] " << checked << " acknowledged writes verified on the server\n";

  // The records stay: the next start brings the three mounts back.
  std::string records = Slurp(dir_.path() + "/state/mounts.json");
  for (const auto& m : mounts) EXPECT_NE(records.find(m.id()), std::string::npos);
}

// ---- 4. kill -9 under a read loop ----

TEST_F(LifecycleTest, KillNineUnderAReadLoopRecoversWithoutEnotconn) {
  StartServer();
  Seeder seed(server_->data());
  seed.Bookmark("k", "main", seed.Change("k", seed.Root(), {Op("a.txt", "alpha\n"), Op("dir/b.txt", "beta\n")}));
  StartMesad();
  Login();
  auto m = MountRepo("k");
  std::string file = m.path() + "/k/a.txt";
  ASSERT_EQ(ReadFile(file), "alpha\n");

  struct Outcome {
    Clock::time_point when;
    int err;  // 0: the read returned the right bytes
  };
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::atomic<bool> stop{false};
  // Every iteration reaches mesad: the page cache is dropped before the read and the stat
  // forces a GETATTR (the kernel would otherwise answer from its caches, even for a dead mount).
  std::thread loop([&] {
    while (!stop) {
      int err = 0;
      int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        err = errno;
      } else {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) err = errno;
        else if (std::string(buf, static_cast<size_t>(n)) != "alpha\n") err = -1;
        close(fd);
      }
      struct statx stx {};
      if (err == 0 && statx(AT_FDCWD, (m.path() + "/k/dir/b.txt").c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx) != 0)
        err = errno;
      {
        std::lock_guard<std::mutex> lock(mu);
        outcomes.push_back({Clock::now(), err});
      }
      std::this_thread::sleep_for(milliseconds(2));
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  auto killed = Clock::now();
  mesad_->Signal(SIGKILL);
  ASSERT_TRUE(mesad_->WaitExit(milliseconds(10000)));
  std::this_thread::sleep_for(milliseconds(300));

  auto restarted = Clock::now();
  auto to_ready = StartMesad();
  auto ready = Clock::now();
  std::this_thread::sleep_for(milliseconds(2500));
  stop = true;
  loop.join();

  // The loop saw the dead mount (ENOTCONN) between the kill and the restart...
  int enotconn_while_down = 0, failures_before_kill = 0, enotconn_after_ready = 0, ok_after_recovery = 0;
  std::optional<Clock::time_point> last_failure;
  for (const auto& o : outcomes) {
    if (o.when < killed && o.err != 0) ++failures_before_kill;
    if (o.when > killed && o.when < restarted && o.err == ENOTCONN) ++enotconn_while_down;
    if (o.when > killed && o.err != 0) last_failure = o.when;
    if (o.when > ready && o.err == ENOTCONN) ++enotconn_after_ready;
  }
  for (const auto& o : outcomes) ok_after_recovery += last_failure && o.when > *last_failure && o.err == 0;
  EXPECT_EQ(failures_before_kill, 0);
  EXPECT_GT(enotconn_while_down, 0) << "the killed daemon's mount did not fail: the test would prove nothing";
  ASSERT_TRUE(last_failure);
  // ...and answers again at the latest 2 s after READY=1 (which comes after the remount),
  // with no failure at all from then on.
  EXPECT_LT(*last_failure, ready + std::chrono::seconds(2)) << "reads still failed "
                                                             << Seconds(*last_failure - ready) << " s after READY";
  EXPECT_EQ(enotconn_after_ready, 0);
  EXPECT_GT(ok_after_recovery, 100) << "the loop did not run on after the recovery";
  std::cout << "[ figures ] kill -9 -> restart: READY=1 (stale mount detached, mount restored) after "
            << Seconds(to_ready) << " s; reads answer again " << Seconds(*last_failure - restarted)
            << " s after the restart (" << Seconds(*last_failure - ready) << " s after READY)\n";

  errno = 0;
  struct stat st {};
  EXPECT_EQ(stat(m.path().c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(stat(file.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(FuseMountsUnder(dir_.path()), std::vector<std::string>{m.path()});  // one live mount, nothing stacked
  auto mounts = client_->mounts().list();
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].id(), m.id());
}

// ---- 5. SIGHUP reloads ----

TEST_F(LifecycleTest, SighupShrinksTheCacheUnderAReadLoopWithoutAFailedRead) {
  StartServer();
  Seeder seed(server_->data());
  const int kFiles = 16;
  const size_t kSize = 256 << 10;
  std::vector<server::FileOp> files;
  for (int i = 0; i < kFiles; ++i) files.push_back(Op("f" + std::to_string(i) + ".bin", RandomBytes(kSize, 100 + i)));
  seed.Bookmark("c", "main", seed.Change("c", seed.Root(), files));
  std::string metrics_sock = dir_.path() + "/metrics.sock";
  WriteConfig("cache_max_bytes: 67108864\nmetrics_listen: unix:" + metrics_sock + "\n");
  StartMesad();
  Login();
  auto m = MountRepo("c", "ro");
  for (const auto& f : files) ASSERT_EQ(ReadFile(m.path() + "/c/" + f.path), f.content);
  auto before = client_->status();
  EXPECT_EQ(before.cache().max_bytes(), 67108864u);
  EXPECT_GE(before.cache().bytes(), kFiles * kSize);

  // Readers that always reach mesad (the page cache is dropped before every read).
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, failures{0};
  std::string first_failure;
  std::mutex mu;
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      for (int i = t; !stop; ++i) {
        const auto& f = files[static_cast<size_t>(i % kFiles)];
        std::string path = m.path() + "/c/" + f.path;
        int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        std::string got;
        if (fd >= 0) {
          posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
          char buf[65536];
          ssize_t n;
          while ((n = read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
          if (n < 0) got = std::string("read: ") + strerror(errno);
          close(fd);
        } else {
          got = std::string("open: ") + strerror(errno);
        }
        ++reads;
        if (got != f.content) {
          ++failures;
          std::lock_guard<std::mutex> lock(mu);
          if (first_failure.empty()) first_failure = f.path + ": " + got.substr(0, 100);
        }
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(500));

  const uint64_t kCap = 1 << 20;  // four blobs
  WriteConfig("cache_max_bytes: " + std::to_string(kCap) + "\nmetrics_listen: unix:" + metrics_sock + "\n");
  int reads_before = reads;
  mesad_->Signal(SIGHUP);
  ASSERT_TRUE(notify_->WaitFor("RELOADING=1", milliseconds(10000))) << Slurp(log());
  ASSERT_TRUE(notify_->WaitFor("READY=1", milliseconds(10000))) << Slurp(log());
  // Effective at once: the cap, and the cache under it, in Status and in the metrics.
  auto after = client_->status();
  EXPECT_EQ(after.cache().max_bytes(), kCap);
  EXPECT_LE(after.cache().bytes(), kCap + kSize);  // at most one blob over, by design
  EXPECT_GT(after.cache().evictions(), before.cache().evictions());
  std::string text = HttpGet("unix:" + metrics_sock, "/metrics");
  std::string label = "{dir=\"" + dir_.path() + "/cache/blobs\"}";
  EXPECT_EQ(Sample(text, "mesad_blob_cache_max_bytes" + label), static_cast<double>(kCap)) << text.substr(0, 500);
  EXPECT_LE(*Sample(text, "mesad_blob_cache_bytes" + label), static_cast<double>(kCap + kSize));
  std::this_thread::sleep_for(milliseconds(1000));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(reads - reads_before, 20) << "the readers did not run across the reload";
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_LE(client_->status().cache().bytes(), kCap + kSize);  // and stays under it while reading
  EXPECT_EQ(client_->mounts().list().size(), 1u);                 // no remount
  EXPECT_NE(Slurp(log()).find("applied cache_max_bytes (67108864 -> 1048576)"), std::string::npos) << Slurp(log());
  std::cout << "[ figures ] reload to a " << kCap << "-byte cap: cache " << before.cache().bytes() << " -> "
            << after.cache().bytes() << " bytes, " << reads << " reads, " << failures << " failed\n";
}

TEST_F(LifecycleTest, ReloadReportsRestartKeysAndSurvivesABadFile) {
  WriteConfig("log_level: info\nfuse_threads: 16\nexec_max_total: 32\n");
  StartMesad();
  // A live key and a restart-only key change together: the first applies, the second is
  // reported and keeps its value.
  WriteConfig("log_level: debug\nfuse_threads: 4\nexec_max_total: 5\nshutdown_drain_timeout_ms: 2000\n");
  mesad_->Signal(SIGHUP);
  ASSERT_TRUE(notify_->WaitFor("RELOADING=1", milliseconds(10000)));
  auto ready = notify_->WaitFor("READY=1", milliseconds(10000));
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->find("restart needed for 1 changed key"), std::string::npos) << *ready;
  std::string logged = Slurp(log());
  EXPECT_NE(logged.find("reload: fuse_threads (16 -> 4) needs a restart of mesad; keeping the running value"), std::string::npos)
      << logged;
  EXPECT_NE(logged.find("log_level (info -> debug)"), std::string::npos) << logged;
  EXPECT_NE(logged.find("exec_max_total (32 -> 5)"), std::string::npos);
  EXPECT_EQ(client_->status().reloads(), 1);

  // A file that does not parse changes nothing, and mesad keeps serving.
  std::ofstream(dir_.path() + "/mesad.yaml") << "log_level: [unclosed\n";
  mesad_->Signal(SIGHUP);
  ASSERT_TRUE(notify_->WaitFor("RELOADING=1", milliseconds(10000)));
  ready = notify_->WaitFor("READY=1", milliseconds(10000));
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->find("reload failed"), std::string::npos) << *ready;
  EXPECT_EQ(client_->status().reloads(), 1);
  EXPECT_EQ(client_->status().state(), "serving");
  // The restart-only key was never half-applied: a second good reload still reports it.
  WriteConfig("log_level: debug\nfuse_threads: 4\nexec_max_total: 5\nshutdown_drain_timeout_ms: 2000\n");
  mesad_->Signal(SIGHUP);
  ASSERT_TRUE(notify_->WaitFor("RELOADING=1", milliseconds(10000)));
  ASSERT_TRUE(notify_->WaitFor("READY=1", milliseconds(10000)));
  EXPECT_EQ(client_->status().reloads(), 2);
  logged = Slurp(log());
  size_t first = logged.find("fuse_threads (16 -> 4) needs a restart");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(logged.find("fuse_threads (16 -> 4) needs a restart", first + 1), std::string::npos);

  mesad_->Signal(SIGTERM);
  auto exited = mesad_->WaitExit(milliseconds(15000));
  ASSERT_TRUE(exited);
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0);
}

// ---- health: Status, grpc.health.v1, metrics ----

TEST_F(LifecycleTest, StatusReportsStateWithoutSideEffectsAndHealthServes) {
  StartMesad();  // embedded store: a first real call would provision a session
  for (int i = 0; i < 3; ++i) {
    auto st = client_->status();
    EXPECT_EQ(st.sessions(), 0) << "Status created a session";
    EXPECT_EQ(st.version(), MESA_VERSION);
    EXPECT_EQ(st.state(), "serving");
    EXPECT_TRUE(st.backend_reachable());
    EXPECT_FALSE(st.started_at().empty());
    EXPECT_GE(st.rpcs_in_flight(), 1);  // this call
    EXPECT_EQ(st.metrics_address(), "");  // off by default
  }
  EXPECT_TRUE(client_->sessions().list().empty());
  EXPECT_EQ(Slurp(log()).find("metrics on"), std::string::npos);

  EXPECT_EQ(HealthStatus(client_->channel(), ""), 1);  // SERVING
  for (const char* service : {"mesa.daemon.v1.Daemon", "mesa.daemon.v1.Mounts", "mesa.daemon.v1.Exec", "mesa.daemon.v1.Repos"}) {
    EXPECT_EQ(HealthStatus(client_->channel(), service), 1) << service;
  }
  EXPECT_EQ(HealthStatus(client_->channel(), "no.such.Service"), -static_cast<int>(grpc::StatusCode::NOT_FOUND));

  client_->repos().create("s");  // provisions the caller's session and org
  auto st = client_->status();
  EXPECT_EQ(st.sessions(), 1);
  EXPECT_GE(st.uptime_seconds(), 0);
}

TEST_F(LifecycleTest, StatusReportsMountsCacheAndBackendReachability) {
  StartServer();
  Seeder seed(server_->data());
  seed.Bookmark("s", "main", seed.Change("s", seed.Root(), {Op("x.txt", std::string(5000, 'x'))}));
  StartMesad();
  Login();
  auto m = MountRepo("s");
  ASSERT_EQ(ReadFile(m.path() + "/s/x.txt"), std::string(5000, 'x'));
  auto st = client_->status();
  EXPECT_EQ(st.api_mode(), "remote");
  EXPECT_TRUE(st.backend_reachable());
  EXPECT_EQ(st.mounts(), 1);
  ASSERT_EQ(st.mount_states_size(), 1);
  EXPECT_EQ(st.mount_states(0).id(), m.id());
  EXPECT_EQ(st.mount_states(0).path(), m.path());
  EXPECT_EQ(st.mount_states(0).state(), "mounted");
  EXPECT_EQ(st.cache().path(), dir_.path() + "/cache/blobs");
  EXPECT_GE(st.cache().bytes(), 5000u);
  EXPECT_GE(st.cache().misses(), 1u);
  server_->Kill(SIGKILL);
  st = client_->status();
  EXPECT_FALSE(st.backend_reachable());
  EXPECT_EQ(st.mount_states(0).state(), "mounted");
}

TEST_F(LifecycleTest, MetricsEndpointServesTheFamiliesWhenEnabled) {
  StartServer();
  Seeder seed(server_->data());
  seed.Bookmark("p", "main", seed.Change("p", seed.Root(), {Op("a.txt", "metrics\n"), Op("d/b.txt", "b")}));
  int port = FreeTcpPort();
  WriteConfig("metrics_listen: 127.0.0.1:" + std::to_string(port) + "\n");
  StartMesad();
  Login();
  EXPECT_EQ(client_->status().metrics_address(), "127.0.0.1:" + std::to_string(port));
  auto m = MountRepo("p");
  ASSERT_EQ(ReadFile(m.path() + "/p/a.txt"), "metrics\n");
  ASSERT_TRUE(WriteFile(m.path() + "/p/new.txt", "w"));
  int status = 0;
  std::string text;
  // A handler's time is recorded just after its reply: poll until the write shows.
  for (int i = 0; i < 200; ++i) {
    text = HttpGet("127.0.0.1:" + std::to_string(port), "/metrics", &status);
    auto writes = Sample(text, "mesad_fuse_op_duration_seconds_count{op=\"write\"}");
    if (status == 200 && writes && *writes >= 1) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(status, 200);
  for (const char* family : {"mesad_fuse_op_duration_seconds", "mesad_blob_cache_hits_total", "mesad_blob_cache_misses_total",
                             "mesad_blob_cache_hit_bytes_total", "mesad_blob_cache_miss_bytes_total", "mesad_blob_cache_bytes",
                             "mesad_backend_request_duration_seconds", "mesad_backend_request_errors_total",
                             "mesad_rpc_inflight", "mesad_process_resident_memory_bytes", "mesad_mounts"}) {
    EXPECT_NE(text.find("# TYPE " + std::string(family) + " "), std::string::npos) << family << " missing";
  }
  // The numbers move with what happened.
  EXPECT_GE(*Sample(text, "mesad_fuse_op_duration_seconds_count{op=\"lookup\"}"), 1);
  EXPECT_GE(*Sample(text, "mesad_fuse_op_duration_seconds_count{op=\"read\"}"), 1);
  EXPECT_GE(*Sample(text, "mesad_fuse_op_duration_seconds_count{op=\"write\"}"), 1) << text.substr(0, text.find("mesad_backend"));
  EXPECT_TRUE(Sample(text, "mesad_fuse_op_duration_seconds_bucket{op=\"read\",le=\"+Inf\"}"));
  EXPECT_GE(*Sample(text, "mesad_backend_request_duration_seconds_count"), 2);
  std::string label = "{dir=\"" + dir_.path() + "/cache/blobs\"}";
  EXPECT_GE(*Sample(text, "mesad_blob_cache_misses_total" + label), 1);
  EXPECT_GE(*Sample(text, "mesad_blob_cache_miss_bytes_total" + label), 8);
  EXPECT_EQ(*Sample(text, "mesad_mounts"), 1);
  EXPECT_GT(*Sample(text, "mesad_process_resident_memory_bytes"), 1 << 20);
  EXPECT_EQ(*Sample(text, "mesad_backend_request_errors_total{kind=\"http_5xx\"}"), 0);
  // Read-only and nothing else: no config, no other path.
  EXPECT_EQ(text.find("api_key"), std::string::npos);
  EXPECT_EQ(text.find(server_->key()), std::string::npos);
  HttpGet("127.0.0.1:" + std::to_string(port), "/config", &status);
  EXPECT_EQ(status, 404);

  // A dead backend shows as transport errors.
  server_->Kill(SIGKILL);
  std::string ignored = ReadFile(m.path() + "/p/d/b.txt");  // an uncached file: fetch fails
  text = HttpGet("127.0.0.1:" + std::to_string(port), "/metrics", &status);
  EXPECT_GE(*Sample(text, "mesad_backend_request_errors_total{kind=\"transport\"}"), 1);
}

}  // namespace
}  // namespace mesa::testing
