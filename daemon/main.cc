// mesad: the Mesa system service. See README.md and config/mesad.yaml.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

#include "daemon/config/config.h"
#include "daemon/embedded/embedded_api.h"
#include "daemon/exec/exec_manager.h"
#include "daemon/log.h"
#include "daemon/mounts/mount_manager.h"
#include "daemon/rpc/mount_services.h"
#include "daemon/remote/rest_client.h"
#include "daemon/rpc/api_services.h"
#include "daemon/rpc/exec_service.h"
#include "daemon/rpc/listener.h"
#include "daemon/session/session_manager.h"
#include "rest/time_format.h"

namespace {

using namespace mesa::daemon;  // NOLINT(build/namespaces)

constexpr const char* kUsage = R"(usage: mesad [options]
  --config FILE           YAML configuration (keys: see --print-default-config)
  --socket PATH           gRPC Unix socket (default /run/mesad/mesad.sock)
  --state-dir DIR         sessions, mount records, embedded store (default /var/lib/mesad)
  --cache-dir DIR         blob cache (default /var/cache/mesad)
  --api-url URL           Mesa API for new sessions (https://.../v1 or unix:/path); empty = embedded
  --runtime-dir DIR       default mount points live under DIR/<uid>/ (default /run/mesad/mounts)
  --log-level LEVEL       error | warning | info | debug
  --print-default-config  print the documented default configuration and exit
  --version               print the version and exit
)";

int Die(const std::string& message) {
  LogLine(LogLevel::kError, message);
  return 1;
}

bool MakeDir(const std::string& dir, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return false;
  chmod(dir.c_str(), mode);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--version") {
      std::cout << "mesad " << MESA_VERSION << std::endl;
      return 0;
    }
    if (a == "--print-default-config") {
      std::cout << DefaultConfigYaml();
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      std::cerr << "mesad: unexpected argument " << a << "\n" << kUsage;
      return 2;
    }
    std::string key = a.substr(2), value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "mesad: " << a << " needs a value\n";
      return 2;
    }
    flags[key] = value;
  }

  DaemonConfig config;
  if (flags.count("config")) {
    auto warnings = LoadConfigFile(flags["config"], config);
    if (!warnings.ok()) return Die(std::string(warnings.status().message()));
    for (const auto& w : *warnings) LogLine(LogLevel::kWarning, w);
  }
  for (const auto& [k, v] : flags) {
    if (k == "config") continue;
    if (k == "socket") config.socket = v;
    else if (k == "state-dir") config.state_dir = v;
    else if (k == "cache-dir") config.cache_dir = v;
    else if (k == "api-url") config.api_url = v;
    else if (k == "runtime-dir") config.runtime_dir = v;
    else if (k == "log-level") {
      if (!ParseLogLevel(v, &config.log_level)) return Die("--log-level must be error, warning, info or debug");
    } else {
      std::cerr << "mesad: unknown flag --" << k << "\n" << kUsage;
      return 2;
    }
  }
  SetLogLevel(config.log_level);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  umask(022);

  if (!MakeDir(config.state_dir, 0700)) return Die("cannot create state dir " + config.state_dir);
  if (!MakeDir(config.cache_dir, 0700)) return Die("cannot create cache dir " + config.cache_dir);
  if (!MakeDir(std::filesystem::path(config.socket).parent_path().string(), 0755))
    return Die("cannot create the socket's directory for " + config.socket);

  std::unique_ptr<EmbeddedApi> embedded;
  if (config.api_url.empty()) {
    auto started = EmbeddedApi::Start(config.state_dir + "/embedded", config.embedded_access_log);
    if (!started.ok()) return Die("embedded store: " + std::string(started.status().message()));
    embedded = std::move(*started);
  } else if (auto ep = ParseApiUrl(config.api_url); !ep.ok()) {
    return Die("api_url: " + std::string(ep.status().message()));
  }

  RestClientOptions rest_options;
  rest_options.connect_timeout_ms = config.connect_timeout_ms;
  rest_options.request_timeout_ms = config.request_timeout_ms;
  rest_options.max_attempts = config.max_attempts;
  rest_options.backoff_initial_ms = config.backoff_initial_ms;
  rest_options.backoff_max_ms = config.backoff_max_ms;
  rest_options.user_agent = std::string("mesad/") + MESA_VERSION;
  RestClient rest(rest_options);

  SessionManager sessions({config.state_dir, config.api_url, embedded.get(), &rest});
  if (auto st = sessions.Load(); !st.ok()) return Die(std::string(st.message()));

  MountManagerOptions mount_options;
  mount_options.runtime_dir = config.runtime_dir;
  mount_options.state_dir = config.state_dir;
  mount_options.cache_dir = config.cache_dir;
  mount_options.cache_max_bytes = config.cache_max_bytes;
  mount_options.backend_timeout_ms = config.fs_backend_timeout_ms;
  mount_options.sessions = &sessions;
  mount_options.fuse.max_threads = static_cast<unsigned>(config.fuse_threads);
  MountManager mounts(mount_options);
  if (auto st = mounts.Start(); !st.ok()) return Die("mounts: " + std::string(st.message()));
  ExecManager exec(ExecOptionsFromConfig(config), &mounts);
  exec.Start();

  PeerRegistry peers;
  RpcDeps deps{&sessions, &peers, &rest, mesa::rest::NowUnixMillis(), [&mounts](uid_t uid) { return mounts.Count(uid); }};
  auto services = MakeApiServices(deps);
  for (auto& s : MakeMountServices(&mounts, &peers)) services.push_back(std::move(s));
  services.push_back(MakeExecService(&exec, &peers));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  for (auto& s : services) builder.RegisterService(s.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, config.rpc_threads);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Die("cannot start the gRPC server");

  std::unique_ptr<UnixSocketListener> listener;
  int activated = sd_listen_fds(1);
  if (activated >= 1) {
    listener = UnixSocketListener::Adopt(SD_LISTEN_FDS_START);
    MESA_LOG(kInfo) << "using the socket passed by systemd";
  } else {
    auto bound = UnixSocketListener::Bind(config.socket, 0666);
    if (!bound.ok()) return Die(std::string(bound.status().message()));
    listener = std::move(*bound);
  }
  listener->Start(server.get(), &peers);
  MESA_LOG(kInfo) << "mesad " << MESA_VERSION << " serving on " << config.socket << " ("
                  << (embedded ? "embedded store" : "api " + config.api_url) << ")";
  sd_notify(0, "READY=1\nSTATUS=serving");

  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      MESA_LOG(kInfo) << "SIGHUP: nothing to reload yet";
      continue;
    }
    MESA_LOG(kInfo) << strsignal(sig) << ": stopping";
    sd_notify(0, "STOPPING=1");
    break;
  }
  exec.Shutdown(5000);  // kills every command; their callers still get the results
  listener->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  server->Wait();
  mounts.UnmountAll(10000);
  listener.reset();
  embedded.reset();
  MESA_LOG(kInfo) << "stopped";
  // Everything that matters is closed above. Skip static destructors: gRPC's global shutdown
  // can linger for seconds on executor threads after fd-adopted connections.
  fflush(nullptr);
  _exit(0);
}
