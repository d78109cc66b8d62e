// changes list|create|get|update. File contents come from local files, byte for byte.
#include <iostream>

#include "client/cli/cli.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

std::string FormatSignature(const v1::Signature& s) {
  std::string out = s.name() + " <" + s.email() + ">";
  if (!s.date().empty()) out += " " + s.date();
  return out;
}

void PrintChange(const Context& ctx, const v1::Change& c) {
  if (ctx.json) {
    PrintMessageJson(c);
    return;
  }
  Fields f;
  f.Add("id", c.id())
      .Add("current_commit_oid", c.current_commit_oid())
      .Add("parents", JoinAll(c.parents()))
      .Add("is_conflicted", YesNo(c.is_conflicted()))
      .Add("author", FormatSignature(c.author()))
      .Add("committer", FormatSignature(c.committer()))
      .Add("created_at", c.created_at())
      .Add("updated_at", c.updated_at());
  for (const auto& file : c.files()) f.Add("file", file);
  for (const auto& path : c.conflicts()) f.Add("conflict", path);
  f.Add("message", FirstLine(c.message()));
  f.Print(std::cout);
}

std::vector<Option> FileOptions() {
  return {
      {"message", 'm', "MSG", "the change's description"},
      {"file", 0, "PATH=LOCAL", "write repo PATH with the bytes of local file LOCAL (- = stdin)", true},
      {"exec-file", 0, "PATH=LOCAL", "like --file, as an executable (mode 100755)", true},
      {"delete", 0, "PATH", "delete repo PATH", true},
      {"author", 0, "'NAME <EMAIL>'", "the author"},
      {"committer", 0, "'NAME <EMAIL>'", "the committer"},
  };
}

// --file/--exec-file/--delete in command-line order.
std::vector<dv1::FileOp> ParseFileOps(const ParsedArgs& args) {
  std::vector<dv1::FileOp> ops;
  for (const auto& [name, value] : args.ordered()) {
    if (name == "file" || name == "exec-file") {
      auto [path, local] = SplitKeyValue(value, "--" + name);
      if (local.empty()) throw UsageError("--" + name + " " + value + ": no local file");
      dv1::FileOp op;
      op.set_path(path);
      op.set_content(ReadLocalFile(local));
      if (name == "exec-file") op.set_mode("100755");
      ops.push_back(std::move(op));
    } else if (name == "delete") {
      dv1::FileOp op;
      op.set_path(value);
      op.set_action("delete");
      ops.push_back(std::move(op));
    }
  }
  return ops;
}

template <typename Req>
void FillCommon(const ParsedArgs& args, Req* req) {
  if (auto m = args.value("message")) req->set_message(*m);
  if (auto a = args.value("author")) *req->mutable_author() = ParseSignature(*a, "--author");
  if (auto c = args.value("committer")) *req->mutable_committer() = ParseSignature(*c, "--committer");
  for (auto& op : ParseFileOps(args)) *req->add_files() = std::move(op);
}

int List(Context& ctx, const ParsedArgs& args) {
  dv1::ListChangesRequest req;
  req.set_repo(args.positional(0));
  req.set_limit(ListLimit(args));
  req.set_bookmark(args.value_or("bookmark", ""));
  auto& changes = ctx.client().changes();
  return RunList<v1::Change>(
      ctx, args,
      [&](const std::string& cursor) {
        req.set_cursor(cursor);
        auto resp = changes.list(req);
        return ToPage<v1::Change>(resp, resp.changes());
      },
      [&] { return changes.list_all(req); },
      [](const std::vector<v1::Change>& items) {
        Table t({"ID", "COMMIT", "CONFLICTED", "UPDATED", "MESSAGE"});
        for (const auto& c : items) {
          t.AddRow({c.id(), c.current_commit_oid().substr(0, 12), c.is_conflicted() ? "yes" : "", c.updated_at(),
                    FirstLine(c.message())});
        }
        t.Print(std::cout);
      });
}

int Create(Context& ctx, const ParsedArgs& args) {
  dv1::CreateChangeRequest req;
  req.set_repo(args.positional(0));
  FillCommon(args, &req);
  std::string base = args.value_or("base", "");
  // Without --base: on top of the default bookmark's change.
  if (base.empty()) base = ctx.client().repos().get(req.repo()).head_change_id();
  req.set_base_change_id(base);
  PrintChange(ctx, ctx.client().changes().create(req));
  return kExitOk;
}

int Get(Context& ctx, const ParsedArgs& args) {
  PrintChange(ctx, ctx.client().changes().get(args.positional(0), args.positional(1)));
  return kExitOk;
}

int Update(Context& ctx, const ParsedArgs& args) {
  dv1::UpdateChangeRequest req;
  req.set_repo(args.positional(0));
  req.set_change_id(args.positional(1));
  FillCommon(args, &req);
  if (auto oid = args.value("base-commit")) req.set_base_commit_oid(*oid);
  for (auto& r : ParseResolutions(args)) *req.add_resolutions() = std::move(r);
  PrintChange(ctx, ctx.client().changes().update(req));
  return kExitOk;
}

}  // namespace

void RegisterChangeCommands(Registry& r) {
  Group& g = r.AddGroup("changes", "list, create, inspect and rewrite changes");
  std::vector<Option> list = {{"bookmark", 0, "NAME", "history of this bookmark (default: the default bookmark)"}};
  for (auto& o : ListOptions()) list.push_back(o);
  g.commands.push_back({{"changes list", "REPO", "list the changes of a bookmark's history", list, 1, 1,
                         "columns: ID COMMIT CONFLICTED UPDATED MESSAGE"},
                        List});
  std::vector<Option> create = {{"base", 0, "CHANGE_ID", "the parent change (default: the default bookmark's change)"}};
  for (auto& o : FileOptions()) create.push_back(o);
  g.commands.push_back({{"changes create", "REPO", "create a change from local files", create, 1, 1,
                         "example: mesa changes create my-repo --base CHANGE_ID -m 'add tool' \\\n"
                         "           --file src/a.c=./a.c --exec-file bin/tool=./tool --delete old.txt\n"
                         "The new change is not on any bookmark: move one with 'mesa bookmarks move'."},
                        Create});
  g.commands.push_back(
      {{"changes get", "REPO CHANGE_ID", "show a change with its files and conflicts", {}, 2, 2, ""}, Get});
  std::vector<Option> update = FileOptions();
  update.push_back({"base-commit", 0, "OID", "fail with 409 STALE_BASE_COMMIT unless the change is still at OID"});
  for (auto& o : ResolutionOptions()) update.push_back(o);
  g.commands.push_back({{"changes update", "REPO CHANGE_ID", "rewrite a change: message, files, conflict resolutions",
                         update, 2, 2, ""},
                        Update});
}

}  // namespace mesa::cli
