// mesa-server: a Mesa REST v1 server on a local git store.
//
//   mesa-server init  --data DIR [--org SLUG] [--name NAME]
//   mesa-server serve [--config FILE] [--data DIR] [--listen HOST:PORT|unix:PATH] [--access-log PATH|off]
//                     [--threads N] [--public-url URL]
//   mesa-server create-key --data DIR --org SLUG [--scopes read,write] [--name NAME] [--repo-ids a,b]
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/api/service.h"
#include "server/config.h"
#include "server/http/http_server.h"
#include "server/store/store.h"

namespace {

using namespace mesa::server;  // NOLINT(build/namespaces)

constexpr const char* kUsage = R"(usage:
  mesa-server init --data DIR [--org SLUG] [--name NAME]
      create the store and an organization; prints an admin API key (last line of stdout)
  mesa-server create-key --data DIR --org SLUG [--scopes read,write,admin] [--name NAME] [--repo-ids ID,...]
      print a new API key for an existing organization (last line of stdout)
  mesa-server serve [--config FILE] [--data DIR] [--listen HOST:PORT|unix:PATH]
                    [--access-log PATH|stderr|off] [--threads N] [--public-url URL]
      serve /v1 (and deliver webhooks) until SIGTERM or SIGINT
  mesa-server --version
)";

struct Args {
  std::string command;
  std::map<std::string, std::string> flags;
};

bool ParseArgs(int argc, char** argv, Args& args) {
  if (argc < 2) return false;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) return false;
    std::string key = a.substr(2), value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= argc) return false;
      value = argv[++i];
    }
    args.flags[key] = value;
  }
  return true;
}

int Fail(const absl::Status& st) {
  std::cerr << "mesa-server: " << st.message() << std::endl;
  return 1;
}

int Init(const Args& args, bool create_store_only_org) {
  auto data = args.flags.find("data");
  if (data == args.flags.end()) {
    std::cerr << "mesa-server: --data is required\n" << kUsage;
    return 2;
  }
  std::string slug = args.flags.count("org") ? args.flags.at("org") : "local";
  auto store = Store::Open(data->second);
  if (!store.ok()) return Fail(store.status());
  mesa::server::Org org;
  if (create_store_only_org) {
    auto created = (*store)->CreateOrg(slug, args.flags.count("name") ? args.flags.at("name") : slug);
    if (!created.ok()) return Fail(created.status());
    org = *created;
  } else {
    auto found = (*store)->GetOrgBySlug(slug);
    if (!found.ok()) return Fail(found.status());
    org = *found;
  }
  CreateKeyParams p;
  p.name = args.flags.count("name") && !create_store_only_org ? args.flags.at("name") : "admin";
  p.scopes = {"admin"};
  if (args.flags.count("scopes")) p.scopes = absl::StrSplit(args.flags.at("scopes"), ',');
  if (args.flags.count("repo-ids"))
    p.repo_ids = std::vector<std::string>(absl::StrSplit(args.flags.at("repo-ids"), ','));
  auto key = (*store)->CreateApiKey(org.id, p);
  if (!key.ok()) return Fail(key.status());
  std::cout << "org: " << org.slug << " (" << org.id << ")\n";
  std::cout << "key id: " << key->key.id << " scopes: " << absl::StrJoin(key->key.scopes, ",") << "\n";
  std::cout << "The API key is shown once; only its SHA-256 is stored.\n";
  std::cout << key->secret << std::endl;
  return 0;
}

int Serve(const Args& args) {
  ServerConfig config;
  if (args.flags.count("config")) {
    auto warnings = LoadServerConfigFile(args.flags.at("config"), config);
    if (!warnings.ok()) return Fail(warnings.status());
    for (const auto& w : *warnings) std::cerr << "mesa-server: warning: " << w << std::endl;
  }
  for (const auto& [k, v] : args.flags) {
    if (k == "data") config.data_dir = v;
    else if (k == "listen") config.listen = v;
    else if (k == "access-log") config.http.access_log = v;
    else if (k == "threads") config.http.threads = std::stoi(v);
    else if (k == "public-url") config.public_url = v;
    else if (k != "config") {
      std::cerr << "mesa-server: unknown flag --" << k << "\n" << kUsage;
      return 2;
    }
  }
  if (config.data_dir.empty()) {
    std::cerr << "mesa-server: --data (or `data:` in the config) is required\n";
    return 2;
  }
  // Stop on SIGTERM/SIGINT from a dedicated thread; the HTTP threads never see signals.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto store = Store::Open(config.data_dir, config.store);
  if (!store.ok()) return Fail(store.status());
  mesa::server::api::ApiService api(store->get());
  HttpServer http(&api, config.http);
  if (auto st = http.Bind(config.listen); !st.ok()) return Fail(st);
  (*store)->SetPublicUrl(!config.public_url.empty()                   ? config.public_url
                         : http.address().rfind("unix:", 0) == 0 ? "http://localhost"
                                                                  : "http://" + http.address());
  std::cerr << "mesa-server: listening on " << http.address() << " (data " << config.data_dir << ")" << std::endl;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    std::cerr << "mesa-server: " << strsignal(sig) << ", stopping" << std::endl;
    http.Stop();
  });
  http.Run();
  if (waiter.joinable()) {
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (strcmp(argv[1], "--version") == 0)) {
    std::cout << "mesa-server " << MESA_VERSION << std::endl;
    return 0;
  }
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    std::cerr << kUsage;
    return 2;
  }
  if (args.command == "init") return Init(args, true);
  if (args.command == "create-key") return Init(args, false);
  if (args.command == "serve") return Serve(args);
  std::cerr << kUsage;
  return 2;
}
