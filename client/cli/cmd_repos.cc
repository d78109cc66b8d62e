// repos list|create|get|update|delete|tags.
#include <iostream>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

void PrintRepo(const Context& ctx, const v1::Repo& r) {
  if (ctx.json) {
    PrintMessageJson(r);
    return;
  }
  Fields f;
  f.Add("name", r.name())
      .Add("id", r.id())
      .Add("org", r.org())
      .Add("default_bookmark", r.default_bookmark())
      .Add("head_change_id", r.head_change_id())
      .Add("created_at", r.created_at())
      .Add("tags", FormatTags(r.tags()));
  if (r.has_upstream()) {
    f.Add("upstream", r.upstream().url());
    f.AddIf("upstream_auth", r.upstream().auth_kind());
    if (r.upstream().has_latest_sync())
      f.Add("upstream_sync", r.upstream().latest_sync().status() + " (" + r.upstream().latest_sync().direction() + ")");
  }
  f.Print(std::cout);
}

std::vector<Option> UpstreamOptions() {
  return {
      {"upstream-url", 0, "URL", "git URL of an upstream to sync with"},
      {"upstream-token", 0, "TOKEN", "upstream token credential"},
      {"upstream-token-username", 0, "USER", "user name sent with --upstream-token"},
      {"upstream-username", 0, "USER", "upstream user name (with --upstream-password)"},
      {"upstream-password", 0, "PASSWORD", "upstream password"},
  };
}

// An UpstreamInput from the --upstream-* options, or nullopt when none was given.
std::optional<dv1::UpstreamInput> ParseUpstream(const ParsedArgs& args) {
  bool any = args.has("upstream-url") || args.has("upstream-token") || args.has("upstream-username") ||
             args.has("upstream-password") || args.has("upstream-token-username");
  if (!any) return std::nullopt;
  if (!args.has("upstream-url")) throw UsageError("the --upstream-* options need --upstream-url");
  dv1::UpstreamInput up;
  up.set_url(*args.value("upstream-url"));
  if (args.has("upstream-token")) {
    if (args.has("upstream-username") || args.has("upstream-password"))
      throw UsageError("--upstream-token excludes --upstream-username/--upstream-password");
    up.mutable_token()->set_token(*args.value("upstream-token"));
    up.mutable_token()->set_token_username(args.value_or("upstream-token-username", ""));
  } else if (args.has("upstream-username") || args.has("upstream-password")) {
    up.mutable_username_password()->set_username(args.value_or("upstream-username", ""));
    up.mutable_username_password()->set_password(args.value_or("upstream-password", ""));
  }
  return up;
}

int List(Context& ctx, const ParsedArgs& args) {
  dv1::ListReposRequest req;
  req.set_limit(ListLimit(args));
  req.set_tags(args.value_or("tags", ""));
  auto& repos = ctx.client().repos();
  return RunList<v1::Repo>(
      ctx, args,
      [&](const std::string& cursor) {
        req.set_cursor(cursor);
        auto resp = repos.list(req);
        return ToPage<v1::Repo>(resp, resp.repos());
      },
      [&] { return repos.list_all(req); },
      [](const std::vector<v1::Repo>& items) {
        Table t({"NAME", "ID", "DEFAULT_BOOKMARK", "HEAD_CHANGE", "TAGS"});
        for (const auto& r : items)
          t.AddRow({r.name(), r.id(), r.default_bookmark(), r.head_change_id(), FormatTags(r.tags())});
        t.Print(std::cout);
      });
}

int Create(Context& ctx, const ParsedArgs& args) {
  dv1::CreateRepoRequest req;
  req.set_name(args.positional(0));
  req.set_default_bookmark(args.value_or("default-bookmark", ""));
  for (const auto& tag : args.values("tag")) {
    auto [k, v] = SplitKeyValue(tag, "--tag");
    (*req.mutable_tags())[k] = v;
  }
  if (auto up = ParseUpstream(args)) *req.mutable_upstream() = *up;
  PrintRepo(ctx, ctx.client().repos().create(req));
  return kExitOk;
}

int Get(Context& ctx, const ParsedArgs& args) {
  PrintRepo(ctx, ctx.client().repos().get(args.positional(0)));
  return kExitOk;
}

