// mesa-server settings: defaults, then config/mesa-server.yaml (or --config), then flags.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/http/http_server.h"
#include "server/store/store.h"

namespace mesa::server {

struct ServerConfig {
  std::string data_dir;
  std::string listen = "127.0.0.1:8787";
  // Base URL of this server as webhook receivers should see it (repository.url of events);
  // "" = http://<listen address>.
  std::string public_url;
  HttpServerOptions http;
  StoreOptions store;
};

// Reads a YAML file into `config`. Unknown keys are returned as warnings, not errors.
absl::StatusOr<std::vector<std::string>> LoadServerConfigFile(const std::string& path, ServerConfig& config);

}  // namespace mesa::server
