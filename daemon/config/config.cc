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
        "fs_backend_timeout_ms", "fuse_threads"};
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
  } catch (const YAML::Exception& e) {
    return rest::InternalError(path + ": " + e.what());
  }
  if (c.max_attempts < 1) return rest::InternalError(path + ": max_attempts must be at least 1");
  if (c.rpc_threads < 1) return rest::InternalError(path + ": rpc_threads must be at least 1");
  return warnings;
}

}  // namespace mesa::daemon
