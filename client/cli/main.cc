// mesa: the command-line client of mesad. Dispatches `mesa [global options] COMMAND ...` to
// the registered commands and maps errors to exit codes (see kExitCodes).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

constexpr const char* kExitCodes = R"(exit codes:
  0   ok
  1   other error
  2   usage error
  3   ValidationError (invalid input, HTTP 400/406/413/422)
  4   AuthenticationError (HTTP 401, no or bad credential)
  5   AuthorizationError (HTTP 403)
  6   NotFoundError (HTTP 404)
  7   ConflictError (HTTP 409, e.g. MERGE_CONFLICT, REPO_ALREADY_EXISTS)
  8   RateLimitError (HTTP 429)
  9   ServerError (HTTP 5xx)
  10  DaemonUnavailableError (mesad not reachable)
  11  WebhookVerificationError
Errors are printed to stderr as 'mesa: CODE: message'.
)";

Registry BuildRegistry() {
  Registry r;
  RegisterSessionCommands(r);
  RegisterRepoCommands(r);
  RegisterBookmarkCommands(r);
  RegisterChangeCommands(r);
  RegisterContentCommands(r);
  RegisterApiKeyCommands(r);
  RegisterWebhookCommands(r);
  RegisterExecCommands(r);
  RegisterMountCommands(r);
  RegisterFsCommands(r);
  return r;
}

std::string TopUsage(const Registry& registry) {
  std::string out =
      "usage: mesa [global options] COMMAND [args]\n\n"
      "The command-line client of mesad: Mesa repositories, bookmarks, changes and content\n"
      "through the daemon's session (mesa login), or the embedded local store.\n\ncommands:\n";
  size_t width = 0;
  for (const auto& g : registry.groups()) width = std::max(width, g.name.size());
  for (const auto& g : registry.groups()) {
    out += "  " + g.name + std::string(width - g.name.size() + 2, ' ') + g.summary + "\n";
  }
  std::vector<Option> globals = GlobalOptions();
  globals.push_back({"help", 'h', "", "show help (also after any command)"});
  globals.push_back({"version", 0, "", "print the version"});
  out += "\nglobal options (before or after the command):\n" + FormatOptions(globals);
  out += "\n";
  out += kExitCodes;
  out += "\nRun 'mesa COMMAND --help' for a command's usage.\n";
  return out;
}

void PrintApiError(const ApiError& e) {
  std::cerr << "mesa: " << e.code() << ": " << e.what();
  if (e.http_status() != 0) std::cerr << " (HTTP " << e.http_status() << ")";
  if (!e.trace_id().empty()) std::cerr << " [trace " << e.trace_id() << "]";
  std::cerr << "\n";
  const auto& d = e.details();
  if (!d.is_object()) return;
  // Field errors of a VALIDATION_ERROR and the paths of a MERGE_CONFLICT.
  if (d.contains("errors") && d["errors"].is_array()) {
    const std::string message = e.what();
    for (const auto& fe : d["errors"]) {
      if (!fe.is_object()) continue;
      std::string line = fe.value("field", std::string("?")) + ": " + fe.value("message", std::string());
      if (message.find(line) == std::string::npos) std::cerr << "  " << line << "\n";
    }
  }
  if (d.contains("conflict_paths") && d["conflict_paths"].is_array()) {
    for (const auto& p : d["conflict_paths"]) {
      if (p.is_string()) std::cerr << "  conflict: " << p.get<std::string>() << "\n";
    }
  }
}

int ExitFor(const ApiError& e) {
  if (dynamic_cast<const ValidationError*>(&e)) return kExitValidation;
  if (dynamic_cast<const AuthenticationError*>(&e)) return kExitAuthentication;
  if (dynamic_cast<const AuthorizationError*>(&e)) return kExitAuthorization;
  if (dynamic_cast<const NotFoundError*>(&e)) return kExitNotFound;
  if (dynamic_cast<const ConflictError*>(&e)) return kExitConflict;
  if (dynamic_cast<const RateLimitError*>(&e)) return kExitRateLimit;
  if (dynamic_cast<const ServerError*>(&e)) return kExitServer;
  return kExitError;
}

