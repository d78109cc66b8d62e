// The `mesa` command registry and the state shared by every command.
//
// A command group (e.g. "repos") holds subcommands ("list", "create", ...); a leaf (e.g.
// "whoami") is a group with exactly one command of the same name and no subcommand word.
// Each cmd_*.cc file registers its groups in a Register*Commands function, called by main.cc;
// adding a command means adding a spec and a handler there.
#pragma once

#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/cli/args.h"
#include "client/cli/output.h"
#include "mesa/client.h"

namespace mesa::cli {

// Exit codes, by error class (documented in `mesa --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitValidation = 3,
  kExitAuthentication = 4,
  kExitAuthorization = 5,
  kExitNotFound = 6,
  kExitConflict = 7,
  kExitRateLimit = 8,
  kExitServer = 9,
  kExitDaemonUnavailable = 10,
  kExitWebhookVerification = 11,
};

// A failure of the CLI itself (e.g. an unreadable local file): `mesa: CODE: message`, exit 1.
class CliError : public std::runtime_error {
 public:
  CliError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// Global options and the lazily connected client.
class Context {
 public:
  std::string socket;   // empty: $MESA_SOCKET, else the default path
  std::string session;  // empty: the default session
  std::string org;      // empty: the session's org
  bool json = false;

  // Takes the global options found in `args` (later ones win).
  void ApplyGlobals(const ParsedArgs& args);
  mesa::Client& client();
  // A separate client bound to `session_id` (same socket and org).
  std::unique_ptr<mesa::Client> ClientFor(const std::string& session_id) const;
  std::string SocketPath() const;

 private:
  std::unique_ptr<mesa::Client> client_;
};

using Handler = std::function<int(Context& ctx, const ParsedArgs& args)>;

struct Command {
  CommandSpec spec;
  Handler run;
};

struct Group {
  std::string name;
  std::string summary;
  std::vector<Command> commands;
  bool leaf = false;  // invoked as `mesa NAME ...`, no subcommand word
};

class Registry {
 public:
  // A group of subcommands: `mesa NAME SUB ...`. The reference stays valid.
  Group& AddGroup(const std::string& name, const std::string& summary);
  // A single command: `mesa NAME ...`; spec.name must be NAME.
  void AddLeaf(Command command);
  const Group* Find(const std::string& name) const;
  const std::deque<Group>& groups() const { return groups_; }

 private:
  std::deque<Group> groups_;  // a deque: AddGroup's references survive later additions
};

// Subcommand list of a group, for `mesa GROUP --help`.
std::string GroupUsage(const Group& group);

void RegisterSessionCommands(Registry& registry);   // login logout whoami status sessions
void RegisterRepoCommands(Registry& registry);      // repos
void RegisterBookmarkCommands(Registry& registry);  // bookmarks
void RegisterChangeCommands(Registry& registry);    // changes
void RegisterContentCommands(Registry& registry);   // content diff
void RegisterApiKeyCommands(Registry& registry);    // api-keys
void RegisterWebhookCommands(Registry& registry);   // webhook-targets webhooks
void RegisterExecCommands(Registry& registry);      // exec
void RegisterMountCommands(Registry& registry);     // mount unmount mounts mount-info
void RegisterFsCommands(Registry& registry);        // fs

// ---- helpers shared by the command files ----

// --all, --limit N, --cursor C.
std::vector<Option> ListOptions();
// The --limit of a list command (0 = server default).
int ListLimit(const ParsedArgs& args);

// One page of a list.
template <typename Item>
struct Page {
  std::vector<Item> items;
  std::optional<std::string> next_cursor;
};

// Prints one page (--cursor, --limit) or everything (--all, the client's list_all) as JSON or
// through `render(items)`. `page(cursor)` fetches one Page<Item>; `all()` returns every item.
template <typename Item, typename FetchPage, typename FetchAll, typename Render>
int RunList(Context& ctx, const ParsedArgs& args, FetchPage page, FetchAll all, Render render) {
  Page<Item> result;
  if (args.has("all")) {
    if (args.has("cursor")) throw UsageError("--all and --cursor exclude each other");
    result.items = all();
  } else {
    result = page(args.value_or("cursor", ""));
  }
  if (ctx.json) {
    PrintListJson(result.items, result.next_cursor);
    return kExitOk;
  }
  render(result.items);
  if (result.next_cursor && !result.next_cursor->empty())
    std::cerr << "more results: add --cursor " << *result.next_cursor << " (or --all)\n";
  return kExitOk;
}

// Builds Page<Item> from a List*Response `resp` whose items are `items`.
template <typename Item, typename Response, typename Repeated>
Page<Item> ToPage(const Response& resp, const Repeated& items) {
  Page<Item> p;
  p.items.assign(items.begin(), items.end());
  if (resp.has_next_cursor()) p.next_cursor = resp.next_cursor();
  return p;
}

// Reads a local file (or stdin for "-"); CliError LOCAL_FILE when it cannot.
std::string ReadLocalFile(const std::string& path);

// Prints {"success": true} or `human` for operations without a result.
void PrintSuccess(const Context& ctx, const std::string& human);

// "Name <email>" -> Signature.
mesa::v1::Signature ParseSignature(const std::string& text, const std::string& what);

// --take PATH=target|source and --resolve PATH=@FILE, in command-line order.
std::vector<Option> ResolutionOptions();
std::vector<mesa::daemon::v1::Resolution> ParseResolutions(const ParsedArgs& args);

// ---- mounts and files (cmd_mounts.cc, cmd_fs.cc) ----

// A mount id as given, or a mount point made absolute (and resolved, when it can be).
std::string MountKey(const std::string& text);
// A path inside a mount: "repo/x" -> "/repo/x", "" -> "/".
std::string FsPath(const std::string& path);
// A byte count: plain digits or with a K, M or G suffix (powers of 1024); UsageError naming
// `what` otherwise (also for 0 and overflow).
uint64_t ParseSize(const std::string& text, const std::string& what);
// 1536 -> "1.5K", 1048576 -> "1M", 12 -> "12B".
std::string HumanBytes(uint64_t bytes);

// Rethrows the ApiError being handled with the same class and code, without a repeated
// "CODE: " at the start of its message (mesad's errno errors read "ENOENT: ENOENT: /x" otherwise)
// and without a trailing ": ".
[[noreturn]] void RethrowWithoutCodePrefix(const ApiError& e);
// Runs a file RPC through RethrowWithoutCodePrefix.
template <typename F>
auto FsCall(F&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const ApiError& e) {
    RethrowWithoutCodePrefix(e);
  }
}

}  // namespace mesa::cli
