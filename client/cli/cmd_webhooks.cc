// webhook-targets list|create|get|update|delete, webhooks verify.
#include <iostream>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

std::string Repos(const v1::WebhookTarget& t) { return t.has_repo_ids() ? JoinAll(t.repo_ids().values()) : "*"; }

void PrintTarget(const Context& ctx, const v1::WebhookTarget& t) {
  if (ctx.json) {
    PrintMessageJson(t);
    return;
  }
  Fields()
      .Add("id", t.id())
      .Add("name", OrDash(t.name()))
      .Add("url", t.url())
      .Add("events", JoinAll(t.events()))
      .Add("repos", Repos(t))
      .Add("created_at", t.created_at())
      .Add("updated_at", t.updated_at())
      .AddIf("secret", t.secret())
      .Print(std::cout);
}

int List(Context& ctx, const ParsedArgs& args) {
  dv1::ListWebhookTargetsRequest req;
  req.set_limit(ListLimit(args));
  auto& targets = ctx.client().webhook_targets();
  return RunList<v1::WebhookTarget>(
      ctx, args,
      [&](const std::string& cursor) {
        req.set_cursor(cursor);
        auto resp = targets.list(req);
        return ToPage<v1::WebhookTarget>(resp, resp.webhook_targets());
      },
      [&] { return targets.list_all(req); },
      [](const std::vector<v1::WebhookTarget>& items) {
        Table t({"ID", "NAME", "URL", "EVENTS", "REPOS"});
        for (const auto& w : items) t.AddRow({w.id(), OrDash(w.name()), w.url(), JoinAll(w.events()), Repos(w)});
        t.Print(std::cout);
      });
}

int Create(Context& ctx, const ParsedArgs& args) {
  dv1::CreateWebhookTargetRequest req;
  req.set_url(args.value_or("url", ""));
  if (req.url().empty()) throw UsageError("--url is required");
  if (auto n = args.value("name")) req.set_name(*n);
  for (const auto& e : args.values("event")) req.add_events(e);
  if (args.has("repo-id")) {
    for (const auto& id : args.values("repo-id")) req.mutable_repo_ids()->add_values(id);
  }
  v1::WebhookTarget t = ctx.client().webhook_targets().create(req);
  PrintTarget(ctx, t);
  if (!ctx.json && !t.secret().empty()) std::cerr << "mesa: the secret is shown only once; store it now\n";
  return kExitOk;
}

int Get(Context& ctx, const ParsedArgs& args) {
  PrintTarget(ctx, ctx.client().webhook_targets().get(args.positional(0)));
  return kExitOk;
}

int Update(Context& ctx, const ParsedArgs& args) {
  dv1::UpdateWebhookTargetRequest req;
  req.set_id(args.positional(0));
  if (args.has("name") && args.has("clear-name")) throw UsageError("--name excludes --clear-name");
  if (auto n = args.value("name")) req.set_name(*n);
  if (args.has("clear-name")) req.set_clear_name(true);
  if (auto u = args.value("url")) req.set_url(*u);
  for (const auto& e : args.values("event")) req.add_events(e);
  if (args.has("repo-id") && args.has("org-wide")) throw UsageError("--repo-id excludes --org-wide");
  if (args.has("repo-id")) {
    for (const auto& id : args.values("repo-id")) req.mutable_repo_ids()->add_values(id);
  }
  if (args.has("org-wide")) req.set_org_wide(true);
  PrintTarget(ctx, ctx.client().webhook_targets().update(req));
  return kExitOk;
}

int Delete(Context& ctx, const ParsedArgs& args) {
  ctx.client().webhook_targets().remove(args.positional(0));
  PrintSuccess(ctx, "deleted webhook target " + args.positional(0));
  return kExitOk;
}

