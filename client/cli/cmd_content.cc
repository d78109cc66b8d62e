// content get, diff.
#include <iostream>
#include <limits>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

void PrintListing(const v1::Content& c) {
  Table t({"MODE", "TYPE", "SIZE", "SHA", "PATH"});
  for (const auto& e : c.entries()) {
    bool dir = e.type() == "dir";
    t.AddRow({dir ? "040000" : e.mode(), e.type(), dir ? "-" : std::to_string(e.size()), e.sha(),
              e.path().empty() ? e.name() : e.path()});
  }
  t.Print(std::cout);
}

// A file or symlink prints its raw bytes; a directory a listing. --json: the Content message.
int ContentGet(Context& ctx, const ParsedArgs& args) {
  dv1::GetContentRequest req;
  req.set_repo(args.positional(0));
  req.set_path(args.positional(1));
  req.set_change_id(args.value_or("change", ""));
  // The server checks its own bound (10 on mesa-server).
  if (auto depth = args.int_value("depth", 0, std::numeric_limits<int32_t>::max()))
    req.set_depth(static_cast<int32_t>(*depth));
  auto& content = ctx.client().content();
  if (!ctx.json && !req.path().empty() && req.path() != "/") {
    // Most paths are files: ask for the bytes first; a directory answers NOT_ACCEPTABLE.
    dv1::GetContentRequest raw = req;
    raw.set_raw(true);
    raw.clear_depth();
    try {
      WriteRaw(content.get(raw).content());
      return kExitOk;
    } catch (const ValidationError& e) {
      if (e.code() != "NOT_ACCEPTABLE") throw;
    }
  }
  v1::Content c = content.get(req);
  if (ctx.json) {
    PrintMessageJson(c);
  } else if (c.type() == "dir") {
    PrintListing(c);
  } else {
    WriteRaw(c.content());
  }
  return kExitOk;
}

int Diff(Context& ctx, const ParsedArgs& args) {
  dv1::GetDiffRequest req;
  req.set_repo(args.positional(0));
  req.set_base_change_id(args.positional(1));
  req.set_head_change_id(args.positional(2));
  std::string conflicts = args.value_or("conflicts", "");
  if (!conflicts.empty() && conflicts != "include" && conflicts != "only" && conflicts != "exclude")
    throw UsageError("--conflicts must be include, only or exclude");
  req.set_conflicts(conflicts);
  if (ctx.json) {
    PrintMessageJson(ctx.client().diffs().get(req));
  } else {
    WriteRaw(ctx.client().diffs().unified(req));
  }
  return kExitOk;
}

}  // namespace

void RegisterContentCommands(Registry& r) {
  Group& g = r.AddGroup("content", "read files and directories of a repository");
  g.commands.push_back({{"content get", "REPO [PATH]",
                         "print a file's bytes (exactly) or a directory listing",
                         {{"change", 0, "CHANGE_ID", "read at this change (default: the default bookmark's)"},
                          {"depth", 0, "N", "directory listing depth (default 1; mesa-server allows up to 10)"}},
                         1, 2,
                         "A file or symlink prints its raw bytes to stdout (a symlink: its target); a\n"
                         "directory prints MODE TYPE SIZE SHA PATH. --json prints the content object\n"
                         "(file bytes base64 in 'content')."},
                        ContentGet});
  r.AddLeaf({{"diff", "REPO BASE_CHANGE HEAD_CHANGE", "show the changes between two changes (a unified patch)",
              {{"conflicts", 0, "MODE", "with --json: include | only | exclude conflicted entries"}}, 3, 3,
              "Default output is a unified patch; --json prints the structured diff (entries, hunks,\n"
              "stats, conflicted_entries)."},
             Diff});
}

}  // namespace mesa::cli
