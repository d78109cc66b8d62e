// login, logout, whoami, status, sessions.
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

std::string Trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// One line from stdin; on a terminal, prompts on stderr without echo.
std::string ReadKeyLine() {
  bool tty = isatty(STDIN_FILENO);
  termios saved{};
  if (tty) {
    std::cerr << "Mesa API key: " << std::flush;
    if (tcgetattr(STDIN_FILENO, &saved) == 0) {
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  return Trim(line);
}

std::optional<dv1::Session> FindSession(Context& ctx, const std::string& id) {
  for (const auto& s : ctx.client().sessions().list()) {
    if (s.id() == id) return s;
  }
  return std::nullopt;
}

void PrintSession(const dv1::Session& s) {
  Fields()
      .Add("session", s.id())
      .Add("api_url", s.api_url())
      .Add("org", OrDash(s.org().empty() ? s.resolved_org() : s.org()))
      .AddIf("key_id", s.key_id())
      .Add("default", YesNo(s.is_default()))
      .Print(std::cout);
}

// Logs in, proves the key with /whoami and only then keeps the session. The new session
// becomes the default only once verified, so a bad key never displaces a working default.
int Login(Context& ctx, const ParsedArgs& args) {
  dv1::LoginRequest req;
  std::string key = args.value_or("api-key", Env("MESA_API_KEY"));
  if (key.empty()) key = ReadKeyLine();
  if (key.empty()) throw UsageError("no API key: give --api-key, set MESA_API_KEY or write it to stdin");
  req.set_api_key(key);
  req.set_api_url(args.value_or("api-url", Env("MESA_API_URL")));
  req.set_org(ctx.org.empty() ? Env("MESA_ORG") : ctx.org);
  req.set_user_agent(args.value_or("user-agent", ""));
  req.set_webhook_secret(args.value_or("webhook-secret", ""));
  req.set_make_default(false);

  auto& sessions = ctx.client().sessions();
  auto drop = [&](const std::string& id) {
    try {
      sessions.logout(id);
    } catch (const std::exception& e) {
      std::cerr << "mesa: warning: could not log out session " << id << " again: " << e.what() << "\n";
    }
  };
  // Runs `step`; on failure logs session `id` out again and rethrows.
  auto or_drop = [&](const std::string& id, const std::function<void()>& step) {
    try {
      step();
    } catch (...) {
      drop(id);
      throw;
    }
  };

  dv1::LoginResponse resp = sessions.login(req);
  or_drop(resp.session_id(), [&] { ctx.ClientFor(resp.session_id())->sessions().whoami(); });
  if (!args.has("no-default") && !resp.session().is_default()) {
    // Verified: log in again as the default (mesad has no other way to switch the default)
    // and drop the probe session.
    req.set_make_default(true);
    dv1::LoginResponse made;
    or_drop(resp.session_id(), [&] { made = sessions.login(req); });
    drop(resp.session_id());
    or_drop(made.session_id(), [&] { ctx.ClientFor(made.session_id())->sessions().whoami(); });
    resp = made;
  }
  if (auto s = FindSession(ctx, resp.session_id())) *resp.mutable_session() = *s;
  if (ctx.json) {
    PrintMessageJson(resp);
  } else {
    std::cout << "logged in\n";
    PrintSession(resp.session());
  }
  return kExitOk;
}

int Logout(Context& ctx, const ParsedArgs& args) {
  std::string id = args.positional(0, ctx.session);
  ctx.client().sessions().logout(id);
  PrintSuccess(ctx, "logged out " + (id.empty() ? std::string("the default session") : "session " + id));
  return kExitOk;
}

int Whoami(Context& ctx, const ParsedArgs&) {
  v1::Whoami who = ctx.client().sessions().whoami();
  if (ctx.json) {
    PrintMessageJson(who);
    return kExitOk;
  }
  Fields()
      .Add("org", who.org().slug())
      .AddIf("org_name", who.org().name())
      .AddIf("org_id", who.org().id())
      .Add("key_id", OrDash(who.key_id()))
      .Add("key_name", OrDash(who.key_name()))
      .Add("scopes", JoinAll(who.scopes()))
      .Print(std::cout);
  return kExitOk;
}

int Status(Context& ctx, const ParsedArgs&) {
  dv1::StatusResponse st = ctx.client().status();
  if (ctx.json) {
    PrintMessageJson(st);
    return kExitOk;
  }
  Fields()
      .Add("socket", ctx.SocketPath())
      .Add("version", st.version())
      .Add("uptime", std::to_string(st.uptime_seconds()) + "s")
      .Add("api_mode", st.api_mode())
      .Add("api_url", st.api_url())
      .Add("backend_reachable", YesNo(st.backend_reachable()))
      .Add("sessions", std::to_string(st.sessions()))
      .Add("mounts", std::to_string(st.mounts()))
      .Add("state", st.state())
      .Add("cache", HumanBytes(st.cache().bytes()) + " of " + HumanBytes(st.cache().max_bytes()) + ", " +
                        std::to_string(st.cache().entries()) + " blobs, " + std::to_string(st.cache().hits()) +
                        " hits, " + std::to_string(st.cache().misses()) + " misses")
      .Add("execs_running", std::to_string(st.execs_running()))
      .Print(std::cout);
  for (const auto& m : st.mount_states()) {
    std::cout << "mount " << m.id() << ": " << m.state() << ", " << m.path() << ", " << m.pending_paths()
              << " pending write(s)";
    if (!m.last_upload_error().empty()) std::cout << ", last upload error: " << m.last_upload_error();
    std::cout << "\n";
  }
  return kExitOk;
}

int Sessions(Context& ctx, const ParsedArgs& args) {
  auto list = ctx.client().sessions().list(args.has("all-users"));
  if (ctx.json) {
    PrintListJson(list, std::nullopt);
    return kExitOk;
  }
  Table t({"ID", "DEFAULT", "UID", "API_URL", "ORG", "KEY_ID", "CREATED"});
  for (const auto& s : list) {
    t.AddRow({s.id(), s.is_default() ? "*" : "", std::to_string(s.uid()), s.api_url(),
              OrDash(s.org().empty() ? s.resolved_org() : s.org()), OrDash(s.key_id()), s.created_at()});
  }
  t.Print(std::cout);
  return kExitOk;
}

}  // namespace

void RegisterSessionCommands(Registry& r) {
  r.AddLeaf({{"login", "",
              "log in to a Mesa API: mesad keeps the key and makes this session the default",
              {{"api-key", 0, "KEY", "the API key (default $MESA_API_KEY, else one line from stdin)"},
               {"api-url", 0, "URL", "https://.../v1 or unix:/path (default $MESA_API_URL, else mesad's)"},
               {"user-agent", 0, "UA", "appended to mesad's User-Agent"},
               {"webhook-secret", 0, "SECRET", "default secret for 'mesa webhooks verify' through mesad"},
               {"no-default", 0, "", "keep the current default session"}},
              0, 0,
              "--org (or $MESA_ORG) fixes the session's organization; without it the org comes from\n"
              "/whoami. The key is checked with /whoami before the session is kept."},
             Login});
  r.AddLeaf({{"logout", "[SESSION_ID]", "end a session (default: --session, else the default session)", {}, 0, 1, ""},
             Logout});
  r.AddLeaf({{"whoami", "", "show the organization and key of the session", {}, 0, 0, ""}, Whoami});
  r.AddLeaf({{"status", "", "show mesad's status (version, API mode, reachability)", {}, 0, 0, ""}, Status});
  r.AddLeaf({{"sessions", "", "list your sessions in mesad",
              {{"all-users", 0, "", "every user's sessions (root only)"}}, 0, 0, ""},
             Sessions});
}

}  // namespace mesa::cli
