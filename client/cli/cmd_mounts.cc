// mount, unmount, mounts, mount-info: repositories as real directories (FUSE mounts in mesad).
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;

// REPO[:ro|:rw][@BOOKMARK|#CHANGE]. Repo names hold no ':', '@' or '#'; everything after
// '@' is the bookmark (which may contain '/').
dv1::MountRepo ParseRepoSpec(const std::string& text) {
  dv1::MountRepo repo;
  size_t end = text.find_first_of(":@#");
  repo.set_name(text.substr(0, end));
  if (repo.name().empty()) throw UsageError("'" + text + "': missing the repository name (REPO[:ro][@BOOKMARK|#CHANGE])");
  if (end == std::string::npos) return repo;
  size_t pos = end;
  if (text[pos] == ':') {
    size_t pin = text.find_first_of("@#", pos + 1);
    std::string mode = text.substr(pos + 1, pin == std::string::npos ? std::string::npos : pin - pos - 1);
    if (mode != "ro" && mode != "rw")
      throw UsageError("'" + text + "': the mode after ':' must be ro or rw, not '" + mode + "'");
    repo.set_mode(mode);
    if (pin == std::string::npos) return repo;
    pos = pin;
  }
  std::string pin = text.substr(pos + 1);
  if (text[pos] == '@') {
    if (pin.empty()) throw UsageError("'" + text + "': missing the bookmark after '@'");
    repo.set_bookmark(pin);
  } else if (text[pos] == '#') {
    if (pin.empty()) throw UsageError("'" + text + "': missing the change id after '#'");
    repo.set_change_id(pin);
  } else {
    throw UsageError("'" + text + "': expected REPO[:ro][@BOOKMARK|#CHANGE]");
  }
  return repo;
}

// The spec form of a mounted repo, for the REPOS column.
std::string RepoCell(const dv1::MountedRepo& r) {
  std::string s = r.name();
  if (r.mode() == "ro") s += ":ro";
  if (!r.bookmark().empty()) s += "@" + r.bookmark();
  return s;
}

std::string CacheCell(const dv1::CacheUsage& c) {
  return HumanBytes(c.bytes()) + "/" + (c.max_bytes() ? HumanBytes(c.max_bytes()) : "-");
}

// A local directory for mesad (which runs elsewhere, with its own working directory).
std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  if (ec) throw CliError("LOCAL_FILE", "cannot resolve " + path + ": " + ec.message());
  return abs.lexically_normal().string();
}

int Mount(Context& ctx, const ParsedArgs& args) {
  dv1::MountRequest req;
  for (const auto& spec : args.positionals()) *req.add_repos() = ParseRepoSpec(spec);
  if (auto at = args.value("at")) req.set_mount_point(AbsolutePath(*at));
  if (auto cache = args.value("disk-cache")) {
    req.mutable_disk_cache()->set_path(AbsolutePath(*cache));
    if (auto size = args.value("max-size")) req.mutable_disk_cache()->set_max_size_bytes(ParseSize(*size, "--max-size"));
  } else if (args.has("max-size")) {
    throw UsageError("--max-size needs --disk-cache (the shared cache's cap is mesad's configuration)");
  }
  dv1::MountInfo info = ctx.client().mounts().mount(req);
  if (ctx.json) {
    PrintMessageJson(info);
    return kExitOk;
  }
  std::cout << "mounted " << info.id() << " at " << info.path() << "\n";
  for (int i = 0; i < info.repos_size(); ++i) {
    const auto& r = info.repos(i);
    // mesad reports the bookmark only when one was named; the request tells a change pin
    // from the default bookmark.
    std::string pin;
    if (!r.bookmark().empty()) {
      pin = "bookmark " + r.bookmark() + ", ";
    } else if (i >= req.repos_size() || !req.repos(i).has_change_id()) {
      pin = "default bookmark, ";
    }
    std::cout << "  " << r.name() << ": " << OrDash(r.mode()) << ", " << pin << "change " << OrDash(r.change_id())
              << "\n";
  }
  return kExitOk;
}

