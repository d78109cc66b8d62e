#include "tests/integration/exec_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "rest/change_id.h"
#include "server/store/store.h"

namespace mesa::testing {
namespace {

std::string g_self;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool ReadAll(int fd, void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Frames: one kind byte, a 4-byte length, the payload. Requests: L(ogin) M(ount) G(et mount) U(nmount)
// E(xec) S(tream) N (stream, count only). Replies: O (ok + message), C (a stream chunk),
// R (stream result: 16 bytes of counts + ExecResult), X (error: "grpc\ncode\nmessage").
bool WriteFrame(int fd, char kind, const std::string& payload) {
  uint32_t len = static_cast<uint32_t>(payload.size());
  return WriteAll(fd, &kind, 1) && WriteAll(fd, &len, 4) && WriteAll(fd, payload.data(), payload.size());
}

bool ReadFrame(int fd, char* kind, std::string* payload) {
  uint32_t len = 0;
  if (!ReadAll(fd, kind, 1) || !ReadAll(fd, &len, 4)) return false;
  payload->resize(len);
  return ReadAll(fd, payload->data(), len);
}

std::string ErrorPayload(int grpc, const std::string& code, const std::string& message) {
  return std::to_string(grpc) + "\n" + code + "\n" + message;
}

// ---- the agent (a re-executed copy of the test binary, running as another uid) ----
int AgentMain(const std::string& socket) {
  signal(SIGPIPE, SIG_IGN);
  ClientOptions o;
  o.socket = socket;
  o.timeout = std::chrono::seconds(120);
  Client client(o);
  char op;
  std::string payload;
  while (ReadFrame(0, &op, &payload)) {
    try {
      if (op == 'L') {
        dv1::LoginRequest req;
        req.ParseFromString(payload);
        WriteFrame(1, 'O', client.sessions().login(req).SerializeAsString());
      } else if (op == 'M') {
        dv1::MountRequest req;
        req.ParseFromString(payload);
        WriteFrame(1, 'O', client.mounts().mount(req).SerializeAsString());
      } else if (op == 'G') {
        WriteFrame(1, 'O', client.mounts().get(payload).SerializeAsString());
      } else if (op == 'U') {
        client.mounts().unmount(payload);
        WriteFrame(1, 'O', "");
      } else if (op == 'E') {
        dv1::ExecRequest req;
        req.ParseFromString(payload);
        WriteFrame(1, 'O', client.exec().exec(req).SerializeAsString());
      } else if (op == 'S' || op == 'N') {
        dv1::ExecRequest req;
        req.ParseFromString(payload);
        uint64_t counts[2] = {0, 0};
        auto result = client.exec().exec_stream(req, [&](bool is_stderr, const std::string& chunk) {
          counts[is_stderr] += chunk.size();
          if (op == 'S') {
            dv1::ExecStreamEvent ev;
            if (is_stderr) {
              ev.set_stderr(chunk);
            } else {
              ev.set_stdout(chunk);
            }
            WriteFrame(1, 'C', ev.SerializeAsString());
          }
          return true;
        });
        std::string out(reinterpret_cast<const char*>(counts), sizeof counts);
        WriteFrame(1, 'R', out + result.SerializeAsString());
      } else {
        return 0;
      }
    } catch (const ApiError& e) {
      WriteFrame(1, 'X', ErrorPayload(static_cast<int>(e.grpc_code()), e.code(), e.what()));
    } catch (const MesaError& e) {
      WriteFrame(1, 'X', ErrorPayload(-1, e.code(), e.what()));
    }
  }
  return 0;
}

}  // namespace

uid_t TestUid(int kind) {
  // Unique among running test processes: pids are.
  return static_cast<uid_t>((kind == 0 ? 100000 : 5000000) + getpid());
}

int ExecTestMain(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--exec-agent") return AgentMain(argv[2]);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  g_self = std::string(self, n > 0 ? static_cast<size_t>(n) : 0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// ---- Agent ----

Agent::Agent(uid_t uid, gid_t gid, const std::string& socket) : uid_(uid) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe";
    return;
  }
  std::string flag = "--exec-agent";
  std::vector<char*> argv = {g_self.data(), flag.data(), const_cast<char*>(socket.c_str()), nullptr};
  pid_t pid = _Fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
        syscall(SYS_setresuid, uid, uid, uid) != 0) {
      _exit(90);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  pid_ = pid;
  to_ = in[1];
  from_ = out[0];
}

Agent::~Agent() {
  if (to_ >= 0) close(to_);
  if (from_ >= 0) close(from_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Agent::Kill() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

void Agent::Send(char op, const std::string& payload) {
  sent_at_ = NowMs();
  pending_ = Outcome();
  pending_done_ = false;
  ASSERT_TRUE(WriteFrame(to_, op, payload)) << "agent gone";
}

bool Agent::Receive(char* kind, std::string* payload) { return ReadFrame(from_, kind, payload); }

namespace {
Agent::Error ParseError(const std::string& payload) {
  Agent::Error e;
  std::istringstream in(payload);
  std::string grpc;
  std::getline(in, grpc);
  std::getline(in, e.code);
  std::getline(in, e.message, '\0');
  e.grpc = atoi(grpc.c_str());
  if (e.code.empty()) e.code = "UNKNOWN";
  return e;
}
}  // namespace

Agent::Error Agent::Login(const std::string& api_key) {
  dv1::LoginRequest req;
  req.set_api_key(api_key);
  req.set_make_default(true);
  Send('L', req.SerializeAsString());
  char kind;
  std::string payload;
  if (!Receive(&kind, &payload)) return {"AGENT_GONE", -1, ""};
  return kind == 'X' ? ParseError(payload) : Error{};
}

dv1::MountInfo Agent::Mount(const dv1::MountRequest& req, Error* error) {
  Send('M', req.SerializeAsString());
  char kind;
  std::string payload;
  dv1::MountInfo info;
  if (!Receive(&kind, &payload)) {
    if (error) *error = {"AGENT_GONE", -1, ""};
    return info;
  }
  if (kind == 'X') {
    Error e = ParseError(payload);
    if (error) {
      *error = e;
    } else {
      ADD_FAILURE() << "mount failed: " << e.code << ": " << e.message;
    }
    return info;
  }
  info.ParseFromString(payload);
  return info;
}

dv1::MountInfo Agent::GetMount(const std::string& mount) {
  Send('G', mount);
  char kind;
  std::string payload;
  dv1::MountInfo info;
  if (Receive(&kind, &payload) && kind == 'O') info.ParseFromString(payload);
  return info;
}

Agent::Error Agent::Unmount(const std::string& mount) {
  Send('U', mount);
  char kind;
  std::string payload;
  if (!Receive(&kind, &payload)) return {"AGENT_GONE", -1, ""};
  return kind == 'X' ? ParseError(payload) : Error{};
}

void Agent::StartExec(const dv1::ExecRequest& req) { Send('E', req.SerializeAsString()); }
void Agent::StartStream(const dv1::ExecRequest& req) { Send('S', req.SerializeAsString()); }

bool Agent::WaitForChunk(std::string* chunk) {
  char kind;
  std::string payload;
  if (!Receive(&kind, &payload)) {
    pending_.error = {"AGENT_GONE", -1, ""};
    return false;
  }
  if (kind == 'C') {
    dv1::ExecStreamEvent ev;
    ev.ParseFromString(payload);
    bool is_stderr = ev.has_stderr();
    pending_.chunks.emplace_back(is_stderr, is_stderr ? ev.stderr() : ev.stdout());
    pending_.arrival_ms.push_back(NowMs() - sent_at_);
    if (chunk) *chunk = pending_.chunks.back().second;
    return true;
  }
  if (kind == 'X') {
    pending_.error = ParseError(payload);
  } else if (kind == 'R' && payload.size() >= 16) {
    uint64_t counts[2];
    memcpy(counts, payload.data(), sizeof counts);
    pending_.streamed_stdout = counts[0];
    pending_.streamed_stderr = counts[1];
    pending_.result.ParseFromString(payload.substr(16));
  } else {
    pending_.result.ParseFromString(payload);
  }
  pending_done_ = true;
  return false;
}

Agent::Outcome Agent::Finish() {
  while (!pending_done_ && pending_.error.code.empty()) WaitForChunk();
  Outcome out = std::move(pending_);
  pending_ = Outcome();
  pending_done_ = false;
  return out;
}

Agent::Outcome Agent::Exec(const dv1::ExecRequest& req) {
  StartExec(req);
  return Finish();
}

Agent::Outcome Agent::Stream(const dv1::ExecRequest& req) {
  StartStream(req);
  return Finish();
}

Agent::Outcome Agent::StreamCount(const dv1::ExecRequest& req) {
  Send('N', req.SerializeAsString());
  return Finish();
}

// ---- Seeder ----

struct Seeder::Impl {
  std::unique_ptr<server::Store> store;
  server::Org org;
};

Seeder::Seeder(const std::string& data) : impl_(std::make_unique<Impl>()) {
  auto s = server::Store::Open(data);
  EXPECT_TRUE(s.ok()) << s.status();
  impl_->store = std::move(*s);
  impl_->org = *impl_->store->GetOrgBySlug("acme");
}

Seeder::~Seeder() = default;

void Seeder::Repo(const std::string& name, const std::vector<std::pair<std::string, std::string>>& files) {
  auto repo = impl_->store->GetRepo(impl_->org, name);
  if (!repo.ok()) {
    server::CreateRepoParams p;
    p.name = name;
    repo = impl_->store->CreateRepo(impl_->org, p);
    ASSERT_TRUE(repo.ok()) << repo.status();
  }
  server::CreateChangeParams p;
  p.base_change_id = std::string(rest::kVirtualRootChangeId);
  p.message = "seed";
  for (const auto& [path, content] : files) {
    server::FileOp op;
    op.path = path;
    op.content = content;
    op.mode = path.size() > 3 && path.substr(path.size() - 3) == ".sh" ? 0100755 : 0100644;
    p.files.push_back(op);
  }
  server::Signature who{"Seeder", "seed@example.com", 0, 0};
  auto c = impl_->store->CreateChange(*repo, p, who);
  ASSERT_TRUE(c.ok()) << c.status();
  if (!impl_->store->MoveBookmark(*repo, "main", c->id).ok()) {
    ASSERT_TRUE(impl_->store->CreateBookmark(*repo, "main", c->id).ok());
  }
}

// ---- /proc ----

namespace {

// read(2), not istreambuf_iterator: a process that exits between open and read makes the read
// fail with ESRCH, which libstdc++'s filebuf turns into an exception.
std::string ReadProcFile(pid_t pid, const std::string& name) {
  std::string text;
  int fd = open(("/proc/" + std::to_string(pid) + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) text.assign(buf, static_cast<size_t>(n));
    close(fd);
  }
  return text;
}

}  // namespace

std::vector<std::string> WarmSandboxes(uid_t uid) {
  std::vector<std::string> out;
  for (pid_t p : ProcessesOf(uid)) {
    if (ReadProcFile(p, "comm") != "mesa-warm\n") continue;
    char ns[128];
    ssize_t n = readlink(("/proc/" + std::to_string(p) + "/ns/pid").c_str(), ns, sizeof ns);
    if (n > 0) out.emplace_back(ns, static_cast<size_t>(n));
  }
  return out;
}

std::string WaitForWarmSandbox(uid_t uid, const std::string& except, int ms) {
  int64_t until = NowMs() + ms;
  while (true) {
    for (const auto& ns : WarmSandboxes(uid)) {
      if (ns != except) return ns;
    }
    if (NowMs() >= until) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::vector<pid_t> ProcessesOf(uid_t uid, pid_t except) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0 || pid == except) continue;
    // read(2), not a stream: a process may end mid-read.
    std::string status = ReadProcFile(pid, "status");
    size_t at = status.find("\nUid:");
    if (at != std::string::npos && static_cast<uid_t>(strtoul(status.c_str() + at + 5, nullptr, 10)) == uid) {
      out.push_back(pid);
    }
  }
  closedir(d);
  return out;
}

namespace {
uint64_t StatusKb(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) return strtoull(line.c_str() + key.size() + 1, nullptr, 10) * 1024;
  }
  return 0;
}
}  // namespace