// With --secret: verified here (mesa::Webhooks::VerifyLocally); else by mesad with the
// session's webhook secret.
int Verify(Context& ctx, const ParsedArgs& args) {
  std::map<std::string, std::string> headers;
  for (const auto& h : args.values("header")) {
    size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0)
      throw UsageError("--header must look like 'Name: value', not '" + h + "'");
    std::string value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) value.pop_back();
    headers[h.substr(0, colon)] = value;
  }
  if (auto sig = args.value("signature")) headers["x-mesa-signature"] = *sig;
  if (headers.empty()) throw UsageError("give --header 'x-mesa-signature: t=...,sha256=...' (or --signature)");
  auto file = args.value("body-file");
  if (!file) throw UsageError("--body-file is required (- = stdin)");
  std::string body = ReadLocalFile(*file);
  v1::WebhookEvent event;
  if (auto secret = args.value("secret")) {
    event = mesa::Webhooks::VerifyLocally(*secret, headers, body);
  } else {
    event = ctx.client().webhooks().verify(body, headers);
  }
  if (ctx.json) {
    PrintMessageJson(event);
    return kExitOk;
  }
  Fields f;
  f.Add("verified", "yes")
      .Add("id", event.id())
      .Add("type", event.type())
      .Add("occurred_at", event.occurred_at())
      .Add("organization", event.organization().slug());
  if (event.has_repository()) f.Add("repository", event.repository().name());
  f.Add("data", MessageJson(event.data()).dump());
  f.Print(std::cout);
  return kExitOk;
}

}  // namespace

void RegisterWebhookCommands(Registry& r) {
  Group& t = r.AddGroup("webhook-targets", "manage the URLs that receive webhook events");
  t.commands.push_back({{"webhook-targets list", "", "list webhook targets", ListOptions(), 0, 0,
                         "columns: ID NAME URL EVENTS REPOS"},
                        List});
  t.commands.push_back({{"webhook-targets create", "", "create a webhook target (the secret is printed once)",
                         {{"url", 0, "URL", "where events are POSTed (required)"},
                          {"name", 0, "NAME", "a name"},
                          {"event", 0, "TYPE", "an event type, e.g. change.created (none: all)", true},
                          {"repo-id", 0, "REPO_ID", "only events of this repository (none: org-wide)", true}},
                         0, 0, ""},
                        Create});
  t.commands.push_back({{"webhook-targets get", "TARGET_ID", "show a webhook target", {}, 1, 1, ""}, Get});
  t.commands.push_back({{"webhook-targets update", "TARGET_ID", "change a webhook target",
                         {{"name", 0, "NAME", "rename"},
                          {"clear-name", 0, "", "remove the name"},
                          {"url", 0, "URL", "new URL"},
                          {"event", 0, "TYPE", "replace the event types", true},
                          {"repo-id", 0, "REPO_ID", "replace the repositories", true},
                          {"org-wide", 0, "", "every repository of the org"}},
                         1, 1, ""},
                        Update});
  t.commands.push_back({{"webhook-targets delete", "TARGET_ID", "delete a webhook target", {}, 1, 1, ""}, Delete});

  Group& w = r.AddGroup("webhooks", "verify webhook deliveries");
  w.commands.push_back({{"webhooks verify", "", "verify a delivery's signature and print its event",
                         {{"secret", 0, "SECRET", "verify locally with this secret (else mesad, with the session's)"},
                          {"header", 0, "'NAME: VALUE'", "a request header; x-mesa-signature is the one used", true},
                          {"signature", 0, "VALUE", "shorthand for --header 'x-mesa-signature: VALUE'"},
                          {"body-file", 0, "FILE", "the raw request body (- = stdin)"}},
                         0, 0,
                         "A bad or stale signature (older than 300 s) fails with exit code 11.\n"
                         "example: mesa webhooks verify --secret whsec_... \\\n"
                         "           --header 'x-mesa-signature: t=1700000000,sha256=...' --body-file body.json"},
                        Verify});
}

}  // namespace mesa::cli
