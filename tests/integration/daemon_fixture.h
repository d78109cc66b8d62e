// A real mesad process (embedded store, or remote mode against a real mesa-server process on
// TCP loopback) and a client connected to its socket.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "mesa/client.h"
#include "tests/unit/test_util.h"

namespace mesa::testing {

enum class ApiMode { kEmbedded, kRemote };

int FreeTcpPort();

// GET `path` over HTTP/1.1 from "HOST:PORT" or "unix:PATH"; returns "" when nothing answered.
std::string HttpGet(const std::string& address, const std::string& path, int* status = nullptr);
// The value of the sample `series` (exact name and labels as rendered) in a Prometheus text.
std::optional<double> Sample(const std::string& text, const std::string& series);

// A child process, SIGTERM'd and reaped on destruction.
class Process {
 public:
  Process() = default;
  explicit Process(pid_t pid) : pid_(pid) {}
  Process(Process&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Process& operator=(Process&& o) noexcept;
  ~Process() { Stop(SIGTERM); }
  int Stop(int sig);  // returns the exit status (or 128+signal)
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

Process Spawn(const std::vector<std::string>& argv, const std::string& log_file = "");

class MesaServerProcess {
 public:
  // init + serve on a free loopback port; key() is the org's admin key.
  // `serve_args` go to `mesa-server serve` (e.g. {"--config", FILE}).
  explicit MesaServerProcess(const std::string& dir, const std::string& org = "acme",
                             const std::vector<std::string>& serve_args = {});
  const std::string& key() const { return key_; }
  std::string api_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int port() const { return port_; }
  const std::string& data() const { return data_; }
  std::string CreateKey(const std::string& scopes, const std::string& org = "acme");
  void Kill(int sig) { process_.Stop(sig); }

 private:
  std::string data_;
  std::string key_;
  int port_ = 0;
  Process process_;
};

class MesadProcess {
 public:
  // Starts mesad with its socket, state and cache under `dir`; `api_url` empty = embedded.
  MesadProcess(const std::string& dir, const std::string& api_url = "", std::vector<std::string> extra = {});
  ~MesadProcess();
  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }
  std::unique_ptr<Client> NewClient(const std::string& session_id = "", const std::string& org = "") const;
  int Stop(int sig) { return process_.Stop(sig); }
  pid_t pid() const { return process_.pid(); }
  std::string Log() const;

 private:
  std::string dir_;
  std::string socket_;
  Process process_;
};

}  // namespace mesa::testing
