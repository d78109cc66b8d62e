#include "daemon/config/config.h"

#include <yaml-cpp/yaml.h>

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
        "fs_backend_timeout_ms", "fuse_threads",
        "exec_bwrap", "exec_shim", "exec_timeout_default_ms", "exec_timeout_max_ms", "exec_output_cap_bytes",
        "exec_max_per_uid", "exec_max_total", "exec_network", "exec_pids_max", "exec_pids_cgroup", "exec_kill_grace_ms",
        "exec_tmpfs_max_bytes"};
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
    num("fuse_threads", c.fuse_threads);
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
  return warnings;
}

}  // namespace mesa::daemon
