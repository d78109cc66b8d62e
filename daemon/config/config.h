// mesad settings: built-in defaults, then a YAML file (--config), then flags.
// Every key is documented in config/mesad.yaml (also printed by --print-default-config).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/log.h"

namespace mesa::daemon {

struct DaemonConfig {
  std::string socket = "/run/mesad/mesad.sock";
  std::string state_dir = "/var/lib/mesad";
  std::string cache_dir = "/var/cache/mesad";
  std::string api_url;  // empty: the embedded mesa-server store
  LogLevel log_level = LogLevel::kInfo;

  // REST client
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 60000;
  int max_attempts = 4;  // total tries of an idempotent request
  int backoff_initial_ms = 100;
  int backoff_max_ms = 5000;

  // gRPC
  int rpc_threads = 16;
  int64_t max_message_bytes = 256ll << 20;

  // Embedded store
  std::string embedded_access_log = "off";

  // Mounts
  std::string runtime_dir = "/run/mesad/mounts";
  uint64_t cache_max_bytes = 10ull << 30;
  int fs_backend_timeout_ms = 20000;
  int fs_flush_idle_ms = 200;
  uint64_t fs_overlay_max_bytes = 1ull << 30;
  int fuse_threads = 16;
  int fuse_read_ahead_kb = 1024;

  // Exec (bash in a bubblewrap sandbox inside a mount)
  std::string exec_bwrap = "/usr/bin/bwrap";
  std::string exec_shim;  // empty: mesad-exec-shim beside the mesad binary
  int exec_timeout_default_ms = 30000;
  int exec_timeout_max_ms = 600000;
  uint64_t exec_output_cap_bytes = 10ull << 20;
  int exec_max_per_uid = 8;
  int exec_max_total = 32;
  bool exec_network = false;
  uint64_t exec_pids_max = 1024;
  bool exec_pids_cgroup = false;
  int exec_kill_grace_ms = 500;
  uint64_t exec_tmpfs_max_bytes = 1ull << 30;
  int exec_warm_idle_ms = 30000;  // a pre-started sandbox unused this long is killed; 0: none

  // Lifecycle (SIGTERM) and health
  int shutdown_drain_timeout_ms = 10000;
  int shutdown_flush_timeout_ms = 3000;
  std::string metrics_listen;  // empty: no metrics listener
};

// How two configurations differ, key by key (names as in the YAML file). `live` keys take
// effect on SIGHUP; `restart` keys need a restart of mesad.
struct ConfigChanges {
  std::vector<std::string> live;
  std::vector<std::string> restart;  // "key (old -> new)"
};
ConfigChanges DiffConfig(const DaemonConfig& running, const DaemonConfig& next);
// `next` with every restart-only key put back to its value in `running`: what a reload applies.
DaemonConfig WithRestartKeysOf(const DaemonConfig& running, DaemonConfig next);
// Whether `key` takes effect on reload.
bool IsLiveKey(const std::string& key);

// The documented default configuration (the text of config/mesad.yaml).
const char* DefaultConfigYaml();

// Reads `path` into `config`; returns warnings (unknown keys).
absl::StatusOr<std::vector<std::string>> LoadConfigFile(const std::string& path, DaemonConfig& config);

}  // namespace mesa::daemon