uint64_t PeakRss(pid_t pid) { return StatusKb(pid, "VmHWM"); }
uint64_t CurrentRss(pid_t pid) { return StatusKb(pid, "VmRSS"); }

pid_t SocketPeerPid(const std::string& socket_path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  pid_t pid = -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) pid = cred.pid;
  }
  close(fd);
  return pid;
}

// ---- ExecTest ----

void ExecTest::SetUp() {
  if (getuid() != 0) GTEST_SKIP() << "needs root (mesad mounts FUSE and runs commands as other uids)";
  chmod(dir_.path().c_str(), 0755);  // the test uids must reach the socket and the mounts
  server_ = std::make_unique<MesaServerProcess>(dir_.path());
  std::mt19937 rng(7);
  binary_.resize(300000);
  for (auto& c : binary_) c = static_cast<char>(rng());
  {
    Seeder seed(server_->data());
    seed.Repo("app", {{"README.md", "# app\n"},
                      {"src/main.c", "int main(void) { return 0; }\n"},
                      {"src/util/strings.c", "/* strings */\n"},
                      {"bin/blob.bin", binary_},
                      {"run.sh", "#!/bin/sh\necho run.sh ran in \"$(pwd)\"\n"}});
    seed.Repo("docs", {{"guide.md", "read me\n"}});
  }
  StartMesad();
  agent_ = NewAgent();
  auto err = agent_->Login(server_->key());
  ASSERT_EQ(err.code, "") << err.message;
  dv1::MountRequest req;
  req.add_repos()->set_name("app");
  auto* docs = req.add_repos();
  docs->set_name("docs");
  docs->set_mode("ro");
  mount_ = agent_->Mount(req);
  ASSERT_FALSE(mount_.id().empty());
}

