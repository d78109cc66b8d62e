#include "daemon/embedded/embedded_api.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/log.h"
#include "nlohmann/json.hpp"
#include "rest/api_error.h"
#include "rest/validate.h"

namespace mesa::daemon {

namespace fs = std::filesystem;

std::string SlugForUser(const std::string& user_name, uid_t uid) {
  std::string slug;
  for (char c : user_name) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '_' || l == '-') slug.push_back(l);
    else slug.push_back('-');
  }
  while (!slug.empty() && slug.front() == '-') slug.erase(0, 1);
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  if (slug.size() > 48) slug.resize(48);
  if (!rest::IsValidOrgSlug(slug)) slug = "uid-" + std::to_string(uid);
  return slug;
}

absl::StatusOr<std::unique_ptr<EmbeddedApi>> EmbeddedApi::Start(const std::string& dir, const std::string& access_log) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return rest::InternalError("cannot create " + dir + ": " + ec.message());
  chmod(dir.c_str(), 0700);
  auto api = std::unique_ptr<EmbeddedApi>(new EmbeddedApi());
  api->dir_ = dir;
  api->socket_path_ = dir + "/api.sock";
  auto store = server::Store::Open(dir + "/store");
  if (!store.ok()) return store.status();
  api->store_ = std::move(*store);
  api->api_ = std::make_unique<server::api::ApiService>(api->store_.get());
  server::HttpServerOptions opts;
  opts.threads = 16;
  opts.access_log = access_log;
  api->http_ = std::make_unique<server::HttpServer>(api->api_.get(), opts);
  if (auto st = api->http_->Bind("unix:" + api->socket_path_, 0600); !st.ok()) return st;
  api->thread_ = std::thread([raw = api.get()] { raw->http_->Run(); });

  std::ifstream in(dir + "/owners.json");
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_object()) {
      for (auto& [uid, slug] : j.items()) api->owners_[static_cast<uid_t>(std::stoul(uid))] = slug.get<std::string>();
    }
  }
  MESA_LOG(kInfo) << "embedded store at " << dir << " (socket " << api->socket_path_ << ")";
  return api;
}

EmbeddedApi::~EmbeddedApi() {
  if (http_) http_->Stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status EmbeddedApi::SaveOwners() {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [uid, slug] : owners_) j[std::to_string(uid)] = slug;
  std::string tmp = dir_ + "/owners.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2);
    if (!out) return rest::InternalError("cannot write " + tmp);
  }
  if (rename(tmp.c_str(), (dir_ + "/owners.json").c_str()) != 0) return rest::InternalError("cannot rename owners.json");
  return absl::OkStatus();
}

absl::StatusOr<UserCredential> EmbeddedApi::ProvisionUser(uid_t uid) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string slug;
  auto owned = owners_.find(uid);
  if (owned != owners_.end()) {
    slug = owned->second;
  } else {
    std::string name = "uid-" + std::to_string(uid);
    struct passwd pw, *result = nullptr;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result) name = result->pw_name;
    slug = SlugForUser(name, uid);
    // Another uid may already own this slug (user names that differ only in case or symbols).
    for (const auto& [other, taken] : owners_) {
      if (taken == slug) slug = slug + "-" + std::to_string(uid);
    }
  }
  auto org = store_->GetOrgBySlug(slug);
  if (!org.ok()) {
    auto created = store_->CreateOrg(slug, slug);
    if (!created.ok()) return created.status();
    org = created;
  }
  if (owners_[uid] != slug) {
    owners_[uid] = slug;
    if (auto st = SaveOwners(); !st.ok()) return st;
  }
  server::CreateKeyParams params;
  params.name = "mesad-local-uid-" + std::to_string(uid);
  params.scopes = {"admin"};
  auto key = store_->CreateApiKey(org->id, params);
  if (!key.ok()) return key.status();
  MESA_LOG(kInfo) << "embedded: org '" << slug << "' ready for uid " << uid;
  return UserCredential{slug, key->secret, key->key.id};
}

absl::Status EmbeddedApi::RevokeProvisionedKey(uid_t uid, const std::string& key_id) {
  std::string slug;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto owned = owners_.find(uid);
    if (owned == owners_.end()) return absl::OkStatus();
    slug = owned->second;
  }
  auto org = store_->GetOrgBySlug(slug);
  if (!org.ok()) return org.status();
  return store_->RevokeApiKey(org->id, key_id);
}

}  // namespace mesa::daemon
