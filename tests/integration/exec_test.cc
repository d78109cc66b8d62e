// Exec: bash inside a mount, in the sandbox, through a real mesad and mesa-server, run by a
// client that is another uid (an agent, see exec_fixture.h): env and cwd, exit codes and
// signals, stdout/stderr, binary output, stdin, timeouts and cancellation that leave no
// process behind, output floods, limits, the CLI.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "tests/integration/exec_fixture.h"

namespace mesa::testing {
namespace {

using Outcome = Agent::Outcome;

std::string Lines(std::initializer_list<std::string> lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST_F(ExecTest, EnvironmentIsMinimalPlusTheCallers) {
  auto r = Run("env | sort");
  ASSERT_EQ(r.error.code, "") << r.error.message;
  // bash adds PWD, SHLVL and _ itself.
  EXPECT_EQ(r.result.stdout(), Lines({"HOME=/home/user", "LANG=C.UTF-8",
                                      "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "PWD=/",
                                      "SHLVL=1", "_=/usr/bin/env"}));
  EXPECT_EQ(r.result.exit_code(), 0);

  auto req = Request("echo \"$GREETING|$LANG|$HOME|$EMPTY|${UNSET-unset}\"");
  (*req.mutable_env())["GREETING"] = "hello world; $(not run)";
  (*req.mutable_env())["LANG"] = "C";
  (*req.mutable_env())["EMPTY"] = "";
  r = agent_->Exec(req);
  EXPECT_EQ(r.result.stdout(), "hello world; $(not run)|C|/home/user||unset\n");

  // Nothing persists between runs but files.
  r = Run("export X=1; cd /app/src; echo $X > /tmp/x");
  r = Run("echo \"${X-none} $(pwd) $(ls /tmp | wc -l)\"");
  EXPECT_EQ(r.result.stdout(), "none / 0\n");

  req = Request("true");
  (*req.mutable_env())["BAD=NAME"] = "x";
  EXPECT_EQ(agent_->Exec(req).error.code, "VALIDATION_ERROR");
}

// The sandbox's root: the repos, and the system directories the host has.
std::string RootListing(std::vector<std::string> repos) {
  std::vector<std::string> names = {"dev", "etc", "home", "proc", "tmp", "usr", "var"};
  for (const char* d : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    struct stat st {};
    if (lstat((std::string("/") + d).c_str(), &st) == 0) names.push_back(d);
  }
  names.insert(names.end(), repos.begin(), repos.end());
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += n + "\n";
  return out;
}

TEST_F(ExecTest, CwdIsHonouredAndChecked) {
  auto r = Run("pwd; ls");
  EXPECT_EQ(r.result.stdout(), "/\n" + RootListing({"app", "docs"}));
  r = Run("pwd; ls; cat main.c", "/app/src");
  EXPECT_EQ(r.result.stdout(), Lines({"/app/src", "main.c", "util", "int main(void) { return 0; }"}));
  r = Run("pwd", "/app/src/./util/../");  // normalized
  EXPECT_EQ(r.result.stdout(), "/app/src\n");
  r = Run("./run.sh", "/app");
  EXPECT_EQ(r.result.stdout(), "run.sh ran in /app\n");
  EXPECT_EQ(Run("pwd", "/tmp").result.stdout(), "/tmp\n");
  EXPECT_EQ(Run("pwd", "/home/user").result.stdout(), "/home/user\n");
  EXPECT_EQ(Run("pwd", "/usr/bin").result.stdout(), "/usr/bin\n");

  EXPECT_EQ(Run("pwd", "/app/nope").error.code, "ENOENT");
  EXPECT_EQ(Run("pwd", "/app/README.md").error.code, "ENOTDIR");
  EXPECT_EQ(Run("pwd", "/elsewhere").error.code, "ENOENT");
  EXPECT_EQ(Run("pwd", "relative/path").error.code, "VALIDATION_ERROR");

  // The repos are the mount's: the same bytes as through the file RPCs; docs is read-only.
  r = Run("cat /docs/guide.md; touch /docs/new 2>&1; echo rc=$?");
  EXPECT_NE(r.result.stdout().find("read me\n"), std::string::npos);
  EXPECT_NE(r.result.stdout().find("Read-only file system"), std::string::npos) << r.result.stdout();
  // The system is read-only, /tmp and home are private and writable.
  r = Run("touch /usr/x 2>/dev/null || echo usr-ro; touch /etc/x 2>/dev/null || echo etc-ro;"
          "echo a > /tmp/a && echo b > ~/b && cat /tmp/a ~/b");
  EXPECT_EQ(r.result.stdout(), Lines({"usr-ro", "etc-ro", "a", "b"}));
}

// A command and how it must end.
struct ExitCase {
  std::string command;
  int exit_code;
  int signal;
};

TEST_F(ExecTest, ExitCodesAndSignals) {
  ExitCase cases[] = {
      {"true", 0, 0},
      {"exit 3", 3, 0},
      {"exit 255", 255, 0},
      {"false", 1, 0},
      {"no-such-command", 127, 0},
      {"kill -TERM $$", 128 + SIGTERM, SIGTERM},
      {"kill -KILL $$", 128 + SIGKILL, SIGKILL},
      {"exit 137", 137, 0},  // looks like SIGKILL to a shell; the shim tells them apart
      {"sh -c 'kill -SEGV $$'", 128 + SIGSEGV, SIGSEGV},  // bash execs the last command itself
      {"sleep 0.1 & wait; kill -INT $$", 128 + SIGINT, SIGINT},
  };
  for (const auto& c : cases) {
    auto r = Run(c.command);
    ASSERT_EQ(r.error.code, "") << c.command << ": " << r.error.message;
    EXPECT_EQ(r.result.exit_code(), c.exit_code) << c.command;
    EXPECT_EQ(r.result.signal(), c.signal) << c.command;
    EXPECT_FALSE(r.result.timed_out()) << c.command;
    EXPECT_FALSE(r.result.cancelled()) << c.command;
  }
}

TEST_F(ExecTest, StdoutAndStderrAreKeptApart) {
  auto r = Run("echo out1; echo err1 >&2; printf out2; printf err2 >&2; echo -n 3 > /dev/stderr;"
               "echo -n 3 > /dev/stdout; exit 4");
  EXPECT_EQ(r.result.stdout(), "out1\nout23");
  EXPECT_EQ(r.result.stderr(), "err1\nerr23");
  EXPECT_EQ(r.result.stdout_bytes(), 10u);
  EXPECT_EQ(r.result.stderr_bytes(), 10u);
  EXPECT_EQ(r.result.exit_code(), 4);
  EXPECT_FALSE(r.result.truncated());

  auto s = agent_->Stream(Request("echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2"));
  ASSERT_EQ(s.error.code, "") << s.error.message;
  std::vector<std::pair<bool, std::string>> want = {{false, "out1\n"}, {true, "err1\n"}, {false, "out2\n"}};
  EXPECT_EQ(s.chunks, want);
  EXPECT_EQ(s.result.stdout(), "");  // streamed, not repeated
  EXPECT_EQ(s.result.stdout_bytes(), 10u);
  EXPECT_EQ(s.result.stderr_bytes(), 5u);
}

TEST_F(ExecTest, StreamingIsLive) {
  auto s = agent_->Stream(Request("echo first; sleep 1.5; echo second"));
  ASSERT_EQ(s.chunks.size(), 2u);
  EXPECT_EQ(s.chunks[0].second, "first\n");
  EXPECT_LT(s.arrival_ms[0], 1000) << "the first line waited for the end";
  EXPECT_GE(s.arrival_ms[1], 1400);
  EXPECT_GE(s.result.duration_ms(), 1400);
}

TEST_F(ExecTest, BinaryOutputAndStdinAreByteExact) {
  // Every byte value, from the repo, from printf, and through stdin.
  auto r = Run("cat /app/bin/blob.bin");
  EXPECT_EQ(r.result.stdout().size(), binary_.size());
  EXPECT_TRUE(r.result.stdout() == binary_);
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  r = Run("for i in $(seq 0 255); do printf \"\\\\$(printf %o $i)\"; done");
  EXPECT_TRUE(r.result.stdout() == all) << r.result.stderr();

  std::mt19937 rng(42);
  std::string input(3 << 20, '\0');
  for (auto& c : input) c = static_cast<char>(rng());
  auto req = Request("cat; cat >&2 < /app/bin/blob.bin");
  req.set_stdin(input);
  r = agent_->Exec(req);
  EXPECT_EQ(r.result.stdout().size(), input.size());
  EXPECT_TRUE(r.result.stdout() == input);
  EXPECT_TRUE(r.result.stderr() == binary_);
  auto s = agent_->Stream(req);
  std::string streamed;
  for (const auto& [is_stderr, chunk] : s.chunks) {
    if (!is_stderr) streamed += chunk;
  }
  EXPECT_TRUE(streamed == input);
}

TEST_F(ExecTest, Stdin) {
  // Absent: /dev/null.
  auto r = Run("cat; readlink /proc/self/fd/0");
  EXPECT_EQ(r.result.stdout(), "/dev/null\n");
  auto req = Request("tr a-z A-Z; echo; wc -c < /dev/stdin");
  req.set_stdin("hello, stdin");
  EXPECT_EQ(agent_->Exec(req).result.stdout(), "HELLO, STDIN\n0\n");
  req = Request("wc -c");
  req.set_stdin("");
  EXPECT_EQ(agent_->Exec(req).result.stdout(), "0\n");
  // A command that does not read a large stdin still ends.
  req = Request("echo ignored");
  req.set_stdin(std::string(8 << 20, 'x'));
  r = agent_->Exec(req);
  EXPECT_EQ(r.result.stdout(), "ignored\n");
  EXPECT_EQ(r.result.exit_code(), 0);
}

TEST_F(ExecTest, TimeoutKillsSleepAndReturnsOutputSoFar) {
  auto start = std::chrono::steady_clock::now();
  auto r = Run("echo before; echo err >&2; sleep 100; echo after", "", 700);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_TRUE(r.result.timed_out());
  EXPECT_TRUE(r.result.cancelled());
  EXPECT_EQ(r.result.cancel_reason(), "timeout");
  EXPECT_EQ(r.result.exit_code(), 124);
  EXPECT_EQ(r.result.signal(), SIGTERM);  // the grace period's SIGTERM ended bash
  EXPECT_EQ(r.result.stdout(), "before\n");
  EXPECT_EQ(r.result.stderr(), "err\n");
  EXPECT_GE(r.result.duration_ms(), 700);
  EXPECT_LT(ms, 700 + 200 + 1000);
  // Exact: nothing of the command is left when the call returns.
  EXPECT_EQ(Leftovers(agent_->uid()), std::vector<std::string>());
}

TEST_F(ExecTest, TimeoutKillsAForkingTreeWithEscapees) {
  // setsid, nohup, double forks, processes that ignore SIGTERM, and a loop that keeps forking.
  const std::string command =
      "trap '' TERM; "
      "setsid sleep 1000 & "
      "nohup sleep 1000 >/dev/null 2>&1 & "
      "( sleep 1000 & ) ; "
      "( setsid bash -c 'trap \"\" TERM; sleep 1000 & sleep 1000' & ) ; "
      "bash -c 'trap \"\" TERM HUP; while true; do sleep 1000 & sleep 0.05; done' & "
      "echo started; "
      "while true; do sleep 0.02; done";
  auto r = Run(command, "", 1500);
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_TRUE(r.result.timed_out());
  EXPECT_EQ(r.result.exit_code(), 124);
  EXPECT_EQ(r.result.signal(), SIGKILL);  // it ignored SIGTERM
  EXPECT_EQ(r.result.stdout(), "started\n");
  EXPECT_EQ(Leftovers(agent_->uid()), std::vector<std::string>());
}

TEST_F(ExecTest, BackgroundProcessesDieWithTheCommand) {
  auto start = std::chrono::steady_clock::now();
  auto r = Run("sleep 1000 & setsid sleep 1000 & nohup sleep 1000 >/dev/null 2>&1 & echo done");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.result.stdout(), "done\n");
  EXPECT_EQ(r.result.exit_code(), 0);
  EXPECT_FALSE(r.result.timed_out());
  EXPECT_LT(ms, 5000);
  EXPECT_EQ(Leftovers(agent_->uid()), std::vector<std::string>());
}

// A fork bomb ends with the run (and its timeout), and the limit is exact: 256 processes and
// threads per command in the test's config, the sandbox's own (bwrap's pid 1, the shim, bash)
// included. perl's fork fails at once where bash would retry for 15 s.
void ExpectForkBombContained(ExecTest* t, const std::function<Agent::Outcome(const std::string&, uint32_t)>& run,
                             const std::function<std::vector<std::string>()>& leftovers) {
  auto r = run(":(){ :|:& };:; sleep 2; echo survived", 4000);
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_EQ(leftovers(), std::vector<std::string>());
  r = run("perl -e '$n = 0; while ($n < 400) { $p = fork(); last unless defined $p;"
          " if (!$p) { sleep 30; exit 0 } $n++ } print \"$n $!\\n\"'", 20000);
  int started = atoi(r.result.stdout().c_str());
  EXPECT_GT(started, 240) << "stdout: " << r.result.stdout() << "\nstderr: " << r.result.stderr() << "\nexit "
                          << r.result.exit_code() << " signal " << r.result.signal() << " error " << r.error.code
                          << " " << r.error.message;
  EXPECT_LT(started, 256) << r.result.stdout();
  EXPECT_NE(r.result.stdout().find("Resource temporarily unavailable"), std::string::npos) << r.result.stdout();
  ::testing::Test::RecordProperty("forks_before_the_limit", started);
  // mesad is fine, and so is the next command.
  auto ok = run("echo ok", 0);
  EXPECT_EQ(ok.result.stdout(), "ok\n") << ok.result.stderr() << " exit " << ok.result.exit_code() << " error "
                                        << ok.error.message;
  EXPECT_EQ(leftovers(), std::vector<std::string>());
}

TEST_F(ExecTest, ForkBombIsContained) {
  ExpectForkBombContained(
      this, [&](const std::string& c, uint32_t t) { return Run(c, "", t); }, [&] { return Leftovers(agent_->uid()); });
}

class ExecCgroupTest : public ExecTest {
 protected:
  std::string ExtraConfig() const override { return "exec_pids_cgroup: true\n"; }
};

// The same limit through a pids cgroup per command (where mesad can make them).
TEST_F(ExecCgroupTest, ForkBombIsContained) {
  if (mesad_->Log().find("via cgroup-v") == std::string::npos) GTEST_SKIP() << "no pids cgroup here";
  ExpectForkBombContained(
      this, [&](const std::string& c, uint32_t t) { return Run(c, "", t); }, [&] { return Leftovers(agent_->uid()); });
}

TEST_F(ExecTest, ClientGoneKillsTheCommand) {
  auto other = NewAgent();
  ASSERT_EQ(other->Login(server_->key()).code, "");
  other->StartStream(Request("echo started; sleep 1000", "", 60000));
  std::string chunk;
  ASSERT_TRUE(other->WaitForChunk(&chunk));
  EXPECT_EQ(chunk, "started\n");
  EXPECT_FALSE(Leftovers(agent_->uid()).empty());  // the sandbox is running
  other->Kill();
  // mesad notices within its 100 ms tick, then the grace period.
  EXPECT_EQ(Leftovers(agent_->uid(), 3000), std::vector<std::string>());
  EXPECT_EQ(Run("echo still fine").result.stdout(), "still fine\n");
}

TEST_F(ExecTest, UnmountKillsTheMountsCommands) {
  auto runner = NewAgent();
  ASSERT_EQ(runner->Login(server_->key()).code, "");
  runner->StartStream(Request("trap '' TERM; echo started; sleep 1000", "/app", 60000));
  ASSERT_TRUE(runner->WaitForChunk());
  auto err = agent_->Unmount(mount_.id());
  EXPECT_EQ(err.code, "") << err.message;
  auto r = runner->Finish();
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_TRUE(r.result.cancelled());
  EXPECT_EQ(r.result.cancel_reason(), "unmount");
  EXPECT_FALSE(r.result.timed_out());
  EXPECT_EQ(r.result.signal(), SIGKILL);
  // The warm sandbox made for the mount's next command is gone too.
  EXPECT_EQ(Leftovers(agent_->uid(), 0, /*include_warm=*/true), std::vector<std::string>());
  EXPECT_EQ(Run("true").error.code, "MOUNT_NOT_FOUND");
}

TEST_F(ExecTest, SigtermKillsCommandsAndAnswersTheirCallers) {
  agent_->StartExec(Request("echo started; sleep 1000", "", 60000));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_FALSE(Leftovers(agent_->uid()).empty());
  std::thread stop([&] { mesad_->Stop(SIGTERM); });
  auto r = agent_->Finish();
  stop.join();
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_TRUE(r.result.cancelled());
  EXPECT_EQ(r.result.cancel_reason(), "shutdown");
  EXPECT_EQ(r.result.stdout(), "started\n");
  // mesad is gone: so is the warm sandbox it had made for the next command. (mesad reaped what
  // it killed; a process the kernel is still releasing can show in /proc for a moment, with an
  // empty command line, hence the short settle.)
  EXPECT_EQ(Leftovers(agent_->uid(), 2000, /*include_warm=*/true), std::vector<std::string>());
}

TEST_F(ExecTest, SigkillOfMesadTakesTheSandboxesWithIt) {
  agent_->StartExec(Request("setsid sleep 1000 & sleep 1000", "", 60000));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_FALSE(Leftovers(agent_->uid()).empty());
  EXPECT_NE(WaitForWarmSandbox(agent_->uid()), "");  // made for the next command meanwhile
  mesad_->Stop(SIGKILL);
  EXPECT_EQ(Leftovers(agent_->uid(), 3000, /*include_warm=*/true), std::vector<std::string>());
  EXPECT_NE(agent_->Finish().error.code, "");
  StartMesad();  // detaches the dead daemon's mount
}

TEST_F(ExecTest, ValidationAndMountErrors) {
  EXPECT_EQ(Run("").error.code, "VALIDATION_ERROR");
  EXPECT_EQ(Run(std::string(200000, 'x')).error.code, "VALIDATION_ERROR");
  EXPECT_EQ(Run("true", "", 600001).error.code, "VALIDATION_ERROR");  // above exec_timeout_max_ms
  auto req = Request("true");
  req.set_mount("mnt_nope");
  auto r = agent_->Exec(req);
  EXPECT_EQ(r.error.code, "MOUNT_NOT_FOUND");
  EXPECT_EQ(r.error.grpc, 5);  // NOT_FOUND
  req.set_mount(mount_.path());  // the mount point works too
  EXPECT_EQ(agent_->Exec(req).result.exit_code(), 0);
}

class ExecLimitsTest : public ExecTest {
 protected:
  std::string ExtraConfig() const override { return "exec_max_per_uid: 2\nexec_max_total: 3\n"; }
};

TEST_F(ExecLimitsTest, ExcessRunsAreRefused) {
  std::vector<std::unique_ptr<Agent>> runners;
  for (int i = 0; i < 3; ++i) {
    runners.push_back(NewAgent());
    ASSERT_EQ(runners.back()->Login(server_->key()).code, "");
  }
  runners[0]->StartStream(Request("echo up; sleep 1000", "", 60000));
  runners[1]->StartStream(Request("echo up; sleep 1000", "", 60000));
  ASSERT_TRUE(runners[0]->WaitForChunk());
  ASSERT_TRUE(runners[1]->WaitForChunk());
  auto r = Run("true");
  EXPECT_EQ(r.error.code, "EXEC_LIMIT");
  EXPECT_EQ(r.error.grpc, 8);  // RESOURCE_EXHAUSTED
  // Another uid still may, up to the total.
  auto other = NewAgent(1);
  ASSERT_EQ(other->Login(server_->key()).code, "");
  dv1::MountRequest mreq;
  mreq.add_repos()->set_name("docs");
  auto m = other->Mount(mreq);
  dv1::ExecRequest req;
  req.set_mount(m.id());
  req.set_command("echo up; sleep 1000");
  other->StartStream(req);
  ASSERT_TRUE(other->WaitForChunk());
  auto other2 = NewAgent(1);
  ASSERT_EQ(other2->Login(server_->key()).code, "");
  req.set_command("true");
  EXPECT_EQ(other2->Exec(req).error.code, "EXEC_LIMIT");  // exec_max_total
  runners[0]->Kill();
  runners[1]->Kill();
  other->Kill();
  EXPECT_EQ(Leftovers(agent_->uid(), 3000), std::vector<std::string>());
  EXPECT_EQ(Leftovers(TestUid(1), 3000), std::vector<std::string>());
  EXPECT_EQ(Run("echo again").result.stdout(), "again\n");
}

class ExecFloodTest : public ExecTest {
 protected:
  std::string ExtraConfig() const override { return "exec_output_cap_bytes: 1048576\n"; }
};

TEST_F(ExecFloodTest, OneGigabyteIsCappedAndMesadStaysFlat) {
  pid_t mesad = SocketPeerPid(mesad_->socket());
  ASSERT_GT(mesad, 0);
  Run("echo warm-up");
  uint64_t before = PeakRss(mesad);
  auto r = Run("yes 0123456789abcdef | head -c 1073741824; echo tail-marker; echo small >&2", "", 120000);
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_EQ(r.result.exit_code(), 0);
  EXPECT_TRUE(r.result.truncated());
  EXPECT_EQ(r.result.stdout_bytes(), (1ull << 30) + 12);
  ASSERT_EQ(r.result.stdout().size(), 1u << 20);
  EXPECT_EQ(r.result.stdout().substr(0, 17), "0123456789abcdef\n");  // head
  EXPECT_EQ(r.result.stdout().substr((1 << 20) - 12), "tail-marker\n");  // tail
  EXPECT_EQ(r.result.stderr(), "small\n");
  uint64_t after_unary = PeakRss(mesad);

  // Streamed: every byte reaches the client, flow-controlled.
  auto s = agent_->StreamCount(Request("head -c 268435456 /dev/zero", "", 120000));
  ASSERT_EQ(s.error.code, "") << s.error.message;
  EXPECT_EQ(s.streamed_stdout, 256ull << 20);
  EXPECT_EQ(s.result.stdout_bytes(), 256ull << 20);
  uint64_t after_stream = PeakRss(mesad);
  // The cap is 1 MiB per stream; allow for gRPC's buffers and allocator slack. Under
  // AddressSanitizer freed chunks sit in its quarantine (256 MiB by default) beside its own
  // shadow memory, so there only a flood that is held whole (1 GiB) fails.
#if defined(__SANITIZE_ADDRESS__)
  const uint64_t slack = 768ull << 20;
#else
  const uint64_t slack = 24ull << 20;
#endif
  EXPECT_LT(after_unary - before, slack) << "peak RSS " << before << " -> " << after_unary;
  EXPECT_LT(after_stream - before, slack) << "peak RSS " << before << " -> " << after_stream;
  RecordProperty("mesad_peak_rss_before", std::to_string(before));
  RecordProperty("mesad_peak_rss_after", std::to_string(after_stream));
}

// Files a command writes go through the mount: part of the repo's working change once flushed
// (Unmount flushes every pending write before it returns).
TEST_F(ExecTest, FilesWrittenByTheCommandReachTheServerAfterFlush) {
  auto r = Run("mkdir -p out && printf 'built\\n' > out/result.txt && cp README.md out/copy.md && echo ok", "/app");
  ASSERT_EQ(r.result.stdout(), "ok\n") << r.result.stderr();
  EXPECT_EQ(Run("cat /app/out/result.txt").result.stdout(), "built\n");
  // The first write forks a working change off main's; the mount shows it once created.
  std::string original = mount_.repos(0).change_id(), working;
  for (int i = 0; i < 100 && (working.empty() || working == original); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    working = agent_->GetMount(mount_.id()).repos(0).change_id();
  }
  ASSERT_NE(working, original);
  ASSERT_EQ(agent_->Unmount(mount_.id()).code, "");
  auto root = mesad_->NewClient();
  dv1::LoginRequest login;
  login.set_api_key(server_->key());
  login.set_make_default(true);
  root->sessions().login(login);
  EXPECT_EQ(root->content().read("app", "out/result.txt", working), "built\n");
  EXPECT_EQ(root->content().read("app", "out/copy.md", working), "# app\n");
}

TEST_F(ExecTest, CliStreamsAndExitsWithTheCommandsCode) {
  std::string as_user = "setpriv --reuid=" + std::to_string(agent_->uid()) + " --regid=" + std::to_string(agent_->uid()) +
                        " --clear-groups " + MESA_CLI_BIN + " --socket " + mesad_->socket() + " ";
  std::string out;
  int rc = RunCommand(as_user + "exec " + mount_.id() + " --cwd /app -e WHO=cli -- 'echo $WHO in $(pwd); exit 7' 2>&1", &out);
  EXPECT_EQ(rc, 7);
  EXPECT_EQ(out, "cli in /app\n");
  out.clear();
  rc = RunCommand(as_user + "exec " + mount_.id() + " -- echo a b 'c  d' 2>&1", &out);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out, "a b c d\n");  // words joined with spaces, like ssh
  out.clear();
  rc = RunCommand(as_user + "exec " + mount_.id() + " --timeout 500ms -- 'echo partial; sleep 100' 2>/dev/null", &out);
  EXPECT_EQ(rc, 124);
  EXPECT_EQ(out, "partial\n");
  out.clear();
  rc = RunCommand("echo piped | " + as_user + "exec " + mount_.id() + " -i -- 'tr a-z A-Z; kill -TERM $$'", &out);
  EXPECT_EQ(rc, 128 + SIGTERM);
  EXPECT_EQ(out, "PIPED\n");
  out.clear();
  rc = RunCommand(as_user + "--json exec " + mount_.id() + " -- 'printf x'", &out);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("\"stdout\": \"eA==\""), std::string::npos) << out;
  rc = RunCommand(as_user + "exec mnt_nope -- true 2>/dev/null");
  EXPECT_EQ(rc, 6);  // NotFoundError
}

