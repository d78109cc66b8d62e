// What the exec tests share: a mesa-server + mesad pair, seeded repos, and "agents" — copies of
// the test binary re-executed as another uid that talk to mesad with the client library on
// the test's behalf (the mount and the commands belong to that uid, as SO_PEERCRED says).
//
// Each test process uses its own uids (derived from its pid), so tests that run in parallel
// never see each other's processes when they scan /proc for leftovers.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mesa/client.h"
#include "tests/integration/daemon_fixture.h"

namespace mesa::testing {

// The uids of this test process: kind 0 is "the user", kind 1 "another user".
uid_t TestUid(int kind = 0);

// The test binary's main: runs the agent when re-executed as one, else the tests.
int ExecTestMain(int argc, char** argv);

// A client of mesad running as `uid` in a child process. Calls block; errors come back as
// `error` (the ErrorDetail code) and `grpc` instead of exceptions.
class Agent {
 public:
  Agent(uid_t uid, gid_t gid, const std::string& socket);
  ~Agent();
  pid_t pid() const { return pid_; }
  uid_t uid() const { return uid_; }

  struct Error {
    std::string code;  // empty: success
    int grpc = 0;
    std::string message;
  };
  Error Login(const std::string& api_key);
  dv1::MountInfo Mount(const dv1::MountRequest& req, Error* error = nullptr);
  Error Unmount(const std::string& mount);
  dv1::MountInfo GetMount(const std::string& mount);  // empty on error

  struct Outcome {
    Error error;
    dv1::ExecResult result;
    // ExecStream only: the chunks in order, with their arrival (ms since the request was sent).
    std::vector<std::pair<bool, std::string>> chunks;
    std::vector<int64_t> arrival_ms;
    uint64_t streamed_stdout = 0;  // counted by the agent (StreamCount)
    uint64_t streamed_stderr = 0;
  };
  Outcome Exec(const dv1::ExecRequest& req);
  Outcome Stream(const dv1::ExecRequest& req);
  // ExecStream whose chunks the agent only counts (for floods).
  Outcome StreamCount(const dv1::ExecRequest& req);

  // Asynchronous use: send now, Finish*() later (one request at a time per agent).
  void StartExec(const dv1::ExecRequest& req);
  void StartStream(const dv1::ExecRequest& req);
  // Blocks until the next stream chunk; false if the result (or an error) came first.
  bool WaitForChunk(std::string* chunk = nullptr);
  Outcome Finish();
  // SIGKILL: the agent's connection to mesad goes away mid-call.
  void Kill();

 private:
  void Send(char op, const std::string& payload);
  bool Receive(char* kind, std::string* payload);
  Outcome Collect();

  uid_t uid_;
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  int64_t sent_at_ = 0;
  Outcome pending_;
  bool pending_done_ = false;
};

// Seeds repos straight into mesa-server's store.
class Seeder {
 public:
  explicit Seeder(const std::string& data);
  ~Seeder();
  // Creates the repo if needed, one change with `files` (path -> content) on the root change,
  // and points bookmark main at it.
  void Repo(const std::string& name, const std::vector<std::pair<std::string, std::string>>& files);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Processes whose real uid is `uid`, except `except`.
std::vector<pid_t> ProcessesOf(uid_t uid, pid_t except = -1);
// The warm sandboxes waiting for a command of `uid` (exec_warm_idle_ms): the pid namespace
// ("pid:[N]", as readlink /proc/self/ns/pid shows it inside) of each waiting shim, the process
// named "mesa-warm".
std::vector<std::string> WarmSandboxes(uid_t uid);
// Waits up to `ms` for a warm sandbox of `uid` other than `except`; its pid namespace, or "".
std::string WaitForWarmSandbox(uid_t uid, const std::string& except = "", int ms = 10000);
// The peak resident size (VmHWM) and the current one (VmRSS) of `pid`, in bytes.
uint64_t PeakRss(pid_t pid);
uint64_t CurrentRss(pid_t pid);
// The pid of the process listening on a Unix socket (SO_PEERCRED of a connection to it).
pid_t SocketPeerPid(const std::string& socket);

// mesa-server + mesad (remote mode) + seeded repos "app" (rw) and "docs" (ro) mounted by an
// agent running as TestUid(0).
class ExecTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // mesad.yaml lines added by a test fixture.
  virtual std::string ExtraConfig() const { return ""; }

  void StartMesad();
  std::unique_ptr<Agent> NewAgent(int kind = 0);
  // Runs `command` in the test mount (through agent_).
  Agent::Outcome Run(const std::string& command, const std::string& cwd = "", uint32_t timeout_ms = 0);
  dv1::ExecRequest Request(const std::string& command, const std::string& cwd = "", uint32_t timeout_ms = 0) const;
  // Waits (up to `ms`) until no process of `uid` but the agents' remains; returns the
  // leftovers as "pid (command line)". The warm sandbox mesad keeps ready for the uid's next
  // command (bwrap, its pid 1 and the shim, whose command lines end in `--warm FD`: no command
  // has run in it) is not a command's leftover and counts only with `include_warm`.
  std::vector<std::string> Leftovers(uid_t uid, int ms = 0, bool include_warm = false);

  TempDir dir_;
  std::unique_ptr<MesaServerProcess> server_;
  std::unique_ptr<MesadProcess> mesad_;
  std::unique_ptr<Agent> agent_;
  dv1::MountInfo mount_;
  std::string binary_;  // bytes of app/bin/blob.bin
  std::vector<pid_t> agent_pids_;
};

}  // namespace mesa::testing