int Unmount(Context& ctx, const ParsedArgs& args) {
  std::string key = MountKey(args.positional(0));
  ctx.client().mounts().unmount(key);
  PrintSuccess(ctx, "unmounted " + key);
  return kExitOk;
}

int Info(Context& ctx, const ParsedArgs& args);

// `mesa mounts`, or `mesa mounts get ID|PATH` (the same as mount-info).
int List(Context& ctx, const ParsedArgs& args) {
  if (!args.positionals().empty()) {
    if (args.positional(0) != "get" || args.positionals().size() != 2)
      throw UsageError("expected 'mesa mounts' or 'mesa mounts get ID|PATH'");
    ParsedArgs shifted;
    shifted.AddPositional(args.positional(1));
    return Info(ctx, shifted);
  }
  std::vector<dv1::MountInfo> mounts = ctx.client().mounts().list(args.has("all-users"));
  if (ctx.json) {
    PrintListJson(mounts, std::nullopt);
    return kExitOk;
  }
  bool all = args.has("all-users");
  std::vector<std::string> headers = {"ID", "PATH", "REPOS", "STATE", "CACHE"};
  if (all) headers.insert(headers.begin() + 1, "UID");
  Table t(headers);
  for (const auto& m : mounts) {
    std::vector<std::string> repos;
    for (const auto& r : m.repos()) repos.push_back(RepoCell(r));
    std::vector<std::string> row = {m.id(), m.path(), Join(repos, ","), m.state(), CacheCell(m.cache())};
    if (all) row.insert(row.begin() + 1, std::to_string(m.uid()));
    t.AddRow(std::move(row));
  }
  t.Print(std::cout);
  return kExitOk;
}

int Info(Context& ctx, const ParsedArgs& args) {
  dv1::MountInfo m = ctx.client().mounts().get(MountKey(args.positional(0)));
  if (ctx.json) {
    PrintMessageJson(m);
    return kExitOk;
  }
  const auto& c = m.cache();
  Fields()
      .Add("id", m.id())
      .Add("path", m.path())
      .Add("state", m.state())
      .Add("uid", std::to_string(m.uid()))
      .Add("org", OrDash(m.org()))
      .Add("session", OrDash(m.session_id()))
      .Add("created_at", OrDash(m.created_at()))
      .Add("cache_path", OrDash(c.path()))
      .Add("cache_bytes", std::to_string(c.bytes()) + " (" + HumanBytes(c.bytes()) + ")")
      .Add("cache_max_bytes", c.max_bytes() ? std::to_string(c.max_bytes()) + " (" + HumanBytes(c.max_bytes()) + ")"
                                            : "-")
      .Add("cache_entries", std::to_string(c.entries()))
      .Add("cache_hits", std::to_string(c.hits()))
      .Add("cache_misses", std::to_string(c.misses()))
      .Add("cache_evictions", std::to_string(c.evictions()))
      .Add("listings_fetched", std::to_string(m.listings_fetched()))
      .Add("blobs_opened", std::to_string(m.blobs_opened()))
      .Add("backend_errors", std::to_string(m.backend_errors()))
      .Print(std::cout);
  std::cout << "\n";
  Table t({"REPO", "MODE", "BOOKMARK", "CHANGE", "COMMIT"});
  for (const auto& r : m.repos())
    t.AddRow({r.name(), OrDash(r.mode()), OrDash(r.bookmark()), OrDash(r.change_id()), OrDash(r.commit_oid())});
  t.Print(std::cout);
  return kExitOk;
}

}  // namespace