// The CLI's exec speaks gRPC over its own HTTP/2 connection (client/cli/h2_call.h), not through
// a gRPC channel: flow control over many windows' worth of output, the Mesa error code from the
// status details, and an unreachable daemon must come out as with the library.
TEST_F(ExecTest, CliCarriesLargeOutputAndErrorsOverItsOwnConnection) {
  std::string as_user = "setpriv --reuid=" + std::to_string(agent_->uid()) + " --regid=" + std::to_string(agent_->uid()) +
                        " --clear-groups " + MESA_CLI_BIN + " --socket " + mesad_->socket() + " ";
  // 48 MiB on stdout (48 stream windows, 3 connection windows) and a tail on stderr.
  std::string out;
  int rc = RunCommand(as_user + "exec " + mount_.id() +
                          " -- 'head -c 50331648 /dev/zero | tr \\\\0 x; echo done >&2' 2>&1 | sha256sum",
                      &out);
  EXPECT_EQ(rc, 0);
  std::string expected;
  RunCommand("(head -c 50331648 /dev/zero | tr \\\\0 x; echo done) | sha256sum", &expected);
  EXPECT_EQ(out, expected);
  // The Mesa code and message from the status details, on stderr; the exit code of its class.
  out.clear();
  rc = RunCommand(as_user + "exec mnt_nope -- true 2>&1", &out);
  EXPECT_EQ(rc, 6);
  EXPECT_EQ(out.rfind("mesa: MOUNT_NOT_FOUND: ", 0), 0u) << out;
  out.clear();
  rc = RunCommand(as_user + "exec " + mount_.id() + " --cwd /app/nope -- true 2>&1", &out);
  EXPECT_EQ(rc, 6);  // ENOENT: NotFoundError
  EXPECT_EQ(out.rfind("mesa: ENOENT: cwd /app/nope", 0), 0u) << out;
  out.clear();
  rc = RunCommand(std::string(MESA_CLI_BIN) + " --socket " + dir_.path() + "/no.sock exec " + mount_.id() + " -- true 2>&1", &out);
  EXPECT_EQ(rc, 10);
  EXPECT_NE(out.find("DAEMON_UNAVAILABLE"), std::string::npos) << out;
  // A reader that goes away: the CLI dies of SIGPIPE and mesad ends the command.
  rc = RunCommand(as_user + "exec " + mount_.id() + " -- 'yes; sleep 100' | head -c 10 >/dev/null");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(Leftovers(agent_->uid(), 5000), std::vector<std::string>());
}


