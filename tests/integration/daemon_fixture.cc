#include "tests/integration/daemon_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace mesa::testing {

std::string HttpGet(const std::string& address, const std::string& path, int* status) {
  int fd = -1;
  if (address.rfind("unix:", 0) == 0) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string p = address.substr(5);
    memcpy(addr.sun_path, p.c_str(), p.size());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      return "";
    }
  } else {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      return "";
    }
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  if (status) *status = resp.size() > 12 ? std::stoi(resp.substr(9, 3)) : 0;
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

std::optional<double> Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

int FreeTcpPort() {
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

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    Stop(SIGTERM);
    pid_ = o.pid_;
    o.pid_ = -1;
  }
  return *this;
}

int Process::Stop(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Process Spawn(const std::vector<std::string>& argv, const std::string& log_file) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a test process that dies early
    if (!log_file.empty()) {
      int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return Process(pid);
}

MesaServerProcess::MesaServerProcess(const std::string& dir, const std::string& org,
                                     const std::vector<std::string>& serve_args) {
  data_ = dir + "/server-store";
  std::string out;
  EXPECT_EQ(RunCommand(std::string(MESA_SERVER_BIN) + " init --data " + data_ + " --org " + org, &out), 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  key_ = out.substr(out.rfind('\n') + 1);
  port_ = FreeTcpPort();
  std::vector<std::string> argv = {MESA_SERVER_BIN, "serve", "--data", data_, "--listen", "127.0.0.1:" + std::to_string(port_),
                                   "--access-log", dir + "/server-access.log"};
  argv.insert(argv.end(), serve_args.begin(), serve_args.end());
  process_ = Spawn(argv, dir + "/server.log");
  for (int i = 0; i < 500; ++i) {
    if (RunCommand("curl -s -o /dev/null http://127.0.0.1:" + std::to_string(port_) + "/v1/whoami") == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "mesa-server did not start";
}

std::string MesaServerProcess::CreateKey(const std::string& scopes, const std::string& org) {
  std::string out;
  EXPECT_EQ(RunCommand(std::string(MESA_SERVER_BIN) + " create-key --data " + data_ + " --org " + org +
                           " --scopes " + scopes, &out), 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') + 1);
}

MesadProcess::MesadProcess(const std::string& dir, const std::string& api_url, std::vector<std::string> extra) : dir_(dir) {
  socket_ = dir + "/mesad.sock";
  std::vector<std::string> argv = {MESAD_BIN, "--socket", socket_, "--state-dir", dir + "/state",
                                   "--cache-dir", dir + "/cache", "--log-level", "debug"};
  if (!api_url.empty()) {
    argv.push_back("--api-url");
    argv.push_back(api_url);
  }
  for (auto& e : extra) argv.push_back(std::move(e));
  process_ = Spawn(argv, dir + "/mesad.log");
  for (int i = 0; i < 500; ++i) {
    if (std::filesystem::exists(socket_)) {
      try {
        NewClient()->status();
        return;
      } catch (const MesaError&) {
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "mesad did not start:\n" << Log();
}

MesadProcess::~MesadProcess() { process_.Stop(SIGTERM); }

std::unique_ptr<Client> MesadProcess::NewClient(const std::string& session_id, const std::string& org) const {
  ClientOptions o;
  o.socket = socket_;
  o.session_id = session_id;
  o.org = org;
  o.timeout = std::chrono::seconds(60);
  return std::make_unique<Client>(o);
}

std::string MesadProcess::Log() const {
  std::ifstream in(dir_ + "/mesad.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace mesa::testing
