// bookmarks list|create|get|move|delete|merge.
#include <iostream>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

void PrintBookmark(const Context& ctx, const v1::Bookmark& b) {
  if (ctx.json) {
    PrintMessageJson(b);
    return;
  }
  Fields f;
  f.Add("name", b.name()).Add("change_id", b.change_id()).Add("is_default", YesNo(b.is_default()));
  if (b.has_from_change_id()) f.Add("from_change_id", b.from_change_id());
  f.Print(std::cout);
}

int List(Context& ctx, const ParsedArgs& args) {
  dv1::ListBookmarksRequest req;
  req.set_repo(args.positional(0));
  req.set_limit(ListLimit(args));
  req.set_glob(args.value_or("glob", ""));
  auto& bookmarks = ctx.client().bookmarks();
  return RunList<v1::Bookmark>(
      ctx, args,
      [&](const std::string& cursor) {
        req.set_cursor(cursor);
        auto resp = bookmarks.list(req);
        return ToPage<v1::Bookmark>(resp, resp.bookmarks());
      },
      [&] { return bookmarks.list_all(req); },
      [](const std::vector<v1::Bookmark>& items) {
        Table t({"NAME", "CHANGE", "DEFAULT"});
        for (const auto& b : items) t.AddRow({b.name(), b.change_id(), b.is_default() ? "*" : ""});
        t.Print(std::cout);
      });
}

int Create(Context& ctx, const ParsedArgs& args) {
  PrintBookmark(ctx, ctx.client().bookmarks().create(args.positional(0), args.positional(1), args.positional(2)));
  return kExitOk;
}

int Get(Context& ctx, const ParsedArgs& args) {
  PrintBookmark(ctx, ctx.client().bookmarks().get(args.positional(0), args.positional(1)));
  return kExitOk;
}

int Move(Context& ctx, const ParsedArgs& args) {
  PrintBookmark(ctx, ctx.client().bookmarks().move(args.positional(0), args.positional(1), args.positional(2)));
  return kExitOk;
}

int Delete(Context& ctx, const ParsedArgs& args) {
  ctx.client().bookmarks().remove(args.positional(0), args.positional(1));
  PrintSuccess(ctx, "deleted bookmark " + args.positional(1));
  return kExitOk;
}

int Merge(Context& ctx, const ParsedArgs& args) {
  dv1::MergeBookmarksRequest req;
  req.set_repo(args.positional(0));
  req.set_target(args.positional(1));
  req.set_source(args.positional(2));
  req.set_delete_source(args.has("delete-source"));
  req.set_allow_conflicted(args.has("allow-conflicted"));
  if (auto m = args.value("message")) req.set_message(*m);
  for (auto& r : ParseResolutions(args)) *req.add_resolutions() = std::move(r);
  v1::MergeResult m = ctx.client().bookmarks().merge(req);
  if (ctx.json) {
    PrintMessageJson(m);
    return kExitOk;
  }
  Fields()
      .Add("merge_type", m.merge_type())
      .Add("target", m.target())
      .Add("source", m.source())
      .Add("change_id", m.change_id())
      .Add("commit_oid", m.commit_oid())
      .Add("is_conflicted", YesNo(m.is_conflicted()))
      .Add("source_deleted", YesNo(m.source_deleted()))
      .Print(std::cout);
  return kExitOk;
}

}  // namespace

void RegisterBookmarkCommands(Registry& r) {
  Group& g = r.AddGroup("bookmarks", "list, create, move, delete and merge bookmarks");
  std::vector<Option> list = {{"glob", 0, "PATTERN", "only names matching this glob"}};
  for (auto& o : ListOptions()) list.push_back(o);
  g.commands.push_back({{"bookmarks list", "REPO", "list a repository's bookmarks", list, 1, 1,
                         "columns: NAME CHANGE DEFAULT"},
                        List});
  g.commands.push_back(
      {{"bookmarks create", "REPO NAME CHANGE_ID", "create a bookmark at a change", {}, 3, 3, ""}, Create});
  g.commands.push_back({{"bookmarks get", "REPO NAME", "show a bookmark", {}, 2, 2, ""}, Get});
  g.commands.push_back(
      {{"bookmarks move", "REPO NAME CHANGE_ID", "point a bookmark at another change", {}, 3, 3, ""}, Move});
  g.commands.push_back({{"bookmarks delete", "REPO NAME", "delete a bookmark", {}, 2, 2, ""}, Delete});
  std::vector<Option> merge = {
      {"delete-source", 0, "", "delete SOURCE after a successful merge"},
      {"allow-conflicted", 0, "", "record conflicts in the merge commit instead of failing"},
      {"message", 'm', "MSG", "the merge commit's message"},
  };
  for (auto& o : ResolutionOptions()) merge.push_back(o);
  g.commands.push_back({{"bookmarks merge", "REPO TARGET SOURCE", "merge bookmark SOURCE into bookmark TARGET", merge,
                         3, 3,
                         "A conflict fails with MERGE_CONFLICT (exit 7) and lists the conflicted paths; retry with\n"
                         "--take PATH=target|source or --resolve PATH=@LOCAL_FILE for each, or --allow-conflicted.\n"
                         "example: mesa bookmarks merge my-repo main feature --take README.md=source"},
                        Merge});
}

}  // namespace mesa::cli