uint64_t ParseSize(const std::string& text, const std::string& what) {
  auto bad = [&]() -> UsageError {
    return UsageError(what + " must be a positive byte count, optionally with a K, M or G suffix, not '" + text + "'");
  };
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 19) throw bad();
  uint64_t n = std::stoull(text.substr(0, digits));
  std::string suffix = text.substr(digits);
  int shift = 0;
  if (suffix.empty()) shift = 0;
  else if (suffix == "K" || suffix == "k") shift = 10;
  else if (suffix == "M" || suffix == "m") shift = 20;
  else if (suffix == "G" || suffix == "g") shift = 30;
  else throw bad();
  if (n == 0 || n > (std::numeric_limits<uint64_t>::max() >> shift)) throw bad();
  return n << shift;
}

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "K", "M", "G", "T", "P"};
  int unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0 || bytes % (uint64_t{1} << (10 * unit)) == 0) {
    snprintf(buf, sizeof buf, "%.0f%s", value, kUnits[unit]);
  } else {
    snprintf(buf, sizeof buf, "%.1f%s", value, kUnits[unit]);
  }
  return buf;
}

std::string MountKey(const std::string& text) {
  // Mount ids (mnt_...) hold no '/'; anything else that names a directory is a path.
  if (text.find('/') == std::string::npos && text != "." && text != "..") return text;
  char real[PATH_MAX];
  // The owner can stat their own mount's root; otherwise (another uid, a dead mount) keep
  // the path as written, made absolute.
  if (realpath(text.c_str(), real)) return real;
  std::string abs = AbsolutePath(text);
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

void RegisterMountCommands(Registry& r) {
  r.AddLeaf({{"mount", "REPO[:ro][@BOOKMARK|#CHANGE]...",
              "mount repositories as directories (one subdirectory per repo)",
              {{"at", 0, "DIR", "mount here (an empty directory you own; default: <runtime dir>/<uid>/<mount id>)"},
               {"disk-cache", 0, "PATH", "a blob cache directory of this mount's own (default: mesad's shared cache)"},
               {"max-size", 0, "N", "with --disk-cache: its cap in bytes, or with a K, M or G suffix (powers of 1024)"}},
              1, kVariadic,
              "Each REPO is a repository name, optionally followed by :ro (read-only; :rw is the\n"
              "default) and by @BOOKMARK (may contain '/') or #CHANGE_ID; without a pin the repo's\n"
              "default bookmark is resolved once, at mount time.\n"
              "Prints the mount id and path, then one line per repo with its mode and resolved change;\n"
              "--json prints the mount object. A mount belongs to your uid: other users neither see nor\n"
              "reach it.\n"
              "examples:\n"
              "  mesa mount my-repo\n"
              "  mesa mount app@feature/login libs:ro#kxyzwvutsrqponmlkxyzwvutsrqponml --at ~/work\n"
              "  mesa mount big-repo --disk-cache /var/tmp/big-cache --max-size 2G"},
             Mount});
  r.AddLeaf({{"unmount", "ID|PATH", "unmount a mount (by id or mount point)", {}, 1, 1,
              "A mount point created by mesad (the default location) is removed afterwards."},
             Unmount});
  r.AddLeaf({{"mounts", "[get ID|PATH]", "list your mounts",
              {{"all-users", 0, "", "every user's mounts, with a UID column (root only)"}}, 0, 2,
              "columns: ID PATH REPOS STATE CACHE (REPOS in the mount syntax REPO[:ro][@BOOKMARK];\n"
              "CACHE: used/cap of the mount's blob cache).\n"
              "One mount in detail: mesa mount-info ID|PATH (also spelled mesa mounts get ID|PATH)."},
             List});
  r.AddLeaf({{"mount-info", "ID|PATH", "show one mount: repos, resolved changes and commits, cache use, counters",
              {}, 1, 1,
              "Prints 'key: value' lines (id, path, state, cache_path, cache_bytes, ..., listings_fetched,\n"
              "blobs_opened, backend_errors), then a table REPO MODE BOOKMARK CHANGE COMMIT.\n"
              "--json prints the mount object."},
             Info});
}

}  // namespace mesa::cli