// ---- warm sandboxes (exec_warm_idle_ms) ----

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The next command of a uid and mount runs in a sandbox that existed before its request: the
// pid namespace the command sees is the one of the shim that was waiting.
TEST_F(ExecTest, TheNextCommandRunsInAWarmSandbox) {
  uid_t uid = agent_->uid();
  EXPECT_EQ(WarmSandboxes(uid), std::vector<std::string>());  // none before a first command
  auto r = Run("readlink /proc/self/ns/pid");
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_FALSE(r.result.warm_sandbox());
  std::string first = Trimmed(r.result.stdout());
  std::string warm = WaitForWarmSandbox(uid);
  ASSERT_NE(warm, "") << "no warm sandbox after a command";
  EXPECT_NE(warm, first);
  EXPECT_EQ(WarmSandboxes(uid).size(), 1u);  // one per uid and mount

  r = Run("readlink /proc/self/ns/pid; echo $$ $PPID; cat /proc/1/comm");
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_TRUE(r.result.warm_sandbox());
  EXPECT_EQ(r.result.stdout(), warm + "\n3 2\nbwrap\n");  // bash under the shim under bwrap's pid 1
  EXPECT_EQ(r.result.exit_code(), 0);
  // Used once: the next command gets another one.
  std::string next = WaitForWarmSandbox(uid, warm);
  ASSERT_NE(next, "");
  EXPECT_EQ(WarmSandboxes(uid), std::vector<std::string>({next}));
  r = Run("readlink /proc/self/ns/pid");
  EXPECT_TRUE(r.result.warm_sandbox());
  EXPECT_EQ(Trimmed(r.result.stdout()), next);
  // ExecStream takes it the same way.
  std::string third = WaitForWarmSandbox(uid, next);
  auto s = agent_->Stream(Request("readlink /proc/self/ns/pid"));
  EXPECT_TRUE(s.result.warm_sandbox());
  ASSERT_EQ(s.chunks.size(), 1u);
  EXPECT_EQ(Trimmed(s.chunks[0].second), third);
}

