// mesad: the Mesa system service. See README.md and config/mesad.yaml.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <google/protobuf/descriptor.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "daemon/config/config.h"
#include "daemon/embedded/embedded_api.h"
#include "daemon/exec/exec_manager.h"
#include "daemon/exec/sandbox.h"
#include "daemon/log.h"
#include "daemon/metrics/metrics.h"
#include "daemon/metrics/metrics_server.h"
#include "daemon/mounts/mount_manager.h"
#include "daemon/rpc/mount_services.h"
#include "daemon/remote/rest_client.h"
#include "daemon/rpc/api_services.h"
#include "daemon/rpc/exec_service.h"
#include "daemon/rpc/listener.h"
#include "daemon/rpc/rpc_metrics.h"
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

// Defaults, then the YAML file (--config), then the other flags. Re-run on SIGHUP.
absl::StatusOr<DaemonConfig> BuildConfig(const std::map<std::string, std::string>& flags) {
  DaemonConfig config;
  if (auto it = flags.find("config"); it != flags.end()) {
    auto warnings = LoadConfigFile(it->second, config);
    if (!warnings.ok()) return warnings.status();
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
      if (!ParseLogLevel(v, &config.log_level)) return absl::InvalidArgumentError("--log-level must be error, warning, info or debug");
    }
  }
  return config;
}

RestClientOptions RestOptionsOf(const DaemonConfig& config) {
  RestClientOptions o;
  o.connect_timeout_ms = config.connect_timeout_ms;
  o.request_timeout_ms = config.request_timeout_ms;
  o.max_attempts = config.max_attempts;
  o.backoff_initial_ms = config.backoff_initial_ms;
  o.backoff_max_ms = config.backoff_max_ms;
  o.user_agent = std::string("mesad/") + MESA_VERSION;
  return o;
}

int64_t MonotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count();
}

// Every service of mesad's protos, for per-service grpc.health.v1 answers.
std::vector<std::string> ServiceNames() {
  std::vector<std::string> out;
  for (const char* file : {"mesa/daemon/v1/api.proto", "mesa/daemon/v1/mounts.proto", "mesa/daemon/v1/exec.proto"}) {
    const auto* fd = google::protobuf::DescriptorPool::generated_pool()->FindFileByName(file);
    for (int i = 0; fd && i < fd->service_count(); ++i) out.push_back(fd->service(i)->full_name());
  }
  return out;
}

