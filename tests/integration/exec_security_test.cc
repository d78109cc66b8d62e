// What a command run through Exec can and cannot reach: it is the caller (uid, gid, no
// supplementary groups, no capabilities that matter outside), it sees no host secrets (shadow,
// mesad's state and cache, API keys), no other user's mount, no host processes, and no network
// unless mesad's config opts in.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "tests/integration/exec_fixture.h"

namespace mesa::testing {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ExecSecurityTest : public ExecTest {};

TEST_F(ExecSecurityTest, RunsAsTheCallerUidWithoutPrivileges) {
  std::string uid = std::to_string(agent_->uid());
  auto r = Run("id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs):' /proc/self/status");
  ASSERT_EQ(r.error.code, "") << r.error.message;
  std::string out = r.result.stdout();
  EXPECT_EQ(out.substr(0, out.find("Uid:")), uid + "\n" + uid + "\n" + uid + "\n");  // no supplementary groups
  EXPECT_NE(out.find("Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid), std::string::npos) << out;
  EXPECT_NE(out.find("Gid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid), std::string::npos) << out;
  EXPECT_NE(out.find("CapEff:\t0000000000000000"), std::string::npos) << out;
  EXPECT_NE(out.find("NoNewPrivs:\t1"), std::string::npos) << out;
  // Files it creates in the mount's view and in /tmp belong to the caller.
  r = Run("stat -c '%u %g' /tmp /home/user /app");
  EXPECT_EQ(r.result.stdout(), uid + " " + uid + "\n" + uid + " " + uid + "\n" + uid + " " + uid + "\n");
  // No way up: setuid binaries do nothing, no new user namespaces, no mounts.
  r = Run("su -c id root </dev/null >/dev/null 2>&1; echo su=$?;"
          "unshare -U true 2>/dev/null; echo unshare=$?;"
          "mount -t tmpfs x /tmp 2>/dev/null; echo mount=$?");
  EXPECT_EQ(r.result.stdout(), "su=1\nunshare=1\nmount=32\n") << r.result.stdout();
}

TEST_F(ExecSecurityTest, HostSecretsAreOutOfReach) {
  std::string key = server_->key();
  std::string state = dir_.path() + "/state";
  std::string cache = dir_.path() + "/cache";
  auto sh = [&](const std::string& command) { return Run(command).result.stdout(); };
  // Sanity: the secrets exist on the host.
  ASSERT_NE(ReadText(state + "/sessions.json").find(key), std::string::npos) << "where does mesad keep the key?";
  EXPECT_EQ(sh("cat /etc/shadow 2>/dev/null || echo no-shadow; ls /etc | grep -c shadow"), "no-shadow\n0\n");
  EXPECT_EQ(sh("ls -d " + state + " " + cache + " " + dir_.path() + " /var/lib/mesad /var/cache/mesad /run/mesad /root 2>/dev/null | wc -l"),
            "0\n");
  EXPECT_EQ(sh("ls -d " + mesad_->socket() + " 2>/dev/null | wc -l"), "0\n");
  // The key is nowhere the command can look: not in its environment, not in any process it can
  // see, not in a file it can read.
  // (The key goes in on stdin: on the command line every process of the sandbox would show it.)
  auto req = Request("k=$(cat); grep -rslF -e \"$k\" /etc /tmp /home /var /app /docs;"
                     "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do printf %s \"$k\" | grep -qFf - \"$f\" && echo $f; done;"
                     "env | grep -cF -e \"$k\"");
  req.set_stdin(key);
  auto r = agent_->Exec(req);
  EXPECT_EQ(r.result.stdout(), "0\n") << r.result.stdout() << r.result.stderr();
  // Only the sandbox's own processes are visible: pid 1 is bwrap's, no mesad, no host init.
  // (pid 1, the shim, bash, ls and grep.)
  EXPECT_EQ(sh("cat /proc/1/comm; ls /proc | grep -c '^[0-9]'"), "bwrap\n5\n");
  EXPECT_EQ(sh("cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c '[m]esad'"), "0\n");
  // A minimal /dev: no disks, no kernel memory.
  EXPECT_EQ(sh("ls /dev | tr '\\n' ' '"), "core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
}

TEST_F(ExecSecurityTest, AnotherUsersMountIsOutOfReach) {
  // User B mounts a repo of their own; user A (the fixture's agent) tries to reach it.
  auto b = NewAgent(1);
  ASSERT_EQ(b->Login(server_->key()).code, "");
  dv1::MountRequest mreq;
  mreq.add_repos()->set_name("docs");
  auto theirs = b->Mount(mreq);
  ASSERT_FALSE(theirs.id().empty());
  dv1::ExecRequest req;
  req.set_mount(theirs.id());
  req.set_command("cat /docs/guide.md");
  EXPECT_EQ(agent_->Exec(req).error.code, "MOUNT_NOT_FOUND");
  req.set_mount(theirs.path());
  EXPECT_EQ(agent_->Exec(req).error.code, "MOUNT_NOT_FOUND");
  // B can; A's commands do not even see the path.
  req.set_mount(theirs.id());
  EXPECT_EQ(b->Exec(req).result.stdout(), "read me\n");
  auto r = Run("ls " + theirs.path() + " 2>&1; cat " + theirs.path() + "/docs/guide.md 2>&1; echo rc=$?");
  EXPECT_EQ(r.result.stdout().find("read me"), std::string::npos) << r.result.stdout();
  EXPECT_NE(r.result.stdout().find("No such file or directory"), std::string::npos) << r.result.stdout();
  // And B's sandbox does not see A's.
  auto rb = b->Exec([&] {
    dv1::ExecRequest q = req;
    q.set_command("ls /; ls " + mount_.path() + " 2>&1 | grep -c 'No such'");
    return q;
  }());
  EXPECT_NE(rb.result.stdout().find("\ndocs\n"), std::string::npos) << rb.result.stdout();
  EXPECT_EQ(rb.result.stdout().find("app"), std::string::npos) << rb.result.stdout();
  EXPECT_EQ(rb.result.stdout().substr(rb.result.stdout().size() - 2), "1\n");
  EXPECT_EQ(Leftovers(TestUid(1)), std::vector<std::string>());
}

TEST_F(ExecSecurityTest, NoNetworkByDefault) {
  // mesa-server listens on 127.0.0.1 on the host; a local listener of our own too.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  for (int p : {port, server_->port()}) {
    auto r = Run("exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(p) + " && echo connected || echo refused", "", 10000);
    EXPECT_EQ(r.result.stdout(), "refused\n") << "port " << p;
  }
  // Only a loopback interface, and it is down.
  auto r = Run("ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(r.result.stdout(), "lo\n");
  close(fd);
}

class ExecNetworkTest : public ExecTest {
 protected:
  std::string ExtraConfig() const override { return "exec_network: true\n"; }
};

TEST_F(ExecNetworkTest, NetworkIsAnOptIn) {
  auto r = Run("exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(server_->port()) +
               " && printf 'GET /v1/whoami HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3");
  EXPECT_EQ(r.result.stdout().substr(0, 12), "HTTP/1.1 401") << r.result.stdout() << r.result.stderr();
}

TEST_F(ExecSecurityTest, RootCallerRunsAsRootInsideItsUserNamespace) {
  // Root's own commands (the caller is root): root in the sandbox, still no host view.
  auto root = mesad_->NewClient();
  dv1::LoginRequest login;
  login.set_api_key(server_->key());
  login.set_make_default(true);
  root->sessions().login(login);
  dv1::MountRequest mreq;
  mreq.add_repos()->set_name("docs");
  auto m = root->mounts().mount(mreq);
  auto r = root->exec().exec(m.id(), "id -u; cat /docs/guide.md; ls /proc | grep -c '^[0-9]'; cat /etc/shadow 2>&1 | grep -c 'No such'");
  EXPECT_EQ(r.stdout(), "0\nread me\n5\n1\n") << r.stderr();
  root->mounts().unmount(m.id());
}

}  // namespace
}  // namespace mesa::testing

int main(int argc, char** argv) { return mesa::testing::ExecTestMain(argc, argv); }