// What a command sees and what its caller gets back, the same on either path: `warm` says
// which one every command but the first must have taken.
void ExpectCommandsBehaveTheSame(Agent* agent,
                                 const std::function<dv1::ExecRequest(const std::string&, const std::string&, uint32_t)>& request,
                                 bool warm, const std::function<std::vector<std::string>()>& warm_leftovers) {
  uid_t uid = agent->uid();
  auto run = [&](dv1::ExecRequest req, bool stream = false) {
    if (warm) {
      EXPECT_NE(WaitForWarmSandbox(uid), "") << req.command();
    }
    auto r = stream ? agent->Stream(req) : agent->Exec(req);
    EXPECT_EQ(r.error.code, "") << req.command() << ": " << r.error.message;
    EXPECT_EQ(r.result.warm_sandbox(), warm) << req.command();
    if (!warm) {
      EXPECT_EQ(warm_leftovers(), std::vector<std::string>()) << "a warm sandbox though disabled";
    }
    return r;
  };
  agent->Exec(request("true", "", 0));  // the first command sets up its own sandbox either way

  auto r = run(request("env | sort", "", 0));
  EXPECT_EQ(r.result.stdout(), Lines({"HOME=/home/user", "LANG=C.UTF-8",
                                      "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "PWD=/",
                                      "SHLVL=1", "_=/usr/bin/env"}));
  auto req = request("echo \"$GREETING|$LANG|$HOME|$EMPTY|${UNSET-unset}\"; env | wc -l", "", 0);
  (*req.mutable_env())["GREETING"] = "hello world; $(not run)";
  (*req.mutable_env())["LANG"] = "C";
  (*req.mutable_env())["EMPTY"] = "";
  (*req.mutable_env())["BIG"] = std::string(100000, 'b');  // larger than a pipe's buffer
  r = run(req);
  EXPECT_EQ(r.result.stdout(), "hello world; $(not run)|C|/home/user||unset\n9\n");

  r = run(request("pwd; ls; cat main.c", "/app/src", 0));
  EXPECT_EQ(r.result.stdout(), Lines({"/app/src", "main.c", "util", "int main(void) { return 0; }"}));
  EXPECT_EQ(run(request("pwd", "/tmp", 0)).result.stdout(), "/tmp\n");
  EXPECT_EQ(run(request("./run.sh", "/app", 0)).result.stdout(), "run.sh ran in /app\n");

  ExitCase cases[] = {
      {"exit 3", 3, 0},
      {"no-such-command", 127, 0},
      {"kill -TERM $$", 128 + SIGTERM, SIGTERM},
      {"exit 137", 137, 0},
      {"sh -c 'kill -SEGV $$'", 128 + SIGSEGV, SIGSEGV},
  };
  for (const auto& c : cases) {
    r = run(request(c.command, "", 0));
    EXPECT_EQ(r.result.exit_code(), c.exit_code) << c.command;
    EXPECT_EQ(r.result.signal(), c.signal) << c.command;
    EXPECT_FALSE(r.result.cancelled()) << c.command;
  }

  r = run(request("echo out1; echo err1 >&2; printf out2; printf err2 >&2; echo -n 3 > /dev/stderr;"
                  "echo -n 3 > /dev/stdout; exit 4", "", 0));
  EXPECT_EQ(r.result.stdout(), "out1\nout23");
  EXPECT_EQ(r.result.stderr(), "err1\nerr23");
  EXPECT_EQ(r.result.stdout_bytes(), 10u);
  EXPECT_EQ(r.result.stderr_bytes(), 10u);
  EXPECT_EQ(r.result.exit_code(), 4);
  auto s = run(request("echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2", "", 0), /*stream=*/true);
  std::vector<std::pair<bool, std::string>> want = {{false, "out1\n"}, {true, "err1\n"}, {false, "out2\n"}};
  EXPECT_EQ(s.chunks, want);

  // Stdin: none is /dev/null; bytes arrive exactly, through a pipe the command may reopen.
  EXPECT_EQ(run(request("cat; readlink /proc/self/fd/0", "", 0)).result.stdout(), "/dev/null\n");
  req = request("tr a-z A-Z; echo; wc -c < /dev/stdin", "", 0);
  req.set_stdin("hello, stdin");
  EXPECT_EQ(run(req).result.stdout(), "HELLO, STDIN\n0\n");
  req = request("wc -c", "", 0);
  req.set_stdin(std::string(3 << 20, 'x'));
  EXPECT_EQ(run(req).result.stdout(), std::to_string(3 << 20) + "\n");

  // The timeout counts from the start of the command; the whole namespace is killed.
  r = run(request("echo before; echo err >&2; sleep 100 & sleep 100; echo after", "", 700));
  EXPECT_TRUE(r.result.timed_out());
  EXPECT_TRUE(r.result.cancelled());
  EXPECT_EQ(r.result.cancel_reason(), "timeout");
  EXPECT_EQ(r.result.exit_code(), 124);
  EXPECT_EQ(r.result.signal(), SIGTERM);
  EXPECT_EQ(r.result.stdout(), "before\n");
  EXPECT_EQ(r.result.stderr(), "err\n");
  EXPECT_GE(r.result.duration_ms(), 700);
  EXPECT_LT(r.result.duration_ms(), 700 + 200 + 1000);
}

