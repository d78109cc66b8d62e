// fs: the files of a mount through mesad's file RPCs (no kernel mount needed by the caller).
//
// Every subcommand takes MOUNT (a mount id or mount point) and a PATH inside the mount
// ("/my-repo/src/main.py"; the leading '/' may be left out). To add one (e.g. write, rm,
// ...): write a handler using FsTarget/FsCall below and
// add its spec in the matching Add*Commands function (or a new one) called by
// RegisterFsCommands. Errors of the file RPCs carry errno names as codes (ENOENT, EISDIR,
// ENOTDIR, EROFS, EACCES, ...) and map to exit codes by class like every other error.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <limits>
#include <memory>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;

// Read in bounded pieces: large files stream to stdout instead of arriving as one message.
constexpr uint64_t kReadChunk = 4 << 20;

struct FsTarget {
  std::string mount;  // id or absolute mount point
  std::string path;   // absolute inside the mount
};

// MOUNT [PATH]: positionals 0 and 1.
FsTarget Target(const ParsedArgs& args) { return {MountKey(args.positional(0)), FsPath(args.positional(1, "/"))}; }

std::string PermBits(uint32_t mode) {
  char buf[8];
  snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

std::string FormatTime(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

int Cat(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  auto& files = ctx.client().files();
  uint64_t offset = static_cast<uint64_t>(args.int_value("offset", 0, std::numeric_limits<int64_t>::max()).value_or(0));
  uint64_t remaining = std::numeric_limits<uint64_t>::max();
  if (auto length = args.int_value("length", 0, std::numeric_limits<int64_t>::max()))
    remaining = static_cast<uint64_t>(*length);
  std::string collected;  // --json only
  do {
    uint64_t want = std::min(kReadChunk, remaining);
    // A length of 0 means "to the end" on the wire: --length 0 reads one byte (so that a missing
    // path or a directory still fails) and prints nothing.
    std::string data = FsCall([&] { return files.read(t.mount, t.path, offset, want ? want : 1); });
    if (data.size() > want) data.resize(want);
    offset += data.size();
    remaining -= data.size();
    if (ctx.json) {
      collected += data;
    } else {
      WriteRaw(data);
    }
    if (want == 0 || data.size() < want) break;
  } while (remaining > 0);
  if (ctx.json) {
    dv1::ReadResponse r;
    r.set_size(FsCall([&] { return files.stat(t.mount, t.path); }).size());
    r.set_data(std::move(collected));
    PrintMessageJson(r);
  }
  return kExitOk;
}

int Ls(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  std::vector<dv1::FileStat> entries = FsCall([&] { return ctx.client().files().readdir(t.mount, t.path); });
  if (ctx.json) {
    PrintListJson(entries, std::nullopt);
    return kExitOk;
  }
  Table table({"MODE", "TYPE", "SIZE", "NAME"});
  for (const auto& e : entries)
    table.AddRow({PermBits(e.mode()), e.type(), e.type() == "dir" ? "-" : std::to_string(e.size()), e.path()});
  table.Print(std::cout);
  return kExitOk;
}

int Stat(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  dv1::FileStat st = FsCall([&] { return ctx.client().files().stat(t.mount, t.path); });
  if (ctx.json) {
    PrintMessageJson(st);
    return kExitOk;
  }
  Fields()
      .Add("path", st.path())
      .Add("type", st.type())
      .Add("mode", PermBits(st.mode()))
      .Add("size", std::to_string(st.size()))
      .Add("ino", std::to_string(st.ino()))
      .Add("mtime", FormatTime(st.mtime()))
      .Print(std::cout);
  return kExitOk;
}

// Exit 0 when the path exists, 1 when it does not (like test -e); errors keep their classes.
int Exists(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  bool exists = FsCall([&] { return ctx.client().files().exists(t.mount, t.path); });
  if (ctx.json) {
    PrintJson({{"exists", exists}});
  } else {
    std::cout << (exists ? "true" : "false") << "\n";
  }
  return exists ? kExitOk : kExitError;
}

int ReadLink(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  std::string target = FsCall([&] { return ctx.client().files().readlink(t.mount, t.path); });
  if (ctx.json) {
    PrintJson({{"target", target}});
  } else {
    std::cout << target << "\n";
  }
  return kExitOk;
}

void AddReadCommands(Group& g) {
  g.commands.push_back({{"fs cat", "MOUNT PATH", "print a file's bytes exactly",
                         {{"offset", 0, "N", "start at byte N (default 0)"},
                          {"length", 0, "N", "at most N bytes (default: to the end)"}},
                         2, 2,
                         "Writes the raw bytes to stdout. mesad does not follow symlinks in PATH (use\n"
                         "fs readlink). --json prints {\"data\": base64, \"size\": the whole file's size}.\n"
                         "example: mesa fs cat mnt_abc123 /my-repo/README.md --offset 100 --length 50"},
                        Cat});
  g.commands.push_back({{"fs ls", "MOUNT [PATH]", "list a directory (default: the mount's root, one entry per repo)",
                         {}, 1, 2,
                         "columns: MODE (permission bits, octal) TYPE (file, dir, symlink) SIZE NAME.\n"
                         "--json: {\"items\": [stat objects, path = entry name], \"next_cursor\": null}."},
                        Ls});
  g.commands.push_back({{"fs stat", "MOUNT PATH", "show a path's type, mode, size, inode and mtime", {}, 2, 2,
                         "Does not follow a final symlink. mode is the permission bits in octal (e.g. 0755);\n"
                         "--json prints the stat object with the full st_mode."},
                        Stat});
  g.commands.push_back({{"fs exists", "MOUNT PATH", "print true or false; exit 0 when PATH exists, 1 when not", {},
                         2, 2, "Other failures (e.g. MOUNT_NOT_FOUND, exit 6) keep their usual exit codes."},
                        Exists});
  g.commands.push_back({{"fs readlink", "MOUNT PATH", "print a symlink's target", {}, 2, 2,
                         "A path that is not a symlink fails with EINVAL (exit 3)."},
                        ReadLink});
}

// ---- writes (rw repos; EROFS on ro ones) ----

int Write(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  if (args.has("data") && args.has("from")) throw UsageError("--data and --from exclude each other");
  if (args.has("append") && args.has("offset")) throw UsageError("--append and --offset exclude each other");
  std::string data = args.has("data") ? args.value_or("data", "") : ReadLocalFile(args.value_or("from", "-"));
  auto& files = ctx.client().files();
  uint64_t size = 0;
  if (args.has("append")) {
    size = FsCall([&] { return files.append(t.mount, t.path, data); });
  } else if (auto offset = args.int_value("offset", 0, std::numeric_limits<int64_t>::max())) {
    size = FsCall([&] { return files.write_at(t.mount, t.path, data, static_cast<uint64_t>(*offset)); });
  } else {
    size = FsCall([&] { return files.write(t.mount, t.path, data); });
  }
  if (ctx.json) {
    PrintJson({{"path", t.path}, {"size", size}});
  } else {
    std::cout << "wrote " << data.size() << " bytes to " << t.path << " (size " << size << ")\n";
  }
  return kExitOk;
}

int Remove(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  FsCall([&] { ctx.client().files().remove(t.mount, t.path, args.has("recursive"), args.has("force")); });
  PrintSuccess(ctx, "removed " + t.path);
  return kExitOk;
}

int Mkdir(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  dv1::FileStat st = FsCall([&] { return ctx.client().files().mkdir(t.mount, t.path, args.has("parents")); });
  if (ctx.json) {
    PrintMessageJson(st);
  } else {
    std::cout << "created " << t.path << "\n";
  }
  return kExitOk;
}

int Move(Context& ctx, const ParsedArgs& args) {
  std::string mount = MountKey(args.positional(0));
  std::string from = FsPath(args.positional(1)), to = FsPath(args.positional(2));
  FsCall([&] { ctx.client().files().rename(mount, from, to); });
  PrintSuccess(ctx, "moved " + from + " to " + to);
  return kExitOk;
}

// MODE: octal (0755, 644) or +x / -x.
int Chmod(Context& ctx, const ParsedArgs& args) {
  FsTarget t = Target(args);
  const std::string text = args.positional(2);
  uint32_t mode = 0;
  if (text == "+x" || text == "-x") {
    uint32_t current = FsCall([&] { return ctx.client().files().stat(t.mount, t.path); }).mode();
    mode = text == "+x" ? (current | 0111) : (current & ~0111u);
  } else {
    size_t used = 0;
    unsigned long parsed = 0;
    try {
      parsed = std::stoul(text, &used, 8);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || parsed > 07777) throw UsageError("MODE must be octal (e.g. 755) or +x / -x");
    mode = static_cast<uint32_t>(parsed);
  }
  dv1::FileStat st = FsCall([&] { return ctx.client().files().chmod(t.mount, t.path, mode); });
  if (ctx.json) {
    PrintMessageJson(st);
  } else {
    std::cout << t.path << " " << PermBits(st.mode()) << "\n";
  }
  return kExitOk;
}

int Flush(Context& ctx, const ParsedArgs& args) {
  std::string mount = MountKey(args.positional(0));
  std::string repo = args.positional(1, "");
  int timeout = static_cast<int>(args.int_value("timeout-ms", 1, 3'600'000).value_or(0));
  FsCall([&] { ctx.client().workspace().flush(mount, repo, timeout); });
  PrintSuccess(ctx, repo.empty() ? "flushed every repo of the mount" : "flushed " + repo);
  return kExitOk;
}

// ---- the working change: fs changes / fs bookmarks ----

void PrintRef(const Context& ctx, const dv1::ChangeRef& ref) {
  if (ctx.json) {
    PrintMessageJson(ref);
    return;
  }
  Fields().Add("change_id", ref.change_id()).Add("commit_oid", ref.commit_oid()).Print(std::cout);
}

int Changes(Context& ctx, const ParsedArgs& args) {
  const std::string action = args.positional(0);
  std::string mount = MountKey(args.positional(1));
  std::string repo = args.positional(2);
  auto& ws = ctx.client().workspace();
  if (args.has("bookmark") && args.has("change")) throw UsageError("--bookmark and --change exclude each other");
  if (action == "new") {
    std::optional<std::string> message;
    if (args.has("message")) message = args.value_or("message", "");
    PrintRef(ctx, FsCall([&] {
               return ws.changes_new(mount, repo, args.value_or("bookmark", ""), args.value_or("change", ""), message);
             }));
  } else if (action == "edit") {
    if (!args.has("bookmark") && !args.has("change")) throw UsageError("fs changes edit needs --change or --bookmark");
    PrintRef(ctx, FsCall([&] { return ws.changes_edit(mount, repo, args.value_or("change", ""), args.value_or("bookmark", "")); }));
  } else if (action == "current") {
    PrintRef(ctx, FsCall([&] { return ws.changes_current(mount, repo); }));
  } else if (action == "list") {
    int limit = static_cast<int>(args.int_value("limit", 1, 1000).value_or(50));
    auto changes = FsCall([&] { return ws.changes_list(mount, repo, limit); });
    if (ctx.json) {
      PrintListJson(changes, std::nullopt);
      return kExitOk;
    }
    Table table({"CHANGE", "COMMIT", "MESSAGE"});
    for (const auto& c : changes) {
      std::string message = c.message().substr(0, c.message().find('\n'));
      table.AddRow({c.id(), c.current_commit_oid().substr(0, 12), message});
    }
    table.Print(std::cout);
  } else {
    throw UsageError("unknown action '" + action + "' (new, edit, list or current)");
  }
  return kExitOk;
}

int Bookmarks(Context& ctx, const ParsedArgs& args) {
  const std::string action = args.positional(0);
  std::string mount = MountKey(args.positional(1));
  std::string repo = args.positional(2);
  auto& ws = ctx.client().workspace();
  auto print = [&](const v1::Bookmark& b) {
    if (ctx.json) {
      PrintMessageJson(b);
    } else {
      Fields().Add("name", b.name()).Add("change_id", b.change_id()).Print(std::cout);
    }
  };
  if (action == "create" || action == "move") {
    if (args.positional(3, "").empty()) throw UsageError("fs bookmarks " + action + " needs NAME");
    std::string name = args.positional(3);
    if (action == "create") {
      print(FsCall([&] { return ws.bookmarks_create(mount, repo, name); }));
    } else {
      if (!args.has("change")) throw UsageError("fs bookmarks move needs --change");
      print(FsCall([&] { return ws.bookmarks_move(mount, repo, name, args.value_or("change", "")); }));
    }
  } else if (action == "list") {
    auto bookmarks = FsCall([&] { return ws.bookmarks_list(mount, repo); });
    if (ctx.json) {
      PrintListJson(bookmarks, std::nullopt);
      return kExitOk;
    }
    Table table({"NAME", "CHANGE"});
    for (const auto& b : bookmarks) table.AddRow({b.name(), b.change_id()});
    table.Print(std::cout);
  } else {
    throw UsageError("unknown action '" + action + "' (create, move or list)");
  }
  return kExitOk;
}

void AddWriteCommands(Group& g) {
  g.commands.push_back({{"fs write", "MOUNT PATH", "write a file (from --data, --from FILE, or stdin)",
                         {{"data", 0, "TEXT", "the content"},
                          {"from", 0, "FILE", "read the content from a local file ('-': stdin, the default)"},
                          {"append", 0, "", "append instead of replacing"},
                          {"offset", 0, "N", "write at byte N without truncating"}},
                         2, 2,
                         "Creates the file if needed (its directory must exist). The write is in mesad's\n"
                         "overlay when this returns; `mesa fs flush` waits until the server has it.\n"
                         "example: echo hi | mesa fs write mnt_abc123 /my-repo/notes.txt"},
                        Write});
  g.commands.push_back({{"fs rm", "MOUNT PATH", "remove a file or directory",
                         {{"recursive", 'r', "", "remove a directory and everything in it"},
                          {"force", 'f', "", "a missing path is no error"}},
                         2, 2, ""},
                        Remove});
  g.commands.push_back({{"fs mkdir", "MOUNT PATH", "create a directory",
                         {{"parents", 'p', "", "create missing parents; an existing directory is no error"}}, 2, 2,
                         "Git keeps no empty directories: one reaches the server with its first file."},
                        Mkdir});
  g.commands.push_back({{"fs mv", "MOUNT FROM TO", "rename a file or directory within a repo", {}, 3, 3,
                         "Across repos fails with EXDEV (exit 1); an existing file at TO is replaced."},
                        Move});
  g.commands.push_back({{"fs chmod", "MOUNT PATH MODE", "set or clear the executable bit (octal, +x or -x)", {}, 3, 3,
                         "Git stores 100644 or 100755: only the owner's x bit matters."},
                        Chmod});
  g.commands.push_back({{"fs flush", "MOUNT [REPO]", "upload pending writes and wait for the server",
                         {{"timeout-ms", 0, "MS", "give up after MS (default 30000)"}}, 1, 2, ""},
                        Flush});
  g.commands.push_back({{"fs changes", "new|edit|list|current MOUNT REPO", "the repo's working change",
                         {{"bookmark", 0, "NAME", "new: on this bookmark; edit: the change it points at"},
                          {"change", 0, "CHANGE_ID", "new: on this change; edit: this change"},
                          {"message", 'm', "TEXT", "new: the change's message"},
                          {"limit", 0, "N", "list: at most N changes (default 50)"}},
                         3, 3,
                         "new flushes, creates a change and switches the view to it; edit flushes and\n"
                         "switches to an existing change (later writes amend it); list shows changes\n"
                         "reachable from the current one, newest first; current prints its id and commit.\n"
                         "example: mesa fs changes new mnt_abc123 my-repo --bookmark main -m 'try this'"},
                        Changes});
  g.commands.push_back({{"fs bookmarks", "create|move|list MOUNT REPO [NAME]", "bookmarks of a mounted repo",
                         {{"change", 0, "CHANGE_ID", "move: the change to point at"}}, 3, 4,
                         "create puts NAME at the current change (exists: exit 7); move needs --change."},
                        Bookmarks});
}

}  // namespace

std::string FsPath(const std::string& path) {
  if (path.empty()) return "/";
  return path.front() == '/' ? path : "/" + path;
}

void RethrowWithoutCodePrefix(const ApiError& e) {
  const std::string original = e.what();
  std::string message = original;
  const std::string prefix = e.code() + ": ";
  if (!e.code().empty() && message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
  // ... nor a dangling ": " where mesad had no detail to add ("EISDIR: /repo/dir: ").
  if (message.size() >= 2 && message.compare(message.size() - 2, 2, ": ") == 0) message.resize(message.size() - 2);
  if (message == original) throw;
#define MESA_CLI_RETHROW_AS(Type)                                                                              \
  if (dynamic_cast<const Type*>(&e))                                                                           \
    throw Type(e.grpc_code(), e.http_status(), e.code(), message, e.trace_id(), e.details());
  MESA_CLI_RETHROW_AS(ValidationError)
  MESA_CLI_RETHROW_AS(AuthenticationError)
  MESA_CLI_RETHROW_AS(AuthorizationError)
  MESA_CLI_RETHROW_AS(NotFoundError)
  MESA_CLI_RETHROW_AS(ConflictError)
  MESA_CLI_RETHROW_AS(RateLimitError)
  MESA_CLI_RETHROW_AS(ServerError)
#undef MESA_CLI_RETHROW_AS
  throw ApiError(e.grpc_code(), e.http_status(), e.code(), message, e.trace_id(), e.details());
}

void RegisterFsCommands(Registry& r) {
  Group& g = r.AddGroup("fs", "the files and working changes of a mount through mesad (MOUNT: id or mount point)");
  AddReadCommands(g);
  AddWriteCommands(g);
}

}  // namespace mesa::cli