void ExecTest::StartMesad() {
  std::ofstream cfg(dir_.path() + "/mesad.yaml");
  cfg << "fs_backend_timeout_ms: 5000\nmax_attempts: 3\nbackoff_max_ms: 200\nconnect_timeout_ms: 1000\n"
      << "exec_kill_grace_ms: 200\nexec_pids_max: 256\n"
      << ExtraConfig();
  cfg.close();
  mesad_ = std::make_unique<MesadProcess>(
      dir_.path(), server_->api_url(),
      std::vector<std::string>{"--runtime-dir", dir_.path() + "/run", "--config", dir_.path() + "/mesad.yaml"});
}

void ExecTest::TearDown() {
  agent_.reset();
  mesad_.reset();
}

std::unique_ptr<Agent> ExecTest::NewAgent(int kind) {
  uid_t uid = TestUid(kind);
  auto a = std::make_unique<Agent>(uid, uid, mesad_->socket());
  agent_pids_.push_back(a->pid());
  return a;
}

dv1::ExecRequest ExecTest::Request(const std::string& command, const std::string& cwd, uint32_t timeout_ms) const {
  dv1::ExecRequest req;
  req.set_mount(mount_.id());
  req.set_command(command);
  req.set_cwd(cwd);
  req.set_timeout_ms(timeout_ms);
  return req;
}

