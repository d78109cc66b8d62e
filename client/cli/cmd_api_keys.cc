// api-keys list|create|revoke|update.
#include <iostream>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

std::string KeyStatus(const v1::ApiKey& k) {
  if (k.has_revoked_at()) return "revoked";
  // expires_at is RFC 3339 in UTC, so text order is time order.
  if (k.has_expires_at()) {
    time_t now = time(nullptr);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", gmtime(&now));
    if (k.expires_at() < buf) return "expired";
  }
  return "active";
}

std::string Repos(const v1::ApiKey& k) { return k.has_repo_ids() ? JoinAll(k.repo_ids().values()) : "*"; }

int List(Context& ctx, const ParsedArgs& args) {
  dv1::ListApiKeysRequest req;
  req.set_limit(ListLimit(args));
  req.set_query(args.value_or("query", ""));
  req.set_status(args.value_or("status", ""));
  req.set_scope(args.value_or("scope", ""));
  req.set_repo_id(args.value_or("repo-id", ""));
  auto& keys = ctx.client().api_keys();
  return RunList<v1::ApiKey>(
      ctx, args,
      [&](const std::string& cursor) {
        req.set_cursor(cursor);
        auto resp = keys.list(req);
        return ToPage<v1::ApiKey>(resp, resp.api_keys());
      },
      [&] { return keys.list_all(req); },
      [](const std::vector<v1::ApiKey>& items) {
        Table t({"ID", "NAME", "SCOPES", "REPOS", "STATUS", "CREATED", "LAST_USED", "EXPIRES", "TAGS"});
        for (const auto& k : items) {
          t.AddRow({k.id(), OrDash(k.name()), JoinAll(k.scopes()), Repos(k), KeyStatus(k), k.created_at(),
                    OrDash(k.last_used_at()), OrDash(k.expires_at()), FormatTags(k.tags())});
        }
        t.Print(std::cout);
      });
}

int Create(Context& ctx, const ParsedArgs& args) {
  dv1::CreateApiKeyRequest req;
  if (auto n = args.value("name")) req.set_name(*n);
  for (const auto& s : args.values("scope")) req.add_scopes(s);
  if (args.has("repo-id")) {
    for (const auto& id : args.values("repo-id")) req.mutable_repo_ids()->add_values(id);
  }
  if (auto e = args.int_value("expires-in", 1, int64_t{1} << 40)) req.set_expires_in_seconds(*e);
  for (const auto& tag : args.values("tag")) {
    auto [k, v] = SplitKeyValue(tag, "--tag");
    (*req.mutable_tags())[k] = v;
  }
  v1::ApiKey k = ctx.client().api_keys().create(req);
  if (ctx.json) {
    PrintMessageJson(k);
    return kExitOk;
  }
  Fields()
      .Add("id", k.id())
      .Add("name", OrDash(k.name()))
      .Add("scopes", JoinAll(k.scopes()))
      .Add("repos", Repos(k))
      .Add("tags", FormatTags(k.tags()))
      .Add("created_at", k.created_at())
      .AddIf("expires_at", k.expires_at())
      .Add("key", k.key())
      .Print(std::cout);
  std::cerr << "mesa: the key is shown only once; store it now\n";
  return kExitOk;
}

int Revoke(Context& ctx, const ParsedArgs& args) {
  ctx.client().api_keys().revoke(args.positional(0));
  PrintSuccess(ctx, "revoked API key " + args.positional(0));
  return kExitOk;
}

int Update(Context& ctx, const ParsedArgs& args) {
  dv1::UpdateApiKeyRequest req;
  req.set_id(args.positional(0));
  for (const auto& tag : args.values("tag")) {
    auto [k, v] = SplitKeyValue(tag, "--tag");
    (*req.mutable_set_tags())[k] = v;
  }
  for (const auto& k : args.values("remove-tag")) req.add_remove_tags(k);
  if (req.set_tags().empty() && req.remove_tags().empty()) throw UsageError("give --tag KEY=VALUE or --remove-tag KEY");
  auto tags = ctx.client().api_keys().update(req);
  if (ctx.json) {
    dv1::UpdateApiKeyResponse resp;
    for (const auto& [k, v] : tags) (*resp.mutable_tags())[k] = v;
    PrintMessageJson(resp);
  } else {
    Fields().Add("id", req.id()).Add("tags", FormatTags(tags)).Print(std::cout);
  }
  return kExitOk;
}

}  // namespace

void RegisterApiKeyCommands(Registry& r) {
  Group& g = r.AddGroup("api-keys", "list, create, revoke and tag API keys of the organization");
  std::vector<Option> list = {
      {"query", 0, "TEXT", "only keys whose name contains TEXT"},
      {"status", 0, "STATUS", "active (default) | revoked | expired | all"},
      {"scope", 0, "SCOPE", "only keys with this scope (read | write | admin)"},
      {"repo-id", 0, "REPO_ID", "only keys that can see this repository"},
  };
  for (auto& o : ListOptions()) list.push_back(o);
  g.commands.push_back({{"api-keys list", "", "list API keys", list, 0, 0,
                         "columns: ID NAME SCOPES REPOS STATUS CREATED LAST_USED EXPIRES TAGS"},
                        List});
  g.commands.push_back({{"api-keys create", "", "create an API key (the secret is printed once)",
                         {{"name", 0, "NAME", "a name"},
                          {"scope", 0, "SCOPE", "read | write | admin (default: the server's)", true},
                          {"repo-id", 0, "REPO_ID", "restrict the key to this repository", true},
                          {"expires-in", 0, "SECONDS", "expire after this many seconds"},
                          {"tag", 0, "KEY=VALUE", "a tag", true}},
                         0, 0, ""},
                        Create});
  g.commands.push_back({{"api-keys revoke", "KEY_ID", "revoke an API key", {}, 1, 1, ""}, Revoke});
  g.commands.push_back({{"api-keys update", "KEY_ID", "set or remove tags of an API key",
                         {{"tag", 0, "KEY=VALUE", "set a tag", true}, {"remove-tag", 0, "KEY", "remove a tag", true}},
                         1, 1, ""},
                        Update});
}

}  // namespace mesa::cli