int UsageFailure(const std::string& message, const std::string& hint_command) {
  std::cerr << "mesa: USAGE: " << message << "\n";
  std::cerr << "Run 'mesa " << (hint_command.empty() ? "" : hint_command + " ") << "--help' for usage.\n";
  return kExitUsage;
}

int Run(const std::vector<std::string>& argv) {
  Registry registry = BuildRegistry();
  // Never destroyed: main() ends the process with _exit (see there), so the gRPC channel is not
  // torn down either.
  Context& ctx = *new Context;
  size_t i = 0;
  std::string hint;
  try {
    if (!argv.empty() && argv[0] == "--version") {
      std::cout << "mesa " << MESA_VERSION << "\n";
      return kExitOk;
    }
    bool help = false;
    ctx.ApplyGlobals(ParseLeadingGlobals(argv, &i, &help));
    if (help) {
      std::cout << TopUsage(registry);
      return kExitOk;
    }
    if (i >= argv.size()) {
      std::cerr << TopUsage(registry);
      return kExitUsage;
    }
    std::string name = argv[i++];
    if (name == "help") {
      // mesa help [COMMAND [SUBCOMMAND]]
      if (i >= argv.size()) {
        std::cout << TopUsage(registry);
        return kExitOk;
      }
      const Group* g = registry.Find(argv[i]);
      if (!g) return UsageFailure("unknown command '" + argv[i] + "'", "");
      if (!g->leaf && i + 1 < argv.size()) {
        for (const auto& c : g->commands) {
          if (c.spec.name == g->name + " " + argv[i + 1]) {
            std::cout << Usage(c.spec);
            return kExitOk;
          }
        }
      }
      std::cout << GroupUsage(*g);
      return kExitOk;
    }
    const Group* group = registry.Find(name);
    if (!group) return UsageFailure("unknown command '" + name + "'", "");
    const Command* command = nullptr;
    if (group->leaf) {
      command = &group->commands.front();
    } else {
      // Global options may also sit between the group and its subcommand.
      ctx.ApplyGlobals(ParseLeadingGlobals(argv, &i, &help));
      if (help) {
        std::cout << GroupUsage(*group);
        return kExitOk;
      }
      if (i >= argv.size()) {
        std::cerr << GroupUsage(*group);
        return kExitUsage;
      }
      std::string sub = argv[i++];
      for (const auto& c : group->commands) {
        if (c.spec.name == group->name + " " + sub) command = &c;
      }
      if (!command) return UsageFailure("unknown command '" + group->name + " " + sub + "'", group->name);
    }
    hint = command->spec.name;
    ParsedArgs args = Parse(command->spec, std::vector<std::string>(argv.begin() + static_cast<long>(i), argv.end()));
    ctx.ApplyGlobals(args);
    return command->run(ctx, args);
  } catch (const HelpRequested& h) {
    std::cout << h.text;
    return kExitOk;
  } catch (const UsageError& e) {
    return UsageFailure(e.what(), hint);
  } catch (const ApiError& e) {
    PrintApiError(e);
    return ExitFor(e);
  } catch (const WebhookVerificationError& e) {
    std::cerr << "mesa: " << e.code() << ": " << e.what() << "\n";
    return kExitWebhookVerification;
  } catch (const DaemonUnavailableError& e) {
    std::cerr << "mesa: " << e.code() << ": " << e.what() << " (socket " << ctx.SocketPath() << ")\n";
    return kExitDaemonUnavailable;
  } catch (const MesaError& e) {
    std::cerr << "mesa: " << e.code() << ": " << e.what() << "\n";
    return kExitError;
  } catch (const CliError& e) {
    std::cerr << "mesa: " << e.code() << ": " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "mesa: ERROR: " << e.what() << "\n";
    return kExitError;
  }
}

}  // namespace
}  // namespace mesa::cli

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  int code = mesa::cli::Run(args);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  // Skips the exit-time teardown of gRPC, protobuf and the channel (its threads are joined):
  // milliseconds per invocation for a process that is about to vanish anyway.
  _exit(code);
}
