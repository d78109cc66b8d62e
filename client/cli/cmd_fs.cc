// fs: the files of a mount through mesad's file RPCs (no kernel mount needed by the caller).
//
// Every subcommand takes MOUNT (a mount id or mount point) and a PATH inside the mount
// ("/my-repo/src/main.py"; the leading '/' may be left out). To add one (e.g. write, rm,
// mkdir, mv, flush once mesad has the RPCs): write a handler using FsTarget/FsCall below and
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
  Group& g = r.AddGroup("fs", "read the files of a mount through mesad (MOUNT is a mount id or mount point)");
  AddReadCommands(g);
}

}  // namespace mesa::cli