TEST_F(ExecTest, WarmSandboxesBehaveLikeColdOnes) {
  ExpectCommandsBehaveTheSame(
      agent_.get(), [&](const std::string& c, const std::string& cwd, uint32_t t) { return Request(c, cwd, t); },
      /*warm=*/true, [] { return std::vector<std::string>(); });
  EXPECT_EQ(Leftovers(agent_->uid()), std::vector<std::string>());
}

class ExecColdTest : public ExecTest {
 protected:
  std::string ExtraConfig() const override { return "exec_warm_idle_ms: 0\n"; }
};

// exec_warm_idle_ms: 0: every command sets up its own sandbox, and nothing waits in between.
TEST_F(ExecColdTest, NoWarmSandboxesWhenDisabled) {
  ExpectCommandsBehaveTheSame(
      agent_.get(), [&](const std::string& c, const std::string& cwd, uint32_t t) { return Request(c, cwd, t); },
      /*warm=*/false, [&] { return Leftovers(agent_->uid(), 0, /*include_warm=*/true); });
  EXPECT_EQ(Run("readlink /proc/self/ns/pid").result.warm_sandbox(), false);
  EXPECT_EQ(WarmSandboxes(agent_->uid()), std::vector<std::string>());
}

// Each sandbox serves one command: nothing of one command's /tmp, home, /dev/shm, processes or
// environment reaches the next, warm or not.
TEST_F(ExecTest, WarmSandboxesShareNothingBetweenCommands) {
  Run("true");
  ASSERT_NE(WaitForWarmSandbox(agent_->uid()), "");
  auto r = Run("echo secret > /tmp/f; echo h > ~/h; echo m > /dev/shm/m; mkdir /tmp/d; export X=1;"
               "(setsid sleep 1000 &); cd /tmp; readlink /proc/self/ns/pid");
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_TRUE(r.result.warm_sandbox());
  std::string first = Trimmed(r.result.stdout());
  ASSERT_NE(WaitForWarmSandbox(agent_->uid(), first), "");
  r = Run("ls -A /tmp /home/user /dev/shm; echo \"${X-none} $(pwd)\"; ls /proc | grep -c '^[0-9]';"
          "readlink /proc/self/ns/pid");
  EXPECT_TRUE(r.result.warm_sandbox());
  std::string out = r.result.stdout();
  size_t ns_at = out.rfind("pid:[");
  ASSERT_NE(ns_at, std::string::npos) << out;
  // Empty; bwrap's pid 1, the shim, bash, ls and grep; another pid namespace.
  EXPECT_EQ(out.substr(0, ns_at), "/dev/shm:\n\n/home/user:\n\n/tmp:\nnone /\n5\n");
  EXPECT_NE(Trimmed(out.substr(ns_at)), first);
}

