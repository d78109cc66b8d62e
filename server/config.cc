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
                                                "max_body_bytes", "keep_alive_seconds", "fsync"};
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
  } catch (const YAML::Exception& e) {
    return rest::InternalError(path + ": " + e.what());
  }
  if (c.http.threads < 1 || c.http.threads > 1024) return rest::InternalError(path + ": threads must be 1..1024");
  return warnings;
}

}  // namespace mesa::server
