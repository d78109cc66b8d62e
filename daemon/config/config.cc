#include "daemon/config/config.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <set>

#include "daemon/config/default_config.h"
#include "rest/api_error.h"

namespace mesa::daemon {

const char* DefaultConfigYaml() { return kDefaultConfigYaml; }

absl::StatusOr<std::vector<std::string>> LoadConfigFile(const std::string& path, DaemonConfig& c) {
  std::vector<std::string> warnings;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root || root.IsNull()) return warnings;
    if (!root.IsMap()) return rest::InternalError(path + ": the top level must be a mapping");
    static const std::set<std::string> known = {
        "socket", "state_dir", "cache_dir", "api_url", "log_level", "connect_timeout_ms",
        "request_timeout_ms", "max_attempts", "backoff_initial_ms", "backoff_max_ms", "rpc_threads",
        "max_message_bytes", "embedded_access_log", "runtime_dir", "cache_max_bytes",
        "fs_backend_timeout_ms", "fs_flush_idle_ms", "fs_overlay_max_bytes", "fuse_threads", "fuse_read_ahead_kb",
        "exec_bwrap", "exec_shim", "exec_timeout_default_ms", "exec_timeout_max_ms", "exec_output_cap_bytes",
        "exec_max_per_uid", "exec_max_total", "exec_network", "exec_pids_max", "exec_pids_cgroup", "exec_kill_grace_ms",
        "exec_tmpfs_max_bytes", "exec_warm_idle_ms", "shutdown_drain_timeout_ms", "shutdown_flush_timeout_ms", "metrics_listen"};
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (!known.count(key)) warnings.push_back(path + ": unknown key '" + key + "' ignored");
    }
    auto str = [&](const char* key, std::string& out) {
      if (root[key]) out = root[key].as<std::string>();
    };
    auto num = [&](const char* key, auto& out) {
      if (root[key]) out = root[key].as<std::remove_reference_t<decltype(out)>>();
    };
    str("socket", c.socket);
    str("state_dir", c.state_dir);
    str("cache_dir", c.cache_dir);
    str("api_url", c.api_url);
    str("embedded_access_log", c.embedded_access_log);
    if (root["log_level"]) {
      std::string level = root["log_level"].as<std::string>();
      if (!ParseLogLevel(level, &c.log_level)) return rest::InternalError(path + ": log_level must be error, warning, info or debug");
    }
    num("connect_timeout_ms", c.connect_timeout_ms);
    num("request_timeout_ms", c.request_timeout_ms);
    num("max_attempts", c.max_attempts);
    num("backoff_initial_ms", c.backoff_initial_ms);
    num("backoff_max_ms", c.backoff_max_ms);
    num("rpc_threads", c.rpc_threads);
    num("max_message_bytes", c.max_message_bytes);
    str("runtime_dir", c.runtime_dir);
    num("cache_max_bytes", c.cache_max_bytes);
    num("fs_backend_timeout_ms", c.fs_backend_timeout_ms);
    num("fs_flush_idle_ms", c.fs_flush_idle_ms);
    num("fs_overlay_max_bytes", c.fs_overlay_max_bytes);
    num("fuse_threads", c.fuse_threads);
    num("fuse_read_ahead_kb", c.fuse_read_ahead_kb);
    str("exec_bwrap", c.exec_bwrap);
    str("exec_shim", c.exec_shim);
    num("exec_timeout_default_ms", c.exec_timeout_default_ms);
    num("exec_timeout_max_ms", c.exec_timeout_max_ms);
    num("exec_output_cap_bytes", c.exec_output_cap_bytes);
    num("exec_max_per_uid", c.exec_max_per_uid);
    num("exec_max_total", c.exec_max_total);
    num("exec_network", c.exec_network);
    num("exec_pids_max", c.exec_pids_max);
    num("exec_pids_cgroup", c.exec_pids_cgroup);
    num("exec_kill_grace_ms", c.exec_kill_grace_ms);
    num("exec_tmpfs_max_bytes", c.exec_tmpfs_max_bytes);
    num("exec_warm_idle_ms", c.exec_warm_idle_ms);
    num("shutdown_drain_timeout_ms", c.shutdown_drain_timeout_ms);
    num("shutdown_flush_timeout_ms", c.shutdown_flush_timeout_ms);
    str("metrics_listen", c.metrics_listen);
  } catch (const YAML::Exception& e) {
    return rest::InternalError(path + ": " + e.what());
  }
  if (c.max_attempts < 1) return rest::InternalError(path + ": max_attempts must be at least 1");
  if (c.rpc_threads < 1) return rest::InternalError(path + ": rpc_threads must be at least 1");
  if (c.exec_timeout_max_ms < 1 || c.exec_timeout_default_ms < 1)
    return rest::InternalError(path + ": exec_timeout_default_ms and exec_timeout_max_ms must be at least 1");
  if (c.exec_output_cap_bytes < 2) return rest::InternalError(path + ": exec_output_cap_bytes must be at least 2");
  if (c.exec_max_per_uid < 1 || c.exec_max_total < 1)
    return rest::InternalError(path + ": exec_max_per_uid and exec_max_total must be at least 1");
  if (c.exec_kill_grace_ms < 0) return rest::InternalError(path + ": exec_kill_grace_ms must not be negative");
  if (c.exec_warm_idle_ms < 0) return rest::InternalError(path + ": exec_warm_idle_ms must not be negative (0 disables warm sandboxes)");
  if (c.shutdown_drain_timeout_ms < 0 || c.shutdown_flush_timeout_ms < 0)
    return rest::InternalError(path + ": shutdown_drain_timeout_ms and shutdown_flush_timeout_ms must not be negative");
  if (c.fs_flush_idle_ms < 1 || c.fs_overlay_max_bytes < 1)
    return rest::InternalError(path + ": fs_flush_idle_ms and fs_overlay_max_bytes must be at least 1");
  if (c.fuse_read_ahead_kb < 0 || c.fuse_read_ahead_kb > 65536)
    return rest::InternalError(path + ": fuse_read_ahead_kb must be between 0 and 65536");
  if (c.connect_timeout_ms < 1 || c.request_timeout_ms < 1 || c.fs_backend_timeout_ms < 1)
    return rest::InternalError(path + ": connect_timeout_ms, request_timeout_ms and fs_backend_timeout_ms must be at least 1");
  return warnings;
}

