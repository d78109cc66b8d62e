#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "rest/api_error.h"

namespace mesa::server {

absl::StatusOr<std::vector<std::string>> LoadServerConfigFile(const std::string& path, ServerConfig& c) {
  std::vector<std::string> warnings;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root || root.IsNull()) return warnings;
    if (!root.IsMap()) return rest::InternalError(path + ": top level must be a mapping");
    static const std::set<std::string> known = {"data", "listen", "access_log", "threads",
                                                "max_body_bytes", "keep_alive_seconds", "fsync",
                                                "public_url", "webhooks", "webhook_max_attempts",
                                                "webhook_backoff_initial_ms", "webhook_backoff_max_ms",
                                                "webhook_timeout_ms", "webhook_max_in_flight"};
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (!known.count(key)) warnings.push_back(path + ": unknown key '" + key + "' ignored");
    }
    if (root["data"]) c.data_dir = root["data"].as<std::string>();
    if (root["listen"]) c.listen = root["listen"].as<std::string>();
    if (root["access_log"]) c.http.access_log = root["access_log"].as<std::string>();
    if (root["threads"]) c.http.threads = root["threads"].as<int>();
    if (root["max_body_bytes"]) c.http.max_body_bytes = root["max_body_bytes"].as<size_t>();
    if (root["keep_alive_seconds"]) c.http.keep_alive_seconds = root["keep_alive_seconds"].as<int>();
    if (root["fsync"]) c.store.fsync = root["fsync"].as<bool>();
    if (root["public_url"]) c.public_url = root["public_url"].as<std::string>();
    auto& wh = c.http.webhooks;
    if (root["webhooks"]) wh.enabled = root["webhooks"].as<bool>();
    if (root["webhook_max_attempts"]) wh.max_attempts = root["webhook_max_attempts"].as<int>();
    if (root["webhook_backoff_initial_ms"]) wh.backoff_initial_ms = root["webhook_backoff_initial_ms"].as<int64_t>();
    if (root["webhook_backoff_max_ms"]) wh.backoff_max_ms = root["webhook_backoff_max_ms"].as<int64_t>();
    if (root["webhook_timeout_ms"]) wh.timeout_ms = root["webhook_timeout_ms"].as<int64_t>();
    if (root["webhook_max_in_flight"]) wh.max_in_flight = root["webhook_max_in_flight"].as<int>();
  } catch (const YAML::Exception& e) {
    return rest::InternalError(path + ": " + e.what());
  }
  if (c.http.threads < 1 || c.http.threads > 1024) return rest::InternalError(path + ": threads must be 1..1024");
  const auto& wh = c.http.webhooks;
  if (wh.max_attempts < 1 || wh.max_attempts > 100) return rest::InternalError(path + ": webhook_max_attempts must be 1..100");
  if (wh.backoff_initial_ms < 1 || wh.backoff_initial_ms > 86400000)
    return rest::InternalError(path + ": webhook_backoff_initial_ms must be 1..86400000");
  if (wh.backoff_max_ms < wh.backoff_initial_ms || wh.backoff_max_ms > 86400000)
    return rest::InternalError(path + ": webhook_backoff_max_ms must be webhook_backoff_initial_ms..86400000");
  if (wh.timeout_ms < 100 || wh.timeout_ms > 600000) return rest::InternalError(path + ": webhook_timeout_ms must be 100..600000");
  if (wh.max_in_flight < 1 || wh.max_in_flight > 256) return rest::InternalError(path + ": webhook_max_in_flight must be 1..256");
  return warnings;
}

}  // namespace mesa::server