int Update(Context& ctx, const ParsedArgs& args) {
  dv1::UpdateRepoRequest req;
  req.set_repo(args.positional(0));
  if (auto v = args.value("name")) req.set_name(*v);
  if (auto v = args.value("default-bookmark")) req.set_default_bookmark(*v);
  for (const auto& tag : args.values("tag")) {
    auto [k, v] = SplitKeyValue(tag, "--tag");
    (*req.mutable_set_tags())[k] = v;
  }
  for (const auto& k : args.values("remove-tag")) req.add_remove_tags(k);
  auto up = ParseUpstream(args);
  if (up && args.has("remove-upstream")) throw UsageError("--remove-upstream excludes --upstream-url");
  if (up) *req.mutable_set_upstream() = *up;
  if (args.has("remove-upstream")) req.set_remove_upstream(true);
  PrintRepo(ctx, ctx.client().repos().update(req));
  return kExitOk;
}

int Delete(Context& ctx, const ParsedArgs& args) {
  std::string repo = args.positional(0);
  ctx.client().repos().remove(repo);
  PrintSuccess(ctx, "deleted repository " + repo);
  return kExitOk;
}

// Sets or removes one tag on many repositories (names are resolved to ids).
int Tags(Context& ctx, const ParsedArgs& args) {
  dv1::BulkUpdateRepoTagsRequest req;
  if (args.has("set") == args.has("remove")) throw UsageError("give exactly one of --set KEY=VALUE and --remove KEY");
  if (args.has("set")) {
    auto [k, v] = SplitKeyValue(*args.value("set"), "--set");
    req.set_action("set");
    req.set_key(k);
    req.set_value(v);
  } else {
    req.set_action("remove");
    req.set_key(*args.value("remove"));
  }
  auto& repos = ctx.client().repos();
  for (const auto& name : args.positionals()) req.add_repo_ids(repos.get(name).id());
  for (const auto& id : args.values("id")) req.add_repo_ids(id);
  if (req.repo_ids_size() == 0) throw UsageError("name at least one repository (REPO or --id ID)");
  int64_t updated = repos.bulk_update_tags(req);
  if (ctx.json) {
    dv1::BulkUpdateRepoTagsResponse resp;
    resp.set_updated(updated);
    PrintMessageJson(resp);
  } else {
    std::cout << "updated " << updated << " repositor" << (updated == 1 ? "y" : "ies") << "\n";
  }
  return kExitOk;
}

std::vector<Option> Concat(std::vector<Option> a, const std::vector<Option>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

void RegisterRepoCommands(Registry& r) {
  Group& g = r.AddGroup("repos", "list, create, inspect, update and delete repositories");
  g.commands.push_back({{"repos list", "", "list the organization's repositories",
                         Concat({{"tags", 0, "K:V,...", "only repositories with all these tags"}}, ListOptions()), 0, 0,
                         "columns: NAME ID DEFAULT_BOOKMARK HEAD_CHANGE TAGS"},
                        List});
  g.commands.push_back({{"repos create", "[NAME]", "create a repository (no NAME: a generated one)",
                         Concat({{"default-bookmark", 0, "NAME", "the default bookmark (default: main)"},
                                 {"tag", 0, "KEY=VALUE", "a tag", true}},
                                UpstreamOptions()),
                         0, 1, ""},
                        Create});
  g.commands.push_back({{"repos get", "REPO", "show a repository", {}, 1, 1, ""}, Get});
  g.commands.push_back({{"repos update", "REPO", "rename a repository, change its default bookmark, tags or upstream",
                         Concat({{"name", 0, "NEW_NAME", "rename"},
                                 {"default-bookmark", 0, "NAME", "new default bookmark"},
                                 {"tag", 0, "KEY=VALUE", "set a tag", true},
                                 {"remove-tag", 0, "KEY", "remove a tag", true},
                                 {"remove-upstream", 0, "", "remove the upstream"}},
                                UpstreamOptions()),
                         1, 1, ""},
                        Update});
  g.commands.push_back({{"repos delete", "REPO", "delete a repository", {}, 1, 1, ""}, Delete});
  g.commands.push_back({{"repos tags", "[REPO...]", "set or remove one tag on many repositories at once",
                         {{"set", 0, "KEY=VALUE", "set this tag"},
                          {"remove", 0, "KEY", "remove this tag"},
                          {"id", 0, "REPO_ID", "a repository by id", true}},
                         0, kVariadic, "example: mesa repos tags --set team=infra api web"},
                        Tags});
}

}  // namespace mesa::cli