Agent::Outcome ExecTest::Run(const std::string& command, const std::string& cwd, uint32_t timeout_ms) {
  return agent_->Exec(Request(command, cwd, timeout_ms));
}

std::vector<std::string> ExecTest::Leftovers(uid_t uid, int ms, bool include_warm) {
  int64_t until = NowMs() + ms;
  // A sandbox mesad is starting is, until bwrap is exec'd, a CLONE_VM child of mesad already
  // running as the caller and showing mesad's command line. It is neither a leftover nor yet
  // recognisable as a warm sandbox: look again once it is something (a spawn takes ~1 ms).
  int64_t spawn_settle_until = NowMs() + 2000;
  char mesad_exe[PATH_MAX];
  ssize_t exe_len = readlink(("/proc/" + std::to_string(mesad_->pid()) + "/exe").c_str(), mesad_exe, sizeof mesad_exe);
  std::string mesad_path = exe_len > 0 ? std::string(mesad_exe, static_cast<size_t>(exe_len)) : "";
  while (true) {
    std::vector<std::string> left;
    bool spawning = false;
    for (pid_t p : ProcessesOf(uid)) {
      if (std::find(agent_pids_.begin(), agent_pids_.end(), p) != agent_pids_.end()) continue;
      std::string stat = ReadProcFile(p, "stat");
      if (stat.empty()) continue;  // gone since it was listed
      std::string cmdline = ReadProcFile(p, "cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      char exe[PATH_MAX];
      ssize_t n = readlink(("/proc/" + std::to_string(p) + "/exe").c_str(), exe, sizeof exe);
      size_t close_paren = stat.rfind(')');
      pid_t ppid = close_paren == std::string::npos ? -1 : atoi(stat.c_str() + close_paren + 4);  // ") S ppid"
      if (!mesad_path.empty() && n > 0 && std::string(exe, static_cast<size_t>(n)) == mesad_path &&
          ppid == mesad_->pid()) {
        spawning = true;
        continue;
      }
      // bwrap and its pid 1: "bwrap --args 3 -- /proc/self/fd/7 8 N --warm 10"; the shim:
      // "/proc/self/fd/7 8 N --warm 10". A command's processes never end so.
      static const std::regex warm(".* --warm [0-9]+ $");
      if (!include_warm && std::regex_match(cmdline, warm)) continue;
      // The stat line (state, parent) says what an empty command line means: a process exiting.
      left.push_back(std::to_string(p) + " (" + cmdline + ") stat: " + stat.substr(0, stat.find('\n')).substr(0, 80));
    }
    if (spawning && NowMs() < spawn_settle_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (left.empty() || NowMs() >= until) return left;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace mesa::testing