// Command and environment reach the warm sandbox through a descriptor, not a command line:
// the environment is on no process's command line on the host.
TEST_F(ExecTest, WarmSandboxGetsItsEnvironmentOffTheCommandLine) {
  Run("true");
  ASSERT_NE(WaitForWarmSandbox(agent_->uid()), "");
  auto req = Request("echo started; sleep 1000", "", 60000);
  (*req.mutable_env())["TOKEN"] = "tok-5f3a9e1c-not-on-any-command-line";
  agent_->StartStream(req);
  ASSERT_TRUE(agent_->WaitForChunk());
  int found = 0, scanned = 0;
  for (pid_t p : ProcessesOf(agent_->uid())) {
    std::string cmdline;
    int fd = open(("/proc/" + std::to_string(p) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
    char buf[4096];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) cmdline.append(buf, static_cast<size_t>(n));
    if (fd >= 0) close(fd);
    ++scanned;
    found += cmdline.find("tok-5f3a9e1c") != std::string::npos;
  }
  EXPECT_GT(scanned, 3);  // bwrap, its pid 1, the shim, bash, sleep
  EXPECT_EQ(found, 0);
  agent_->Kill();
  EXPECT_EQ(Leftovers(TestUid(0), 3000), std::vector<std::string>());
}

// A warm sandbox fits one configuration: a command whose sandbox would differ (here the
// caller's gid, from SO_PEERCRED) kills it and sets up its own.
TEST_F(ExecTest, AWarmSandboxThatDoesNotFitIsReplaced) {
  uid_t uid = agent_->uid();
  gid_t other_gid = uid + 7;
  Run("true");
  std::string warm = WaitForWarmSandbox(uid);
  ASSERT_NE(warm, "");
  Agent other(uid, other_gid, mesad_->socket());
  agent_pids_.push_back(other.pid());
  auto r = other.Exec(Request("id -g; readlink /proc/self/ns/pid"));
  ASSERT_EQ(r.error.code, "") << r.error.message;
  EXPECT_FALSE(r.result.warm_sandbox());
  EXPECT_EQ(r.result.stdout().substr(0, r.result.stdout().find('\n')), std::to_string(other_gid));
  EXPECT_EQ(r.result.stdout().find(warm), std::string::npos);
  // The one for the other gid is gone; the next one is for this gid.
  std::string next = WaitForWarmSandbox(uid, warm);
  ASSERT_NE(next, "");
  EXPECT_EQ(WarmSandboxes(uid), std::vector<std::string>({next}));
  r = other.Exec(Request("id -g"));
  EXPECT_TRUE(r.result.warm_sandbox());
  EXPECT_EQ(r.result.stdout(), std::to_string(other_gid) + "\n");
  // And back.
  ASSERT_NE(WaitForWarmSandbox(uid, next), "");
  r = Run("id -g");
  EXPECT_FALSE(r.result.warm_sandbox());
  EXPECT_EQ(r.result.stdout(), std::to_string(uid) + "\n");
}

TEST_F(ExecTest, UnmountKillsTheWarmSandbox) {
  Run("true");
  ASSERT_NE(WaitForWarmSandbox(agent_->uid()), "");
  EXPECT_FALSE(Leftovers(agent_->uid(), 0, /*include_warm=*/true).empty());
  ASSERT_EQ(agent_->Unmount(mount_.id()).code, "");
  // Gone when Unmount returns.
  EXPECT_EQ(Leftovers(agent_->uid(), 0, /*include_warm=*/true), std::vector<std::string>());
}

// The warm sandbox for the next command is set up right after a command ends; an Unmount then
// kills it half set up. bwrap's pid 1 may still be waiting for bwrap's id maps (no death signal
// yet): killing only bwrap once left it, and Unmount waiting for it, forever.
TEST_F(ExecTest, UnmountRightAfterACommandKillsTheSandboxBeingSetUp) {
  for (int i = 0; i < 12; ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    if (i > 0) {
      dv1::MountRequest req;
      req.add_repos()->set_name("app");
      mount_ = agent_->Mount(req);
      ASSERT_FALSE(mount_.id().empty());
    }
    auto r = Run("true");
    ASSERT_EQ(r.error.code, "") << r.error.message;
    // Give the set-up a head start of 0..2.2 ms, to land in each of its steps.
    std::this_thread::sleep_for(std::chrono::microseconds(200 * i));
    auto start = std::chrono::steady_clock::now();
    ASSERT_EQ(agent_->Unmount(mount_.id()).code, "");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
    EXPECT_EQ(Leftovers(agent_->uid(), 0, /*include_warm=*/true), std::vector<std::string>());
  }
}

class ExecWarmIdleTest : public ExecTest {
 protected:
  std::string ExtraConfig() const override { return "exec_warm_idle_ms: 1000\n"; }
};

// A warm sandbox nobody takes is killed after exec_warm_idle_ms; the next command then sets up
// its own.
TEST_F(ExecWarmIdleTest, AnUnusedWarmSandboxIsKilled) {
  Run("true");
  ASSERT_NE(WaitForWarmSandbox(agent_->uid()), "");
  EXPECT_EQ(Leftovers(agent_->uid(), 15000, /*include_warm=*/true), std::vector<std::string>());
  auto r = Run("echo again");
  EXPECT_EQ(r.result.stdout(), "again\n");
  EXPECT_FALSE(r.result.warm_sandbox());
}

}  // namespace
}  // namespace mesa::testing

int main(int argc, char** argv) { return mesa::testing::ExecTestMain(argc, argv); }
