// The `mesa` CLI as a user runs it: a real mesad (embedded store, or sessions on a real
// mesa-server process), the real `mesa` binary, its stdout, stderr and exit codes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "rest/encoding.h"
#include "tests/cli/cli_result.h"
#include "tests/unit/test_util.h"

namespace mesa::testing {
namespace {

using nlohmann::json;
const std::string kRoot = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";

std::string Bin(const char* env, const char* fallback) {
  const char* v = getenv(env);
  return v && *v ? v : fallback;
}
std::string MesadBin() { return Bin("MESAD_BIN", MESAD_BIN); }
std::string CliBin() { return Bin("MESA_CLI_BIN", MESA_CLI_BIN); }
std::string ServerBin() { return Bin("MESA_SERVER_BIN", MESA_SERVER_BIN); }

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

void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  chmod(path.c_str(), mode);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool PortAnswers(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    // Never outlive the test process, even when it dies without running TearDown.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Returns the exit status (128+signal when killed).
int StopProcess(pid_t pid) {
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The org the embedded store provisions for the user running the test (named after them).
std::string LocalUserOrg() {
  passwd* pw = getpwuid(getuid());
  std::string name = pw ? pw->pw_name : "uid-" + std::to_string(getuid());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

using Result = CliResult;

// A fresh mesad on the embedded store per test.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = dir_.path() + "/mesad.sock";
    mesad_ = Spawn({MesadBin(), "--socket", socket_, "--state-dir", dir_.path() + "/state", "--cache-dir",
                    dir_.path() + "/cache"},
                   dir_.path() + "/mesad.log");
    for (int i = 0; i < 500; ++i) {
      if (Mesa("status").code == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "mesad did not answer on " << socket_ << "\n" << ReadFile(dir_.path() + "/mesad.log");
  }

  void TearDown() override {
    EXPECT_EQ(StopProcess(mesad_), 0) << ReadFile(dir_.path() + "/mesad.log");
    if (server_ > 0) StopProcess(server_);
  }

  // Runs `mesa ARGS` with MESA_SOCKET pointing at the fixture's mesad; `env` is prepended
  // (VAR=value ...), `input` is fed to stdin.
  Result Mesa(const std::string& args, const std::string& env = "", const std::string& input = "") {
    std::string err = dir_.path() + "/stderr";
    std::string cmd = "env -u MESA_API_KEY -u MESA_API_URL -u MESA_ORG MESA_SOCKET=" + Q(socket_) + " " + env + " " +
                      CliBin() + " " + args + " 2>" + Q(err);
    if (input.empty()) {
      cmd += " </dev/null";
    } else {
      std::string in = dir_.path() + "/stdin";
      WriteFile(in, input);
      cmd += " <" + Q(in);
    }
    Result r;
    r.code = RunCommand(cmd, &r.out);
    r.err = ReadFile(err);
    return r;
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  // A local file under the test dir; returns its path.
  std::string Local(const std::string& name, const std::string& data, mode_t mode = 0644) {
    WriteFile(Path("files/" + name), data, mode);
    return Path("files/" + name);
  }

  std::string CreateRepo(const std::string& name) {
    Result r = Mesa("repos create " + name + " --json");
    EXPECT_EQ(r.code, 0) << r;
    return r.Json().value("id", "");
  }

  // Creates a change on `base` writing `path` = `data`; returns its id.
  std::string Change(const std::string& repo, const std::string& base, const std::string& path,
                     const std::string& data, const std::string& message = "change") {
    std::string local = Local("c-" + std::to_string(++counter_), data);
    Result r = Mesa("changes create " + repo + " --base " + base + " -m " + Q(message) + " --file " +
                    Q(path + "=" + local) + " --json");
    EXPECT_EQ(r.code, 0) << r;
    return r.Json().value("id", "");
  }

  // Starts mesa-server (init --org acme, serve on a loopback port); returns its admin key.
  std::string StartServer() {
    std::string data = Path("server");
    std::string out;
    EXPECT_EQ(RunCommand(ServerBin() + " init --data " + Q(data) + " --org acme", &out), 0) << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    std::string key = out.substr(out.rfind('\n') + 1);
    port_ = FreePort();
    server_ = Spawn({ServerBin(), "serve", "--data", data, "--listen", "127.0.0.1:" + std::to_string(port_)},
                    Path("server.log"));
    for (int i = 0; i < 500 && !PortAnswers(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(PortAnswers(port_)) << ReadFile(Path("server.log"));
    return key;
  }
  std::string ApiUrl() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  std::set<std::string> SessionIds() {
    Result r = Mesa("sessions --json");
    EXPECT_EQ(r.code, 0) << r;
    std::set<std::string> ids;
    json j = r.Json();
    for (const auto& s : j["items"]) ids.insert(s.value("id", ""));
    return ids;
  }

  TempDir dir_;
  std::string socket_;
  pid_t mesad_ = -1;
  pid_t server_ = -1;
  int port_ = 0;
  int counter_ = 0;
};

// ---- help and usage ----

TEST_F(CliTest, HelpOnEveryCommandExitsZero) {
  Result top = Mesa("--help");
  ASSERT_EQ(top.code, 0) << top;
  EXPECT_TRUE(top.out.starts_with("usage: mesa")) << top;
  for (const char* line : {"0   ok", "2   usage error", "3   ValidationError", "4   AuthenticationError",
                           "5   AuthorizationError", "6   NotFoundError", "7   ConflictError", "8   RateLimitError",
                           "9   ServerError", "10  DaemonUnavailableError", "11  WebhookVerificationError"}) {
    EXPECT_NE(top.out.find(line), std::string::npos) << line << "\n" << top;
  }
  EXPECT_EQ(Mesa("-h").out, top.out);
  EXPECT_EQ(Mesa("help").out, top.out);

  const std::map<std::string, std::vector<std::string>> commands = {
      {"login", {}},
      {"logout", {}},
      {"whoami", {}},
      {"status", {}},
      {"sessions", {}},
      {"diff", {}},
      {"repos", {"list", "create", "get", "update", "delete", "tags"}},
      {"bookmarks", {"list", "create", "get", "move", "delete", "merge"}},
      {"changes", {"list", "create", "get", "update"}},
      {"content", {"get"}},
      {"api-keys", {"list", "create", "revoke", "update"}},
      {"webhook-targets", {"list", "create", "get", "update", "delete"}},
      {"webhooks", {"verify"}},
  };
  for (const auto& [group, subs] : commands) {
    for (const char* flag : {"--help", "-h"}) {
      Result g = Mesa(group + " " + flag);
      EXPECT_EQ(g.code, 0) << group << g;
      EXPECT_TRUE(g.out.starts_with("usage: mesa " + group)) << g;
      EXPECT_EQ(g.err, "");
    }
    for (const auto& sub : subs) {
      Result c = Mesa(group + " " + sub + " --help");
      EXPECT_EQ(c.code, 0) << group << " " << sub << c;
      EXPECT_TRUE(c.out.starts_with("usage: mesa " + group + " " + sub)) << c;
      EXPECT_NE(c.out.find("--json"), std::string::npos) << c;
      // Help wins over missing arguments, anywhere on the line.
      Result late = Mesa(group + " " + sub + " x y --help");
      EXPECT_EQ(late.code, 0) << late;
      EXPECT_EQ(Mesa("help " + group + " " + sub).out, c.out);
    }
  }
  Result merge = Mesa("bookmarks merge --help");
  for (const char* opt : {"--delete-source", "--allow-conflicted", "--message", "--take", "--resolve"})
    EXPECT_NE(merge.out.find(opt), std::string::npos) << opt;
  Result create = Mesa("changes create --help");
  for (const char* opt : {"--base", "--file", "--exec-file", "--delete", "-m, --message"})
    EXPECT_NE(create.out.find(opt), std::string::npos) << opt;
  EXPECT_NE(Mesa("changes update --help").out.find("--base-commit"), std::string::npos);
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  Result none = Mesa("");
  EXPECT_EQ(none.code, 2) << none;
  EXPECT_NE(none.err.find("usage: mesa"), std::string::npos);

  Result unknown = Mesa("frobnicate");
  EXPECT_EQ(unknown.code, 2) << unknown;
  EXPECT_NE(unknown.err.find("mesa: USAGE: unknown command 'frobnicate'"), std::string::npos) << unknown;

  EXPECT_EQ(Mesa("repos").code, 2);
  EXPECT_EQ(Mesa("repos frobnicate").code, 2);
  Result missing = Mesa("repos get");
  EXPECT_EQ(missing.code, 2) << missing;
  EXPECT_NE(missing.err.find("mesa: USAGE: missing argument"), std::string::npos) << missing;
  EXPECT_NE(missing.err.find("Run 'mesa repos get --help'"), std::string::npos) << missing;
  Result extra = Mesa("repos get a b");
  EXPECT_EQ(extra.code, 2) << extra;
  EXPECT_NE(extra.err.find("unexpected argument 'b'"), std::string::npos) << extra;
  Result bad_opt = Mesa("repos list --frob");
  EXPECT_EQ(bad_opt.code, 2) << bad_opt;
  EXPECT_NE(bad_opt.err.find("unknown option --frob"), std::string::npos) << bad_opt;
  EXPECT_EQ(Mesa("repos list --limit").code, 2);
  EXPECT_EQ(Mesa("repos list --limit abc").code, 2);
  EXPECT_EQ(Mesa("repos list --limit 0").code, 2);
  EXPECT_EQ(Mesa("repos list --all --cursor x").code, 2);
  EXPECT_EQ(Mesa("repos create x --tag novalue").code, 2);
  EXPECT_EQ(Mesa("repos tags --set a=b").code, 2);
  EXPECT_EQ(Mesa("repos tags --set a=b --remove a r").code, 2);
  EXPECT_EQ(Mesa("bookmarks merge r main f --take a.txt=mine").code, 2);
  EXPECT_EQ(Mesa("bookmarks merge r main f --resolve a.txt=nofile").code, 2);
  EXPECT_EQ(Mesa("diff r a b --conflicts sometimes").code, 2);
  EXPECT_EQ(Mesa("changes create r --base " + kRoot + " --file nolocal").code, 2);
  EXPECT_EQ(Mesa("changes create r --author nobody").code, 2);
  EXPECT_EQ(Mesa("webhook-targets create").code, 2);
  EXPECT_EQ(Mesa("webhooks verify --secret s --body-file x").code, 2);
  EXPECT_EQ(Mesa("api-keys update key_1").code, 2);
  EXPECT_EQ(Mesa("-m x status").code, 2);
}

TEST_F(CliTest, OptionFormsAndGlobalOptionPlacement) {
  // --name=value, -- before a positional that starts with '-', -mVALUE.
  Result created = Mesa("repos create --tag=k=v=w -- -dash");
  ASSERT_EQ(created.code, 0) << created;
  EXPECT_EQ(created.Field("name"), "-dash");
  EXPECT_EQ(created.Field("tags"), "k=v=w");
  Result change = Mesa("changes create -mshort --base=" + kRoot + " -- -dash");
  ASSERT_EQ(change.code, 0) << change;
  EXPECT_EQ(change.Field("message"), "short");

  // Global options before the command, between group and subcommand, or after.
  const std::vector<std::string> placements = {"--json repos get -- -dash", "repos --json get -- -dash",
                                               "repos get --json -- -dash",
                                               "--org=" + LocalUserOrg() + " repos get --json -- -dash"};
  for (const std::string& args : placements) {
    Result r = Mesa(args);
    ASSERT_EQ(r.code, 0) << args << "\n" << r;
    EXPECT_EQ(r.Json()["name"], "-dash") << args;
  }
  Result twice = Mesa("repos update x --name a --name b");
  EXPECT_EQ(twice.code, 2) << twice;
  EXPECT_NE(twice.err.find("--name given more than once"), std::string::npos) << twice;
  Result flag_value = Mesa("repos list --all=yes");
  EXPECT_EQ(flag_value.code, 2) << flag_value;
  EXPECT_NE(flag_value.err.find("--all takes no value"), std::string::npos) << flag_value;
}

// ---- daemon, sessions ----

TEST_F(CliTest, StatusAndUnreachableDaemon) {
  Result st = Mesa("status");
  ASSERT_EQ(st.code, 0) << st;
  EXPECT_EQ(st.Field("socket"), socket_);
  EXPECT_EQ(st.Field("api_mode"), "embedded");
  EXPECT_EQ(st.Field("api_url"), "embedded");
  EXPECT_EQ(st.Field("backend_reachable"), "yes");
  EXPECT_EQ(st.Field("sessions"), "0");  // status never provisions a session itself
  EXPECT_EQ(st.Field("mounts"), "0");
  EXPECT_FALSE(st.Field("version").empty());
  ASSERT_EQ(Mesa("whoami").code, 0);  // the first real call does
  EXPECT_EQ(Mesa("status").Field("sessions"), "1");

  // --socket beats $MESA_SOCKET; --json is the StatusResponse.
  Result js = Mesa("--socket " + Q(socket_) + " status --json", "MESA_SOCKET=/nonexistent/x.sock");
  ASSERT_EQ(js.code, 0) << js;
  EXPECT_EQ(js.Json()["api_mode"], "embedded");
  EXPECT_EQ(js.Json()["backend_reachable"], true);

  for (const std::string args : {"--socket /nonexistent/mesad.sock status",
                                 "repos list --socket /nonexistent/mesad.sock", "--socket=/nonexistent/mesad.sock whoami"}) {
    Result down = Mesa(args);
    EXPECT_EQ(down.code, 10) << down;
    EXPECT_TRUE(down.err.starts_with("mesa: DAEMON_UNAVAILABLE: ")) << down;
    EXPECT_NE(down.err.find("/nonexistent/mesad.sock"), std::string::npos) << down;
    EXPECT_EQ(down.out, "");
  }
  Result env = Mesa("status", "MESA_SOCKET=/nonexistent/env.sock");
  EXPECT_EQ(env.code, 10) << env;
}

TEST_F(CliTest, WhoamiAndSessionsOnTheEmbeddedStore) {
  Result who = Mesa("whoami");
  ASSERT_EQ(who.code, 0) << who;
  EXPECT_EQ(who.Field("org"), LocalUserOrg());
  EXPECT_EQ(who.Field("scopes"), "admin");
  Result wj = Mesa("whoami --json");
  ASSERT_EQ(wj.code, 0) << wj;
  EXPECT_EQ(wj.Json()["org"]["slug"], LocalUserOrg());
  EXPECT_EQ(wj.Json()["scopes"], json::array({"admin"}));

  Result table = Mesa("sessions");
  ASSERT_EQ(table.code, 0) << table;
  ASSERT_EQ(table.Lines(), 2u) << table;
  EXPECT_TRUE(table.out.starts_with("ID")) << table;
  EXPECT_NE(table.out.find("embedded"), std::string::npos) << table;
  EXPECT_NE(table.out.find(LocalUserOrg()), std::string::npos) << table;
  Result sj = Mesa("sessions --json");
  ASSERT_EQ(sj.code, 0) << sj;
  ASSERT_EQ(sj.Json()["items"].size(), 1u) << sj;
  EXPECT_EQ(sj.Json()["items"][0]["is_default"], true);
  EXPECT_EQ(sj.Json()["items"][0]["embedded"], true);
  EXPECT_TRUE(sj.Json()["next_cursor"].is_null());
  std::string id = sj.Json()["items"][0]["id"];

  // --session picks a session; another id is SESSION_NOT_FOUND.
  EXPECT_EQ(Mesa("--session " + id + " whoami").code, 0);
  Result bad = Mesa("whoami --session ses_nope");
  EXPECT_EQ(bad.code, 6) << bad;
  EXPECT_TRUE(bad.err.starts_with("mesa: SESSION_NOT_FOUND: ")) << bad;
  // Only root may list every user's sessions.
  Result all = Mesa("sessions --all-users");
  EXPECT_EQ(all.code, getuid() == 0 ? 0 : 5) << all;

  Result out = Mesa("logout " + id);
  ASSERT_EQ(out.code, 0) << out;
  EXPECT_EQ(out.out, "logged out session " + id + "\n");
  EXPECT_EQ(Mesa("logout " + id).code, 6);
  // The embedded store provisions a fresh session on the next call.
  EXPECT_EQ(Mesa("whoami").Field("org"), LocalUserOrg());
  Result lj = Mesa("logout --json");
  ASSERT_EQ(lj.code, 0) << lj;
  EXPECT_EQ(lj.Json(), json({{"success", true}}));
}

// ---- repos ----

TEST_F(CliTest, ReposCreateListGetUpdateDelete) {
  Result created = Mesa("repos create demo --tag team=infra --tag tier=1");
  ASSERT_EQ(created.code, 0) << created;
  EXPECT_EQ(created.Field("name"), "demo");
  EXPECT_EQ(created.Field("org"), LocalUserOrg());
  EXPECT_EQ(created.Field("default_bookmark"), "main");
  EXPECT_EQ(created.Field("tags"), "team=infra,tier=1");
  std::string id = created.Field("id");
  std::string head = created.Field("head_change_id");
  EXPECT_EQ(head.size(), 32u);

  Result table = Mesa("repos list");
  ASSERT_EQ(table.code, 0) << table;
  ASSERT_EQ(table.Lines(), 2u) << table;
  std::istringstream lines(table.out);
  std::string header, row;
  std::getline(lines, header);
  std::getline(lines, row);
  EXPECT_TRUE(header.starts_with("NAME  ")) << header;
  // Aligned columns: each header starts where its values start.
  for (const auto& [col, value] : std::vector<std::pair<std::string, std::string>>{
           {"ID", id}, {"DEFAULT_BOOKMARK", "main"}, {"HEAD_CHANGE", head}, {"TAGS", "team=infra,tier=1"}}) {
    EXPECT_EQ(header.find(col), row.find(value)) << col << "\n" << table.out;
  }
  EXPECT_TRUE(row.starts_with("demo ")) << row;

  Result lj = Mesa("repos list --json");
  ASSERT_EQ(lj.code, 0) << lj;
  json list = lj.Json();
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["name"], "demo");
  EXPECT_EQ(list["items"][0]["id"], id);
  EXPECT_EQ(list["items"][0]["tags"]["team"], "infra");
  EXPECT_TRUE(list["next_cursor"].is_null()) << lj;
  Result filtered = Mesa("repos list --tags team:other --json");
  ASSERT_EQ(filtered.code, 0) << filtered;
  EXPECT_EQ(filtered.Json()["items"].size(), 0u) << filtered;

  Result got = Mesa("repos get demo");
  ASSERT_EQ(got.code, 0) << got;
  EXPECT_EQ(got.Field("id"), id);
  Result gj = Mesa("repos get demo --json");
  ASSERT_EQ(gj.code, 0) << gj;
  EXPECT_EQ(gj.Json()["head_change_id"], head);
  EXPECT_EQ(gj.Json()["default_bookmark"], "main");

  Result updated = Mesa("repos update demo --name demo2 --tag env=prod --remove-tag tier");
  ASSERT_EQ(updated.code, 0) << updated;
  EXPECT_EQ(updated.Field("name"), "demo2");
  EXPECT_EQ(updated.Field("id"), id);
  EXPECT_EQ(updated.Field("tags"), "env=prod,team=infra");
  EXPECT_EQ(Mesa("repos get demo").code, 6);

  // Bulk tags by name and by id.
  CreateRepo("other");
  Result tags = Mesa("repos tags --set owner=me demo2 other");
  ASSERT_EQ(tags.code, 0) << tags;
  EXPECT_EQ(tags.out, "updated 2 repositories\n");
  Result tj = Mesa("repos tags --remove owner --id " + id + " --json");
  ASSERT_EQ(tj.code, 0) << tj;
  EXPECT_EQ(tj.Json()["updated"], "1") << tj;  // int64 is a JSON string in proto3 JSON
  EXPECT_EQ(Mesa("repos get demo2 --json").Json()["tags"].count("owner"), 0u);
  EXPECT_EQ(Mesa("repos get other --json").Json()["tags"]["owner"], "me");

  Result deleted = Mesa("repos delete demo2");
  ASSERT_EQ(deleted.code, 0) << deleted;
  EXPECT_EQ(deleted.out, "deleted repository demo2\n");
  Result dj = Mesa("repos delete other --json");
  ASSERT_EQ(dj.code, 0) << dj;
  EXPECT_EQ(dj.Json(), json({{"success", true}}));
  EXPECT_EQ(Mesa("repos list --json").Json()["items"].size(), 0u);
}

TEST_F(CliTest, RepoErrorsMapToExitCodes) {
  Result missing = Mesa("repos get nope");
  EXPECT_EQ(missing.code, 6) << missing;
  EXPECT_EQ(missing.err, "mesa: REPO_NOT_FOUND: repository 'nope' not found (HTTP 404)\n");
  EXPECT_EQ(missing.out, "");
  EXPECT_EQ(Mesa("repos delete nope").code, 6);
  EXPECT_EQ(Mesa("repos update nope --name x").code, 6);

  ASSERT_EQ(Mesa("repos create dup").code, 0);
  Result dup = Mesa("repos create dup");
  EXPECT_EQ(dup.code, 7) << dup;
  EXPECT_TRUE(dup.err.starts_with("mesa: REPO_ALREADY_EXISTS: ")) << dup;
  EXPECT_NE(dup.err.find("(HTTP 409)"), std::string::npos) << dup;

  Result invalid = Mesa("repos create " + Q("bad name!"));
  EXPECT_EQ(invalid.code, 3) << invalid;
  EXPECT_TRUE(invalid.err.starts_with("mesa: VALIDATION_ERROR: ")) << invalid;
  EXPECT_NE(invalid.err.find("(HTTP 400)"), std::string::npos) << invalid;
  EXPECT_NE(invalid.err.find("name: must be"), std::string::npos) << invalid;  // the field error
  EXPECT_EQ(std::count(invalid.err.begin(), invalid.err.end(), '\n'), 1) << "not repeated below\n" << invalid;
  Result limit = Mesa("repos list --limit 101");  // the server's bound, not the CLI's
  EXPECT_EQ(limit.code, 3) << limit;
  EXPECT_EQ(Mesa("repos create x.git").code, 3);

  // Another org than the key's is not visible.
  Result org = Mesa("--org someone-else repos list");
  EXPECT_EQ(org.code, 6) << org;
  EXPECT_TRUE(org.err.starts_with("mesa: ORG_NOT_FOUND: ")) << org;
  EXPECT_EQ(Mesa("repos list --org " + LocalUserOrg()).code, 0);
}

TEST_F(CliTest, ListAllFollowsCursorsAcrossPages) {
  for (const char* name : {"r1", "r2", "r3", "r4", "r5"}) ASSERT_FALSE(CreateRepo(name).empty());

  Result page = Mesa("repos list --limit 2");
  ASSERT_EQ(page.code, 0) << page;
  EXPECT_EQ(page.Lines(), 3u) << page;
  EXPECT_NE(page.err.find("more results: add --cursor "), std::string::npos) << page;

  Result p1 = Mesa("repos list --limit 2 --json");
  ASSERT_EQ(p1.code, 0) << p1;
  ASSERT_EQ(p1.Json()["items"].size(), 2u);
  ASSERT_TRUE(p1.Json()["next_cursor"].is_string()) << p1;
  std::string cursor = p1.Json()["next_cursor"];
  Result p2 = Mesa("repos list --limit 2 --json --cursor " + Q(cursor));
  ASSERT_EQ(p2.code, 0) << p2;
  ASSERT_EQ(p2.Json()["items"].size(), 2u);
  EXPECT_NE(p2.Json()["items"][0]["name"], p1.Json()["items"][0]["name"]);
  EXPECT_NE(p2.Json()["items"][0]["name"], p1.Json()["items"][1]["name"]);

  Result all = Mesa("repos list --all --limit 2 --json");
  ASSERT_EQ(all.code, 0) << all;
  std::set<std::string> names;
  json items = all.Json()["items"];
  for (const auto& r : items) names.insert(r["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"r1", "r2", "r3", "r4", "r5"}));
  EXPECT_EQ(all.Json()["items"].size(), 5u);
  EXPECT_TRUE(all.Json()["next_cursor"].is_null());

  Result all_table = Mesa("repos list --all --limit 2");
  ASSERT_EQ(all_table.code, 0) << all_table;
  EXPECT_EQ(all_table.Lines(), 6u) << all_table;
  EXPECT_EQ(all_table.err, "");
}

// ---- changes, content, diff ----

TEST_F(CliTest, ChangesFromLocalFilesAndContentIsByteExact) {
  CreateRepo("demo");
  std::string text = Local("hello.txt", "hello\nworld\n");
  std::string binary_data;
  for (int round = 0; round < 40; ++round)
    for (int b = 0; b < 256; ++b) binary_data.push_back(static_cast<char>(b));
  binary_data += std::string("\r\n\0\xff tail", 10);
  std::string binary = Local("blob.bin", binary_data);
  std::string tool = Local("tool.sh", "#!/bin/sh\necho tool\n", 0755);

  Result c1 = Mesa("changes create demo --base " + kRoot + " -m " + Q("first change\n\nbody") + " --file " +
                   Q("hello.txt=" + text) + " --file " + Q("data/blob.bin=" + binary) + " --exec-file " +
                   Q("bin/tool=" + tool) + " --author " + Q("Ada Lovelace <ada@example.com>"));
  ASSERT_EQ(c1.code, 0) << c1;
  std::string id1 = c1.Field("id");
  EXPECT_EQ(id1.size(), 32u);
  EXPECT_EQ(c1.Field("parents"), kRoot);
  EXPECT_EQ(c1.Field("message"), "first change");
  EXPECT_TRUE(c1.Field("author").starts_with("Ada Lovelace <ada@example.com>")) << c1;
  EXPECT_EQ(c1.Field("is_conflicted"), "no");
  std::string oid1 = c1.Field("current_commit_oid");
  EXPECT_EQ(oid1.size(), 40u);

  // Raw bytes to stdout, compared with cmp.
  for (const auto& [path, local] : std::vector<std::pair<std::string, std::string>>{
           {"hello.txt", text}, {"data/blob.bin", binary}, {"bin/tool", tool}}) {
    std::string out = Path("out.bin");
    std::string cmd = "env MESA_SOCKET=" + Q(socket_) + " " + CliBin() + " content get demo " + Q(path) +
                      " --change " + id1 + " > " + Q(out);
    ASSERT_EQ(RunCommand(cmd), 0) << path;
    EXPECT_EQ(RunCommand("cmp -s " + Q(local) + " " + Q(out)), 0) << path;
  }
  EXPECT_EQ(Mesa("content get demo hello.txt --change " + id1).out, "hello\nworld\n");

  // The root listing, one level; a subdirectory with the executable's mode.
  Result root = Mesa("content get demo --change " + id1);
  ASSERT_EQ(root.code, 0) << root;
  EXPECT_TRUE(root.out.starts_with("MODE  ")) << root;
  EXPECT_EQ(root.Lines(), 4u) << root;
  EXPECT_NE(root.out.find("040000  dir   -"), std::string::npos) << root;
  EXPECT_NE(root.out.find("hello.txt"), std::string::npos) << root;
  Result bin = Mesa("content get demo bin --change " + id1);
  ASSERT_EQ(bin.code, 0) << bin;
  EXPECT_NE(bin.out.find("100755  file"), std::string::npos) << bin;
  EXPECT_NE(bin.out.find("bin/tool"), std::string::npos) << bin;
  Result deep = Mesa("content get demo --change " + id1 + " --depth 3 --json");
  ASSERT_EQ(deep.code, 0) << deep;
  std::set<std::string> paths;
  json entries = deep.Json()["entries"];
  for (const auto& e : entries) paths.insert(e["path"].get<std::string>());
  EXPECT_TRUE(paths.count("data/blob.bin") && paths.count("bin/tool") && paths.count("hello.txt")) << deep;
  Result fj = Mesa("content get demo hello.txt --change " + id1 + " --json");
  ASSERT_EQ(fj.code, 0) << fj;
  EXPECT_EQ(fj.Json()["type"], "file");
  EXPECT_EQ(fj.Json()["content"], rest::Base64Encode("hello\nworld\n"));  // bytes are base64 in JSON

  Result missing = Mesa("content get demo nope.txt --change " + id1);
  EXPECT_EQ(missing.code, 6) << missing;
  EXPECT_TRUE(missing.err.starts_with("mesa: PATH_NOT_FOUND: ")) << missing;
  EXPECT_EQ(Mesa("content get demo --depth 11").code, 3);  // the server's bound
  EXPECT_EQ(Mesa("content get demo --depth -1").code, 2);

  Result got = Mesa("changes get demo " + id1);
  ASSERT_EQ(got.code, 0) << got;
  EXPECT_NE(got.out.find("file: bin/tool\n"), std::string::npos) << got;
  EXPECT_NE(got.out.find("file: data/blob.bin\n"), std::string::npos) << got;
  EXPECT_EQ(Mesa("changes get demo " + id1 + " --json").Json()["message"], "first change\n\nbody");

  // Without --base: on the default bookmark's change (still the root).
  Result c2 = Mesa("changes create demo -m second --file " + Q("second.txt=" + text) + " --json");
  ASSERT_EQ(c2.code, 0) << c2;
  EXPECT_EQ(c2.Json()["parents"], json::array({kRoot}));

  // update: delete, rewrite, message; a stale --base-commit is a conflict.
  std::string v2 = Local("hello2.txt", "hello again\n");
  Result up = Mesa("changes update demo " + id1 + " -m rewritten --delete data/blob.bin --file " +
                   Q("hello.txt=" + v2) + " --base-commit " + oid1);
  ASSERT_EQ(up.code, 0) << up;
  EXPECT_EQ(up.Field("id"), id1);
  EXPECT_NE(up.Field("current_commit_oid"), oid1);
  EXPECT_EQ(up.Field("message"), "rewritten");
  EXPECT_EQ(Mesa("content get demo hello.txt --change " + id1).out, "hello again\n");
  EXPECT_EQ(Mesa("content get demo data/blob.bin --change " + id1).code, 6);
  Result stale = Mesa("changes update demo " + id1 + " -m again --base-commit " + oid1);
  EXPECT_EQ(stale.code, 7) << stale;
  EXPECT_TRUE(stale.err.starts_with("mesa: STALE_BASE_COMMIT: ")) << stale;

  // list follows the default bookmark's history.
  ASSERT_EQ(Mesa("bookmarks move demo main " + id1).code, 0);
  Result list = Mesa("changes list demo");
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_TRUE(list.out.starts_with("ID  ")) << list;
  EXPECT_NE(list.out.find(id1), std::string::npos) << list;
  EXPECT_NE(list.out.find("rewritten"), std::string::npos) << list;
  Result lj = Mesa("changes list demo --all --limit 1 --json");
  ASSERT_EQ(lj.code, 0) << lj;
  EXPECT_GE(lj.Json()["items"].size(), 1u);
  EXPECT_EQ(lj.Json()["items"][0]["id"], id1);
  // The default bookmark now points at id1, so content get without --change reads it.
  EXPECT_EQ(Mesa("content get demo hello.txt").out, "hello again\n");

  // Errors: invalid base, unknown change, unreadable local file.
  Result bad = Mesa("changes create demo --base notachangeid --file " + Q("x=" + text));
  EXPECT_EQ(bad.code, 3) << bad;
  EXPECT_TRUE(bad.err.starts_with("mesa: VALIDATION_ERROR: ")) << bad;
  Result unknown = Mesa("changes get demo " + std::string(32, 'k'));
  EXPECT_EQ(unknown.code, 6) << unknown;
  EXPECT_TRUE(unknown.err.starts_with("mesa: CHANGE_NOT_FOUND: ")) << unknown;
  Result nofile = Mesa("changes create demo --base " + kRoot + " --file x=/nonexistent/file");
  EXPECT_EQ(nofile.code, 1) << nofile;
  EXPECT_TRUE(nofile.err.starts_with("mesa: LOCAL_FILE: cannot read /nonexistent/file")) << nofile;
  EXPECT_EQ(Mesa("changes list nope").code, 6);
}

TEST_F(CliTest, DiffUnifiedAndJson) {
  CreateRepo("demo");
  std::string c1 = Change("demo", kRoot, "a.txt", "one\ntwo\n");
  std::string c2 = Change("demo", c1, "a.txt", "one\n2\nthree\n");

  Result unified = Mesa("diff demo " + c1 + " " + c2);
  ASSERT_EQ(unified.code, 0) << unified;
  EXPECT_NE(unified.out.find("--- a/a.txt"), std::string::npos) << unified;
  EXPECT_NE(unified.out.find("+++ b/a.txt"), std::string::npos) << unified;
  EXPECT_NE(unified.out.find("\n-two\n"), std::string::npos) << unified;
  EXPECT_NE(unified.out.find("\n+2\n+three\n"), std::string::npos) << unified;

  Result js = Mesa("diff demo " + c1 + " " + c2 + " --json --conflicts exclude");
  ASSERT_EQ(js.code, 0) << js;
  json d = js.Json();
  EXPECT_EQ(d["base_change_id"], c1);
  EXPECT_EQ(d["head_change_id"], c2);
  EXPECT_EQ(d["stats"]["additions"], 2);
  EXPECT_EQ(d["stats"]["deletions"], 1);
  ASSERT_EQ(d["entries"].size(), 1u);
  EXPECT_EQ(d["entries"][0]["path"], "a.txt");
  EXPECT_EQ(d["entries"][0]["status"], "modified");

  Result same = Mesa("diff demo " + c2 + " " + c2);
  EXPECT_EQ(same.code, 0) << same;
  EXPECT_EQ(same.out, "");
  EXPECT_EQ(Mesa("diff demo " + c1 + " " + std::string(32, 'k')).code, 6);
  EXPECT_EQ(Mesa("diff demo " + c1 + " bogus").code, 3);
}

// ---- bookmarks ----

TEST_F(CliTest, BookmarksIncludingNamesWithSlashes) {
  CreateRepo("demo");
  std::string c1 = Change("demo", kRoot, "a.txt", "1\n");
  std::string c2 = Change("demo", c1, "a.txt", "2\n");

  Result created = Mesa("bookmarks create demo feature/x " + c1);
  ASSERT_EQ(created.code, 0) << created;
  EXPECT_EQ(created.Field("name"), "feature/x");
  EXPECT_EQ(created.Field("change_id"), c1);
  EXPECT_EQ(created.Field("is_default"), "no");

  Result got = Mesa("bookmarks get demo feature/x --json");
  ASSERT_EQ(got.code, 0) << got;
  EXPECT_EQ(got.Json()["change_id"], c1);

  Result list = Mesa("bookmarks list demo");
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_TRUE(list.out.starts_with("NAME       CHANGE")) << list;
  EXPECT_NE(list.out.find("feature/x  " + c1), std::string::npos) << list;
  EXPECT_NE(list.out.find("*"), std::string::npos) << list;  // main is the default
  Result globbed = Mesa("bookmarks list demo --glob 'feature/*' --json");
  ASSERT_EQ(globbed.code, 0) << globbed;
  ASSERT_EQ(globbed.Json()["items"].size(), 1u) << globbed;
  EXPECT_EQ(globbed.Json()["items"][0]["name"], "feature/x");
  Result all = Mesa("bookmarks list demo --all --limit 1 --json");
  ASSERT_EQ(all.code, 0) << all;
  EXPECT_EQ(all.Json()["items"].size(), 2u) << all;

  Result moved = Mesa("bookmarks move demo feature/x " + c2);
  ASSERT_EQ(moved.code, 0) << moved;
  EXPECT_EQ(moved.Field("change_id"), c2);
  EXPECT_EQ(moved.Field("from_change_id"), c1);

  Result dup = Mesa("bookmarks create demo feature/x " + c1);
  EXPECT_EQ(dup.code, 7) << dup;
  EXPECT_TRUE(dup.err.starts_with("mesa: BOOKMARK_ALREADY_EXISTS: ")) << dup;
  EXPECT_EQ(Mesa("bookmarks create demo " + Q("bad..name") + " " + c1).code, 3);
  EXPECT_EQ(Mesa("bookmarks move demo nope " + c1).code, 6);

  Result deleted = Mesa("bookmarks delete demo feature/x");
  ASSERT_EQ(deleted.code, 0) << deleted;
  EXPECT_EQ(deleted.out, "deleted bookmark feature/x\n");
  Result gone = Mesa("bookmarks get demo feature/x");
  EXPECT_EQ(gone.code, 6) << gone;
  EXPECT_TRUE(gone.err.starts_with("mesa: BOOKMARK_NOT_FOUND: ")) << gone;
  EXPECT_EQ(Mesa("bookmarks delete demo feature/x --json").code, 6);
  EXPECT_EQ(Mesa("bookmarks list nope").code, 6);
}

TEST_F(CliTest, MergeNoOpMergeCommitAndConflicts) {
  CreateRepo("demo");
  std::string base = Change("demo", kRoot, "f.txt", "line1\nline2\nline3\n");
  ASSERT_EQ(Mesa("bookmarks move demo main " + base).code, 0);

  // Same change on both sides: no_op.
  ASSERT_EQ(Mesa("bookmarks create demo same " + base).code, 0);
  Result noop = Mesa("bookmarks merge demo main same");
  ASSERT_EQ(noop.code, 0) << noop;
  EXPECT_EQ(noop.Field("merge_type"), "no_op");
  EXPECT_EQ(noop.Field("is_conflicted"), "no");

  // A side change in another file: a merge commit, source deleted on request.
  std::string side = Change("demo", base, "g.txt", "g\n");
  ASSERT_EQ(Mesa("bookmarks create demo feature/g " + side).code, 0);
  Result merged = Mesa("bookmarks merge demo main feature/g --delete-source -m " + Q("merge g"));
  ASSERT_EQ(merged.code, 0) << merged;
  EXPECT_EQ(merged.Field("merge_type"), "merge_commit");
  EXPECT_EQ(merged.Field("target"), "main");
  EXPECT_EQ(merged.Field("source"), "feature/g");
  EXPECT_EQ(merged.Field("source_deleted"), "yes");
  std::string merge_change = merged.Field("change_id");
  EXPECT_EQ(Mesa("changes get demo " + merge_change + " --json").Json()["message"], "merge g");
  EXPECT_EQ(Mesa("content get demo g.txt").out, "g\n");
  EXPECT_EQ(Mesa("bookmarks get demo feature/g").code, 6);

  // Both sides rewrite line2: MERGE_CONFLICT, exit 7, with the path.
  std::string head = Mesa("repos get demo --json").Json()["head_change_id"].get<std::string>();
  std::string left = Change("demo", head, "f.txt", "line1\nLEFT\nline3\n");
  std::string right = Change("demo", head, "f.txt", "line1\nRIGHT\nline3\n");
  ASSERT_EQ(Mesa("bookmarks move demo main " + left).code, 0);
  ASSERT_EQ(Mesa("bookmarks create demo right " + right).code, 0);
  Result conflict = Mesa("bookmarks merge demo main right");
  EXPECT_EQ(conflict.code, 7) << conflict;
  EXPECT_TRUE(conflict.err.starts_with("mesa: MERGE_CONFLICT: ")) << conflict;
  EXPECT_NE(conflict.err.find("(HTTP 409)"), std::string::npos) << conflict;
  EXPECT_NE(conflict.err.find("  conflict: f.txt\n"), std::string::npos) << conflict;
  EXPECT_EQ(conflict.out, "");

  // Resolved from a local file.
  std::string resolved = Local("resolved.txt", "line1\nBOTH\nline3\n");
  Result by_file = Mesa("bookmarks merge demo main right --resolve " + Q("f.txt=@" + resolved) + " --json");
  ASSERT_EQ(by_file.code, 0) << by_file;
  EXPECT_EQ(by_file.Json()["merge_type"], "merge_commit");
  EXPECT_EQ(by_file.Json()["is_conflicted"], false);
  EXPECT_EQ(Mesa("content get demo f.txt").out, "line1\nBOTH\nline3\n");

  // Resolved by taking a side.
  std::string l2 = Change("demo", by_file.Json()["change_id"].get<std::string>(), "f.txt", "x\nL\n");
  std::string r2 = Change("demo", by_file.Json()["change_id"].get<std::string>(), "f.txt", "x\nR\n");
  ASSERT_EQ(Mesa("bookmarks move demo main " + l2).code, 0);
  ASSERT_EQ(Mesa("bookmarks move demo right " + r2).code, 0);
  EXPECT_EQ(Mesa("bookmarks merge demo main right").code, 7);
  Result take = Mesa("bookmarks merge demo main right --take f.txt=source");
  ASSERT_EQ(take.code, 0) << take;
  EXPECT_EQ(take.Field("merge_type"), "merge_commit");
  EXPECT_EQ(Mesa("content get demo f.txt").out, "x\nR\n");

  // Or recorded as a conflicted merge.
  std::string l3 = Change("demo", take.Field("change_id"), "f.txt", "L3\n");
  std::string r3 = Change("demo", take.Field("change_id"), "f.txt", "R3\n");
  ASSERT_EQ(Mesa("bookmarks move demo main " + l3).code, 0);
  ASSERT_EQ(Mesa("bookmarks move demo right " + r3).code, 0);
  Result allowed = Mesa("bookmarks merge demo main right --allow-conflicted");
  ASSERT_EQ(allowed.code, 0) << allowed;
  EXPECT_EQ(allowed.Field("is_conflicted"), "yes");
  Result conflicted = Mesa("changes get demo " + allowed.Field("change_id"));
  EXPECT_NE(conflicted.out.find("conflict: f.txt\n"), std::string::npos) << conflicted;
  // A conflicted change refuses files but takes a resolution.
  Result refuse = Mesa("changes update demo " + allowed.Field("change_id") + " --file " + Q("f.txt=" + resolved));
  EXPECT_EQ(refuse.code, 7) << refuse;
  Result fix = Mesa("changes update demo " + allowed.Field("change_id") + " --take f.txt=target");
  ASSERT_EQ(fix.code, 0) << fix;
  EXPECT_EQ(fix.Field("is_conflicted"), "no");
  EXPECT_EQ(Mesa("content get demo f.txt").out, "L3\n");

  EXPECT_EQ(Mesa("bookmarks merge demo main nope").code, 6);
}

// ---- API keys ----

TEST_F(CliTest, ApiKeysCreateListUpdateRevoke) {
  std::string repo_id = CreateRepo("demo");
  Result created = Mesa("api-keys create --name ci --scope read --repo-id " + repo_id + " --tag env=ci");
  ASSERT_EQ(created.code, 0) << created;
  std::string id = created.Field("id");
  EXPECT_EQ(created.Field("name"), "ci");
  EXPECT_EQ(created.Field("scopes"), "read");
  EXPECT_EQ(created.Field("repos"), repo_id);
  EXPECT_TRUE(created.Field("key").starts_with("mesa_")) << created;
  EXPECT_NE(created.err.find("shown only once"), std::string::npos);

  Result cj = Mesa("api-keys create --name writer --scope read --scope write --expires-in 3600 --json");
  ASSERT_EQ(cj.code, 0) << cj;
  EXPECT_TRUE(cj.Json()["key"].get<std::string>().starts_with("mesa_"));
  EXPECT_EQ(cj.Json()["scopes"], json::array({"read", "write"}));
  // The create answer carries no expires_at (as in 0.38.0); the listing does.
  std::string writer_id = cj.Json()["id"];

  Result table = Mesa("api-keys list");
  ASSERT_EQ(table.code, 0) << table;
  EXPECT_TRUE(table.out.starts_with("ID  ")) << table;
  EXPECT_NE(table.out.find(id + "  ci "), std::string::npos) << table;
  EXPECT_NE(table.out.find("active"), std::string::npos) << table;
  EXPECT_EQ(table.out.find("mesa_"), std::string::npos) << "secrets are never listed\n" << table;
  Result lj = Mesa("api-keys list --json --query ci");
  ASSERT_EQ(lj.code, 0) << lj;
  ASSERT_EQ(lj.Json()["items"].size(), 1u) << lj;
  EXPECT_EQ(lj.Json()["items"][0]["id"], id);
  EXPECT_EQ(lj.Json()["items"][0]["key"], "");
  Result all = Mesa("api-keys list --all --limit 1 --json");
  ASSERT_EQ(all.code, 0) << all;
  json keys = all.Json()["items"];
  EXPECT_EQ(keys.size(), 3u) << all;  // + the embedded session's own key
  for (const auto& k : keys) {
    if (k["id"] == writer_id) {
      EXPECT_TRUE(k.contains("expires_at")) << all;
    }
  }

  Result updated = Mesa("api-keys update " + id + " --tag owner=me --remove-tag env");
  ASSERT_EQ(updated.code, 0) << updated;
  EXPECT_EQ(updated.Field("tags"), "owner=me");
  Result uj = Mesa("api-keys update " + id + " --tag x=y --json");
  ASSERT_EQ(uj.code, 0) << uj;
  EXPECT_EQ(uj.Json()["tags"], json({{"owner", "me"}, {"x", "y"}}));

  Result revoked = Mesa("api-keys revoke " + id);
  ASSERT_EQ(revoked.code, 0) << revoked;
  EXPECT_EQ(revoked.out, "revoked API key " + id + "\n");
  Result rl = Mesa("api-keys list --status revoked");
  ASSERT_EQ(rl.code, 0) << rl;
  EXPECT_NE(rl.out.find(id), std::string::npos) << rl;
  EXPECT_NE(rl.out.find("revoked"), std::string::npos) << rl;
  EXPECT_EQ(Mesa("api-keys list --json").Json()["items"].size(), 2u);

  Result missing = Mesa("api-keys revoke key_doesnotexist");
  EXPECT_EQ(missing.code, 6) << missing;
  EXPECT_TRUE(missing.err.starts_with("mesa: API_KEY_NOT_FOUND: ")) << missing;
  EXPECT_EQ(Mesa("api-keys create --scope superuser").code, 3);
  EXPECT_EQ(Mesa("api-keys list --status sometimes").code, 3);
}

// ---- webhooks ----

TEST_F(CliTest, WebhookTargetsCommands) {
  std::string repo_id = CreateRepo("hooked");
  Result empty = Mesa("webhook-targets list");
  ASSERT_EQ(empty.code, 0) << empty;
  EXPECT_EQ(empty.out, "ID  NAME  URL  EVENTS  REPOS\n");

  Result created = Mesa("webhook-targets create --url https://example.com/hook --event change.created --name ci");
  ASSERT_EQ(created.code, 0) << created;
  EXPECT_EQ(created.err, "mesa: the secret is shown only once; store it now\n");
  std::string id = created.Field("id");
  EXPECT_TRUE(id.starts_with("wht_")) << created;
  EXPECT_TRUE(created.Field("secret").starts_with("whsec_")) << created;
  EXPECT_EQ(created.Field("repos"), "*");
  EXPECT_EQ(created.Field("events"), "change.created");

  // The secret is shown by create only.
  Result got = Mesa("webhook-targets get " + id + " --json");
  ASSERT_EQ(got.code, 0) << got;
  EXPECT_EQ(got.Json()["url"], "https://example.com/hook");
  EXPECT_EQ(got.Json().value("secret", ""), "") << got;

  Result scoped = Mesa("webhook-targets update " + id + " --clear-name --url https://example.com/2 --repo-id " + repo_id +
                       " --json");
  ASSERT_EQ(scoped.code, 0) << scoped;
  EXPECT_TRUE(scoped.Json()["name"].is_null()) << scoped;
  EXPECT_EQ(scoped.Json()["url"], "https://example.com/2");
  EXPECT_EQ(scoped.Json()["repo_ids"]["values"], json::array({repo_id}));  // the gRPC message's JSON
  Result wide = Mesa("webhook-targets update " + id + " --name x --org-wide --json");
  ASSERT_EQ(wide.code, 0) << wide;
  EXPECT_EQ(wide.Json()["name"], "x");
  EXPECT_FALSE(wide.Json().contains("repo_ids")) << wide;  // unset = org-wide

  Result listed = Mesa("webhook-targets list --all --json");
  ASSERT_EQ(listed.code, 0) << listed;
  ASSERT_EQ(listed.Json()["items"].size(), 1u);
  EXPECT_EQ(listed.Json()["items"][0]["id"], id);

  Result deleted = Mesa("webhook-targets delete " + id);
  EXPECT_EQ(deleted.code, 0) << deleted;
  Result gone = Mesa("webhook-targets get " + id);
  EXPECT_EQ(gone.code, 6) << gone;
  EXPECT_TRUE(gone.err.starts_with("mesa: WEBHOOK_TARGET_NOT_FOUND: ")) << gone;
  EXPECT_EQ(gone.out, "");

  // Bad input fails before any call: a non-URL is the server's 400, flag conflicts are usage errors.
  Result bad_url = Mesa("webhook-targets create --url not-a-url --event change.created");
  EXPECT_EQ(bad_url.code, 3) << bad_url;
  EXPECT_EQ(Mesa("webhook-targets update wht_1 --name x --clear-name").code, 2);
  EXPECT_EQ(Mesa("webhook-targets update wht_1 --repo-id r --org-wide").code, 2);
}

TEST_F(CliTest, WebhooksVerifyLocally) {
  const std::string secret = "whsec_testsecret";
  const std::string body =
      R"({"id":"evt_1","type":"repo.created","occurred_at":"2025-01-01T00:00:00Z",)"
      R"("organization":{"id":"org_1","slug":"acme","name":"Acme"},)"
      R"("repository":{"id":"repo_1","name":"demo","url":"https://example.com/demo"},"data":{"n":1}})";
  std::string file = Local("body.json", body);
  auto header = [&](int64_t t, const std::string& key, const std::string& payload) {
    std::string hex = rest::HexEncode(rest::HmacSha256(key, std::to_string(t) + "." + payload));
    return "x-mesa-signature: t=" + std::to_string(t) + ",sha256=" + hex;
  };
  int64_t now = time(nullptr);

  Result ok = Mesa("webhooks verify --secret " + secret + " --header " + Q(header(now, secret, body)) +
                   " --body-file " + Q(file));
  ASSERT_EQ(ok.code, 0) << ok;
  EXPECT_EQ(ok.Field("verified"), "yes");
  EXPECT_EQ(ok.Field("id"), "evt_1");
  EXPECT_EQ(ok.Field("type"), "repo.created");
  EXPECT_EQ(ok.Field("organization"), "acme");
  EXPECT_EQ(ok.Field("repository"), "demo");
  EXPECT_EQ(ok.Field("data"), R"({"n":1})");

  Result js = Mesa("webhooks verify --json --secret " + secret + " --header " +
                   Q("X-Mesa-Signature: " + header(now, secret, body).substr(18)) + " --body-file - ",
                   "", body);
  ASSERT_EQ(js.code, 0) << js;
  EXPECT_EQ(js.Json()["type"], "repo.created");
  EXPECT_EQ(js.Json()["repository"]["name"], "demo");
  EXPECT_EQ(js.Json()["data"]["n"], 1);

  std::string tampered = Local("tampered.json", body.substr(0, body.size() - 3) + "2}}");
  const std::string good = Q(header(now, secret, body));
  for (const auto& [what, args] : std::vector<std::pair<std::string, std::string>>{
           {"tampered body", "--secret " + secret + " --header " + good + " --body-file " + Q(tampered)},
           {"wrong secret", "--secret whsec_other --header " + good + " --body-file " + Q(file)},
           {"stale", "--secret " + secret + " --header " + Q(header(now - 3600, secret, body)) + " --body-file " + Q(file)},
           {"no signature header", "--secret " + secret + " --header " + Q("x-other: 1") + " --body-file " + Q(file)},
       }) {
    Result bad = Mesa("webhooks verify " + args);
    EXPECT_EQ(bad.code, 11) << what << "\n" << bad;
    EXPECT_TRUE(bad.err.starts_with("mesa: WEBHOOK_VERIFICATION_FAILED: ")) << what << "\n" << bad;
    EXPECT_EQ(bad.out, "");
  }
  EXPECT_EQ(Mesa("webhooks verify --secret s --header x --body-file " + Q(file)).code, 2);
  EXPECT_EQ(Mesa("webhooks verify --secret s --signature x --body-file /nonexistent").code, 1);

  // Through mesad: the embedded session has no webhook secret. mesad answers FAILED_PRECONDITION,
  // which the client library raises as a ValidationError (exit 3).
  Result daemon = Mesa("webhooks verify --header " + Q(header(now, secret, body)) + " --body-file " + Q(file));
  EXPECT_EQ(daemon.code, 3) << daemon;
  EXPECT_EQ(daemon.err, "mesa: MISSING_WEBHOOK_SECRET: no webhook secret configured\n") << daemon;
}

// ---- login against a real mesa-server ----

TEST_F(CliTest, LoginWithBadKeyLeavesNoSession) {
  ASSERT_EQ(Mesa("whoami").code, 0);  // provisions the embedded default session
  std::set<std::string> before = SessionIds();
  ASSERT_EQ(before.size(), 1u);

  Result bad = Mesa("login --api-key mesa_notakeyatallnotakeyatallnotakeyatallxx");
  EXPECT_EQ(bad.code, 4) << bad;
  EXPECT_TRUE(bad.err.starts_with("mesa: UNAUTHENTICATED: ")) << bad;
  EXPECT_NE(bad.err.find("(HTTP 401)"), std::string::npos) << bad;
  EXPECT_EQ(SessionIds(), before);

  // Also from $MESA_API_KEY and from stdin; the default session is still the old one.
  EXPECT_EQ(Mesa("login", "MESA_API_KEY=mesa_bad").code, 4);
  EXPECT_EQ(Mesa("login", "", "mesa_bad_from_stdin\n").code, 4);
  EXPECT_EQ(SessionIds(), before);
  Result sj = Mesa("sessions --json");
  EXPECT_EQ(sj.Json()["items"][0]["is_default"], true) << sj;

  // No key at all is a usage error.
  EXPECT_EQ(Mesa("login").code, 2);
  // An unreachable API is reported at login too.
  Result down = Mesa("login --api-key k --api-url http://127.0.0.1:1/v1");
  EXPECT_NE(down.code, 0) << down;
  EXPECT_EQ(SessionIds(), before);
}

TEST_F(CliTest, LoginToMesaServerWhoamiOrgOverrideLogout) {
  std::string key = StartServer();
  ASSERT_TRUE(key.starts_with("mesa_")) << key;
  ASSERT_EQ(Mesa("whoami").code, 0);  // the embedded default session exists first
  std::set<std::string> before = SessionIds();

  Result login = Mesa("login --webhook-secret whsec_remote --user-agent cli-test/1",
                      "MESA_API_KEY=" + key + " MESA_API_URL=" + ApiUrl());
  ASSERT_EQ(login.code, 0) << login;
  EXPECT_EQ(login.out.substr(0, 10), "logged in\n");
  std::string session = login.Field("session");
  EXPECT_TRUE(session.starts_with("ses_")) << login;
  EXPECT_EQ(login.Field("api_url"), ApiUrl());
  EXPECT_EQ(login.Field("org"), "acme");
  EXPECT_EQ(login.Field("default"), "yes");
  std::set<std::string> after = SessionIds();
  EXPECT_EQ(after.size(), before.size() + 1) << "exactly one new session";
  EXPECT_TRUE(after.count(session));

  Result who = Mesa("whoami");
  ASSERT_EQ(who.code, 0) << who;
  EXPECT_EQ(who.Field("org"), "acme");
  EXPECT_EQ(who.Field("scopes"), "admin");
  Result sessions = Mesa("sessions");
  EXPECT_NE(sessions.out.find(session + "  *"), std::string::npos) << sessions;

  // Resources go to the remote store now; --org overrides the org per call.
  ASSERT_EQ(Mesa("repos create remote-repo").code, 0);
  Result in_acme = Mesa("--org acme repos list --json");
  ASSERT_EQ(in_acme.code, 0) << in_acme;
  ASSERT_EQ(in_acme.Json()["items"].size(), 1u);
  EXPECT_EQ(in_acme.Json()["items"][0]["org"], "acme");
  Result other = Mesa("repos list --org other-org");
  EXPECT_EQ(other.code, 6) << other;
  EXPECT_TRUE(other.err.starts_with("mesa: ORG_NOT_FOUND: ")) << other;
  // The embedded session still has its own (empty) org.
  std::string embedded = *before.begin();
  Result local = Mesa("--session " + embedded + " repos list --json");
  ASSERT_EQ(local.code, 0) << local;
  EXPECT_EQ(local.Json()["items"].size(), 0u);

  // Webhook verification through mesad uses the session's secret.
  std::string body = R"({"id":"evt_2","type":"push","occurred_at":"x","organization":{},"data":{}})";
  int64_t now = time(nullptr);
  std::string sig = "t=" + std::to_string(now) + ",sha256=" +
                    rest::HexEncode(rest::HmacSha256("whsec_remote", std::to_string(now) + "." + body));
  Result verified = Mesa("webhooks verify --signature " + Q(sig) + " --body-file -", "", body);
  EXPECT_EQ(verified.code, 0) << verified;
  EXPECT_EQ(verified.Field("type"), "push");

  // A read-only key gets 403 on writes.
  Result ro = Mesa("api-keys create --scope read --json");
  ASSERT_EQ(ro.code, 0) << ro;
  std::string ro_key = ro.Json()["key"];
  Result ro_login = Mesa("login --no-default --json", "MESA_API_URL=" + ApiUrl(), ro_key + "\n");  // key on stdin
  ASSERT_EQ(ro_login.code, 0) << ro_login;
  std::string ro_session = ro_login.Json()["session_id"];
  EXPECT_EQ(ro_login.Json()["session"]["is_default"], false);
  Result forbidden = Mesa("--session " + ro_session + " repos create nope");
  EXPECT_EQ(forbidden.code, 5) << forbidden;
  EXPECT_TRUE(forbidden.err.starts_with("mesa: FORBIDDEN: ")) << forbidden;
  EXPECT_EQ(Mesa("logout --session " + ro_session).code, 0);

  // --org and $MESA_ORG fix the session's org at login.
  Result fixed = Mesa("login --no-default --api-key " + key + " --api-url " + ApiUrl(), "MESA_ORG=acme");
  ASSERT_EQ(fixed.code, 0) << fixed;
  EXPECT_EQ(fixed.Field("org"), "acme");
  EXPECT_EQ(fixed.Field("default"), "no");
  EXPECT_EQ(Mesa("logout " + fixed.Field("session")).code, 0);

  Result out = Mesa("logout");
  ASSERT_EQ(out.code, 0) << out;
  EXPECT_EQ(out.out, "logged out the default session\n");
  std::set<std::string> final_ids = SessionIds();
  EXPECT_FALSE(final_ids.count(session));
  EXPECT_EQ(final_ids, before);
}

}  // namespace
}  // namespace mesa::testing