enum class State : int { kStarting, kServing, kReloading, kStopping };
const char* StateName(State s) {
  switch (s) {
    case State::kStarting: return "starting";
    case State::kServing: return "serving";
    case State::kReloading: return "reloading";
    case State::kStopping: return "stopping";
  }
  return "?";
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

  for (const auto& [k, v] : flags) {
    static const std::set<std::string> known = {"config", "socket", "state-dir", "cache-dir", "api-url", "runtime-dir", "log-level"};
    if (!known.count(k)) {
      std::cerr << "mesad: unknown flag --" << k << "\n" << kUsage;
      return 2;
    }
  }
  auto built = BuildConfig(flags);
  if (!built.ok()) return Die(std::string(built.status().message()));
  DaemonConfig config = *built;
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

  RestClient rest(RestOptionsOf(config));

  SessionManager sessions({config.state_dir, config.api_url, embedded.get(), &rest});
  if (auto st = sessions.Load(); !st.ok()) return Die(std::string(st.message()));

  RaiseNoFileLimit();  // one descriptor per overlay file and per cached blob in use
  MountManagerOptions mount_options;
  mount_options.runtime_dir = config.runtime_dir;
  mount_options.state_dir = config.state_dir;
  mount_options.cache_dir = config.cache_dir;
  mount_options.cache_max_bytes = config.cache_max_bytes;
  mount_options.backend_timeout_ms = config.fs_backend_timeout_ms;
  mount_options.flush_idle_ms = config.fs_flush_idle_ms;
  mount_options.overlay_max_bytes = config.fs_overlay_max_bytes;
  mount_options.sessions = &sessions;
  mount_options.fuse.max_threads = static_cast<unsigned>(config.fuse_threads);
  mount_options.fuse.read_ahead_kb = static_cast<unsigned>(config.fuse_read_ahead_kb);
  MountManager mounts(mount_options);
  // Persisted mounts come back (stale ones of a crashed predecessor detached first) before
  // READY=1: a client that sees mesad ready sees its mounts.
  if (auto st = mounts.Start(); !st.ok()) return Die("mounts: " + std::string(st.message()));
  ExecManager exec(ExecOptionsFromConfig(config), &mounts);
  exec.Start();

  std::atomic<State> state{State::kStarting};
  std::atomic<int64_t> reloads{0};
  std::string metrics_address;
  auto& registry = metrics::Global();

  PeerRegistry peers;
  RpcDeps deps;
  deps.sessions = &sessions;
  deps.peers = &peers;
  deps.rest = &rest;
  deps.started_at_ms = mesa::rest::NowUnixMillis();
  deps.mount_count = [&mounts](uid_t uid) { return mounts.Count(uid); };
  deps.default_endpoint = embedded ? embedded->endpoint() : *ParseApiUrl(config.api_url);
  deps.fill_status = [&](uid_t uid, mesa::daemon::v1::StatusResponse* out) {
    out->set_state(StateName(state.load()));
    for (const auto& m : mounts.Summaries(uid)) {
      auto* ms = out->add_mount_states();
      ms->set_id(m.id);
      ms->set_path(m.path);
      ms->set_uid(m.uid);
      ms->set_state(m.state);
      ms->set_pending_paths(m.pending_paths);
      ms->set_pending_bytes(m.pending_bytes);
      ms->set_last_upload_error(m.last_upload_error);
      ms->set_backend_errors(m.backend_errors);
    }
    if (auto blobs = mounts.shared_blobs()) {
      BlobCacheStats cs = blobs->Stats();
      auto* c = out->mutable_cache();
      c->set_path(blobs->dir());
      c->set_bytes(cs.bytes);
      c->set_max_bytes(cs.max_bytes);
      c->set_entries(cs.entries);
      c->set_hits(cs.hits);
      c->set_misses(cs.misses);
      c->set_evictions(cs.evictions);
      c->set_fetched_bytes(cs.fetched_bytes);
    }
    out->set_rpcs_in_flight(static_cast<int32_t>(registry.rpc_inflight.load()));
    out->set_execs_running(exec.running());
    out->set_reloads(reloads.load());
    out->set_metrics_address(metrics_address);
  };
  auto services = MakeApiServices(deps);
  for (auto& s : MakeMountServices(&mounts, &peers)) services.push_back(std::move(s));
  services.push_back(MakeExecService(&exec, &peers));

  // Values owned by other components, read at every scrape.
  int64_t started_ms = mesa::rest::NowUnixMillis();
  registry.AddCollector([&](std::vector<metrics::Sample>* out) {
    for (const auto& cache : mounts.Caches()) {
      BlobCacheStats cs = cache->Stats();
      std::string l = "dir=" + metrics::Quoted(cache->dir());
      auto add = [&](const char* name, const char* type, const char* help, uint64_t v) {
        out->push_back({name, type, help, l, static_cast<double>(v)});
      };
      add("mesad_blob_cache_hits_total", "counter", "Blob cache lookups served from disk.", cs.hits);
      add("mesad_blob_cache_misses_total", "counter", "Blob cache lookups that fetched from the Mesa API.", cs.misses);
      add("mesad_blob_cache_hit_bytes_total", "counter", "Bytes of blobs served from the cache.", cs.hit_bytes);
      add("mesad_blob_cache_miss_bytes_total", "counter", "Bytes fetched from the Mesa API into the cache.", cs.fetched_bytes);
      add("mesad_blob_cache_evictions_total", "counter", "Blobs evicted to stay under the cap.", cs.evictions);
      add("mesad_blob_cache_bytes", "gauge", "Bytes in the blob cache.", cs.bytes);
      add("mesad_blob_cache_max_bytes", "gauge", "The blob cache's cap (cache_max_bytes).", cs.max_bytes);
      add("mesad_blob_cache_entries", "gauge", "Blobs in the blob cache.", cs.entries);
    }
    uint64_t pending = 0;
    auto summaries = mounts.Summaries(0);
    for (const auto& m : summaries) pending += m.pending_bytes;
    out->push_back({"mesad_mounts", "gauge", "FUSE mounts served (recorded but unrestored ones excluded).", "",
                    static_cast<double>(mounts.Count(0))});
    out->push_back({"mesad_mount_pending_bytes", "gauge", "Bytes of local writes not yet on the server, all mounts.", "",
                    static_cast<double>(pending)});
    out->push_back({"mesad_sessions", "gauge", "API sessions held.", "", static_cast<double>(sessions.Count(0))});
    out->push_back({"mesad_exec_running", "gauge", "Sandboxed commands running.", "", static_cast<double>(exec.running())});
    ExecManager::SandboxStats sandboxes = exec.sandbox_stats();
    out->push_back({"mesad_exec_warm_sandboxes", "gauge", "Warm sandboxes waiting for a command.", "",
                    static_cast<double>(sandboxes.warm_waiting)});
    out->push_back({"mesad_exec_starts_total", "counter", "Commands started, by sandbox: warm (set up ahead) or cold.",
                    "sandbox=\"warm\"", static_cast<double>(sandboxes.warm_starts)});
    out->push_back({"mesad_exec_starts_total", "counter", "Commands started, by sandbox: warm (set up ahead) or cold.",
                    "sandbox=\"cold\"", static_cast<double>(sandboxes.cold_starts)});
    out->push_back({"mesad_exec_warm_expired_total", "counter", "Warm sandboxes killed unused after exec_warm_idle_ms.", "",
                    static_cast<double>(sandboxes.warm_expired)});
    out->push_back({"mesad_uptime_seconds", "gauge", "Seconds since mesad started.", "",
                    static_cast<double>(mesa::rest::NowUnixMillis() - started_ms) / 1000.0});
    out->push_back({"mesad_build_info", "gauge", "Always 1; the version is a label.", "version=" + metrics::Quoted(MESA_VERSION), 1});
  });
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (!config.metrics_listen.empty()) {
    auto started = metrics::MetricsServer::Start(config.metrics_listen, &registry);
    if (!started.ok()) return Die(std::string(started.status().message()));
    metrics_server = std::move(*started);
    metrics_address = metrics_server->address();
    MESA_LOG(kInfo) << "metrics on " << metrics_address << " (GET /metrics)";
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  for (auto& s : services) builder.RegisterService(s.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, config.rpc_threads);
  builder.experimental().SetInterceptorCreators(MakeRpcMetricsInterceptors());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Die("cannot start the gRPC server");
  if (auto* health = server->GetHealthCheckService()) {
    for (const auto& name : ServiceNames()) health->SetServingStatus(name, true);
  }

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
  MESA_LOG(kInfo) << "mesad " << MESA_VERSION << " serving on " << (activated >= 1 ? "the activated socket" : config.socket)
                  << " (" << (embedded ? "embedded store" : "api " + config.api_url) << ")";

  auto status_line = [&]() {
    int n_sessions = sessions.Count(0), n_mounts = mounts.Count(0), n_exec = exec.running();
    return "STATUS=serving " + std::to_string(n_sessions) + (n_sessions == 1 ? " session, " : " sessions, ") +
           std::to_string(n_mounts) + (n_mounts == 1 ? " mount" : " mounts") +
           (n_exec ? ", " + std::to_string(n_exec) + " running command(s)" : "");
  };
  std::string last_status = status_line();
  state = State::kServing;
  sd_notify(0, ("READY=1\n" + last_status).c_str());

  // SIGHUP: re-read the file, apply the live keys, report the others (they keep their value).
  auto reload = [&]() {
    state = State::kReloading;
    sd_notify(0, ("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(MonotonicUsec()) + "\nSTATUS=reloading the configuration").c_str());
    auto next = BuildConfig(flags);
    std::string outcome;
    if (!next.ok()) {
      ++registry.reload_failures;
      outcome = "reload failed: " + std::string(next.status().message()) + "; the running configuration stays";
      MESA_LOG(kError) << outcome;
    } else {
      ConfigChanges changes = DiffConfig(config, *next);
      for (const auto& key : changes.restart)
        MESA_LOG(kWarning) << "reload: " << key << " needs a restart of mesad; keeping the running value";
      DaemonConfig applied = WithRestartKeysOf(config, *next);
      SetLogLevel(applied.log_level);
      rest.SetOptions(RestOptionsOf(applied));
      mounts.SetCacheMaxBytes(applied.cache_max_bytes);
      mounts.SetBackendTimeoutMs(applied.fs_backend_timeout_ms);
      exec.SetLimits(ExecOptionsFromConfig(applied));
      config = applied;
      ++reloads;
      ++registry.reloads;
      std::string applied_keys;
      for (const auto& key : changes.live) applied_keys += (applied_keys.empty() ? "" : ", ") + key;
      MESA_LOG(kInfo) << "reloaded " << (flags.count("config") ? flags["config"] : std::string("(no --config file)")) << ": "
                      << (applied_keys.empty() ? "no live key changed" : "applied " + applied_keys)
                      << (changes.restart.empty() ? "" : "; " + std::to_string(changes.restart.size()) + " key(s) need a restart");
      if (!changes.restart.empty()) outcome = "restart needed for " + std::to_string(changes.restart.size()) + " changed key(s)";
    }
    state = State::kServing;
    last_status = status_line();
    sd_notify(0, ("READY=1\n" + last_status + (outcome.empty() ? "" : " (" + outcome + ")")).c_str());
  };

  // The watchdog (WatchdogSec=): pinged at half its interval from this loop, after checking
  // that the mount and session tables answer (a deadlock there stops the pings).
  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
  auto ping_every = std::chrono::microseconds(watchdog ? watchdog_usec / 2 : 5000000);
  if (watchdog) MESA_LOG(kInfo) << "watchdog: pinging every " << watchdog_usec / 2000 << " ms";
  auto last_ping = std::chrono::steady_clock::now();
  auto ping = [&]() {
    if (!watchdog) return;
    (void)mounts.Count(0);
    (void)sessions.Count(0);
    sd_notify(0, "WATCHDOG=1");
    last_ping = std::chrono::steady_clock::now();
  };
  ping();

  while (true) {
    auto wait = ping_every - (std::chrono::steady_clock::now() - last_ping);
    if (wait < std::chrono::milliseconds(1)) wait = std::chrono::milliseconds(1);
    auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    timespec ts{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (std::chrono::steady_clock::now() - last_ping >= ping_every) {
      ping();
      if (!watchdog) last_ping = std::chrono::steady_clock::now();
      if (std::string now = status_line(); now != last_status) {
        last_status = now;
        sd_notify(0, now.c_str());
      }
    }
    if (sig < 0) continue;  // timeout or EINTR
    if (sig == SIGHUP) {
      reload();
      continue;
    }
    MESA_LOG(kInfo) << strsignal(sig) << ": stopping";
    break;
  }

  // Shutdown, each step bounded: stop accepting; stop every command (their callers get their
  // results); let in-flight calls finish until the drain deadline, then cancel them; upload
  // pending writes; unmount. Mount records stay, so the next start restores the mounts.
  auto stop_started = std::chrono::steady_clock::now();
  state = State::kStopping;
  sd_notify(0, "STOPPING=1\nSTATUS=stopping: draining calls, flushing writes, unmounting");
  if (auto* health = server->GetHealthCheckService()) health->Shutdown();
  listener->Stop();
  exec.Shutdown(config.exec_kill_grace_ms + 3000);
  ping();
  MESA_LOG(kInfo) << "stop: commands ended after " << ElapsedMs(stop_started) << " ms; draining "
                  << registry.rpc_inflight.load() << " call(s) for up to " << config.shutdown_drain_timeout_ms << " ms";
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(config.shutdown_drain_timeout_ms));
  server->Wait();
  ping();
  MESA_LOG(kInfo) << "stop: calls drained after " << ElapsedMs(stop_started) << " ms; flushing " << mounts.Count(0)
                  << " mount(s) for up to " << config.shutdown_flush_timeout_ms << " ms";
  mounts.UnmountAll(config.shutdown_flush_timeout_ms);
  listener.reset();
  metrics_server.reset();
  embedded.reset();
  MESA_LOG(kInfo) << "stopped in " << ElapsedMs(stop_started) << " ms";
  // Everything that matters is closed above. Skip static destructors: gRPC's global shutdown
  // can linger for seconds on executor threads after fd-adopted connections.
  fflush(nullptr);
  _exit(0);
}