namespace {

std::string Text(bool v) { return v ? "true" : "false"; }
std::string Text(const std::string& v) { return "\"" + v + "\""; }
std::string Text(LogLevel v) {
  switch (v) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "?";
}
template <typename T>
std::string Text(const T& v) {
  return std::to_string(v);
}

// One key: its name, whether a reload applies it, and how to compare and copy it.
struct KeyInfo {
  const char* name;
  bool live;
  std::function<bool(const DaemonConfig&, const DaemonConfig&)> same;
  std::function<std::string(const DaemonConfig&)> text;
  std::function<void(const DaemonConfig&, DaemonConfig&)> copy;
};

template <typename T>
KeyInfo Key(const char* name, bool live, T DaemonConfig::*field) {
  return KeyInfo{name, live, [field](const DaemonConfig& a, const DaemonConfig& b) { return a.*field == b.*field; },
                 [field](const DaemonConfig& c) { return Text(c.*field); },
                 [field](const DaemonConfig& from, DaemonConfig& to) { to.*field = from.*field; }};
}

// Every key of the file. Live keys are the ones whose owners can take a new value without a
// remount or a new listener: logging, the REST client, backend deadlines, the cache cap, exec
// limits and the shutdown deadlines.
const std::vector<KeyInfo>& Keys() {
  static const std::vector<KeyInfo> keys = {
      Key("socket", false, &DaemonConfig::socket),
      Key("state_dir", false, &DaemonConfig::state_dir),
      Key("cache_dir", false, &DaemonConfig::cache_dir),
      Key("api_url", false, &DaemonConfig::api_url),
      Key("log_level", true, &DaemonConfig::log_level),
      Key("connect_timeout_ms", true, &DaemonConfig::connect_timeout_ms),
      Key("request_timeout_ms", true, &DaemonConfig::request_timeout_ms),
      Key("max_attempts", true, &DaemonConfig::max_attempts),
      Key("backoff_initial_ms", true, &DaemonConfig::backoff_initial_ms),
      Key("backoff_max_ms", true, &DaemonConfig::backoff_max_ms),
      Key("rpc_threads", false, &DaemonConfig::rpc_threads),
      Key("max_message_bytes", false, &DaemonConfig::max_message_bytes),
      Key("embedded_access_log", false, &DaemonConfig::embedded_access_log),
      Key("runtime_dir", false, &DaemonConfig::runtime_dir),
      Key("cache_max_bytes", true, &DaemonConfig::cache_max_bytes),
      Key("fs_backend_timeout_ms", true, &DaemonConfig::fs_backend_timeout_ms),
      Key("fs_flush_idle_ms", false, &DaemonConfig::fs_flush_idle_ms),
      Key("fs_overlay_max_bytes", false, &DaemonConfig::fs_overlay_max_bytes),
      Key("fuse_threads", false, &DaemonConfig::fuse_threads),
      Key("fuse_read_ahead_kb", false, &DaemonConfig::fuse_read_ahead_kb),
      Key("exec_bwrap", false, &DaemonConfig::exec_bwrap),
      Key("exec_shim", false, &DaemonConfig::exec_shim),
      Key("exec_timeout_default_ms", true, &DaemonConfig::exec_timeout_default_ms),
      Key("exec_timeout_max_ms", true, &DaemonConfig::exec_timeout_max_ms),
      Key("exec_output_cap_bytes", true, &DaemonConfig::exec_output_cap_bytes),
      Key("exec_max_per_uid", true, &DaemonConfig::exec_max_per_uid),
      Key("exec_max_total", true, &DaemonConfig::exec_max_total),
      Key("exec_network", false, &DaemonConfig::exec_network),
      Key("exec_pids_max", false, &DaemonConfig::exec_pids_max),
      Key("exec_pids_cgroup", false, &DaemonConfig::exec_pids_cgroup),
      Key("exec_kill_grace_ms", true, &DaemonConfig::exec_kill_grace_ms),
      Key("exec_tmpfs_max_bytes", false, &DaemonConfig::exec_tmpfs_max_bytes),
      Key("exec_warm_idle_ms", true, &DaemonConfig::exec_warm_idle_ms),
      Key("shutdown_drain_timeout_ms", true, &DaemonConfig::shutdown_drain_timeout_ms),
      Key("shutdown_flush_timeout_ms", true, &DaemonConfig::shutdown_flush_timeout_ms),
      Key("metrics_listen", false, &DaemonConfig::metrics_listen),
  };
  return keys;
}

}  // namespace

ConfigChanges DiffConfig(const DaemonConfig& running, const DaemonConfig& next) {
  ConfigChanges out;
  for (const auto& k : Keys()) {
    if (k.same(running, next)) continue;
    if (k.live) {
      out.live.push_back(std::string(k.name) + " (" + k.text(running) + " -> " + k.text(next) + ")");
    } else {
      out.restart.push_back(std::string(k.name) + " (" + k.text(running) + " -> " + k.text(next) + ")");
    }
  }
  return out;
}

DaemonConfig WithRestartKeysOf(const DaemonConfig& running, DaemonConfig next) {
  for (const auto& k : Keys()) {
    if (!k.live) k.copy(running, next);
  }
  return next;
}

bool IsLiveKey(const std::string& key) {
  for (const auto& k : Keys()) {
    if (key == k.name) return k.live;
  }
  return false;
}

}  // namespace mesa::daemon
