// The store against a real git + SQLite directory.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "rest/api_error.h"
#include "rest/change_id.h"
#include "server/store/git.h"
#include "server/store/store.h"
#include "tests/unit/test_util.h"

namespace mesa::server {
namespace {

using rest::kVirtualRootChangeId;

FileOp Upsert(const std::string& path, const std::string& content, uint32_t mode = 0100644) {
  FileOp op;
  op.path = path;
  op.content = content;
  op.mode = mode;
  return op;
}

FileOp Delete(const std::string& path) {
  FileOp op;
  op.kind = FileOp::Kind::kDelete;
  op.path = path;
  return op;
}

int HttpStatus(const absl::Status& st) { return rest::ErrorInfoFromStatus(st).http_status; }
std::string Code(const absl::Status& st) { return rest::ErrorInfoFromStatus(st).code; }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    auto org = store_->CreateOrg("acme", "Acme");
    ASSERT_TRUE(org.ok()) << org.status();
    org_ = *org;
    CreateRepoParams p;
    p.name = "repo";
    auto repo = store_->CreateRepo(org_, p);
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *repo;
    who_.name = "Tester";
    who_.email = "t@example.com";
  }

  Change NewChange(const std::string& base, std::vector<FileOp> files, const std::string& message = "") {
    CreateChangeParams p;
    p.base_change_id = base;
    p.message = message;
    p.files = std::move(files);
    auto c = store_->CreateChange(repo_, p, who_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : Change{};
  }

  std::string Read(const std::string& change_id, const std::string& path) {
    auto c = store_->GetContent(R(), change_id, path, 1, true);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->data : "";
  }

  void Move(const std::string& bookmark, const std::string& change_id) {
    auto m = store_->MoveBookmark(repo_, bookmark, change_id);
    ASSERT_TRUE(m.ok()) << m.status();
  }

  const server::Repo& R() {
    repo_ = *store_->GetRepoById(repo_.id);
    return repo_;
  }

  std::string RefTarget(const std::string& ref) {
    std::string out;
    testing::RunCommand("git --git-dir=" + store_->GitDir(repo_.id) + " rev-parse --verify -q " + ref, &out);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  Org org_;
  server::Repo repo_;
  Signature who_;
};

TEST_F(StoreTest, NewRepoHasDefaultBookmarkAtVirtualRoot) {
  EXPECT_EQ(repo_.head_change_id, kVirtualRootChangeId);
  auto b = store_->GetBookmark(repo_, "main");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->change_id, kVirtualRootChangeId);
  EXPECT_TRUE(b->is_default);
  auto content = store_->GetContent(repo_, std::nullopt, "", 1, false);
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(content->type, "dir");
  EXPECT_EQ(content->child_count, 0u);
  auto missing = store_->GetContent(repo_, std::nullopt, "nope.txt", 1, false);
  EXPECT_EQ(HttpStatus(missing.status()), 404);
}

TEST_F(StoreTest, RewriteKeepsChangeIdAndBookmarkFollows) {
  Change c = NewChange(std::string(kVirtualRootChangeId), {Upsert("a.txt", "one\n")}, "first");
  EXPECT_EQ(c.parents, std::vector<std::string>{std::string(kVirtualRootChangeId)});
  Move("main", c.id);
  EXPECT_EQ(RefTarget("refs/heads/main"), c.commit_oid);

  UpdateChangeParams p;
  p.files = {Upsert("a.txt", "two\n")};
  p.base_commit_oid = c.commit_oid;
  auto updated = store_->UpdateChange(repo_, c.id, p);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->id, c.id);
  EXPECT_NE(updated->commit_oid, c.commit_oid);
  EXPECT_EQ(updated->message, "first");
  EXPECT_EQ(Read(c.id, "a.txt"), "two\n");

  // The new commit carries the same change-id header, and main followed the rewrite.
  auto repo = git::OpenBare(store_->GitDir(repo_.id));
  ASSERT_TRUE(repo.ok());
  auto info = git::ReadCommit(repo->get(), updated->commit_oid);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->change_id, c.id);
  auto old_info = git::ReadCommit(repo->get(), c.commit_oid);
  ASSERT_TRUE(old_info.ok());
  EXPECT_EQ(old_info->change_id, c.id);
  EXPECT_EQ(RefTarget("refs/heads/main"), updated->commit_oid);

  // A stale base_commit_oid is refused and nothing is written.
  p.files = {Upsert("a.txt", "three\n")};
  p.base_commit_oid = c.commit_oid;
  auto stale = store_->UpdateChange(repo_, c.id, p);
  EXPECT_EQ(HttpStatus(stale.status()), 409);
  EXPECT_EQ(Code(stale.status()), "STALE_BASE_COMMIT");
  EXPECT_EQ(Read(c.id, "a.txt"), "two\n");
}

TEST_F(StoreTest, FileOpsApplyInOrderAndValidateConflicts) {
  Change c = NewChange(std::string(kVirtualRootChangeId),
                       {Upsert("dir/a", "a"), Upsert("dir/sub/b", "b"), Upsert("x", "x", 0100755)});
  auto dir = store_->GetContent(repo_, c.id, "", 3, false);
  ASSERT_TRUE(dir.ok());
  ASSERT_EQ(dir->entries.size(), 5u);  // dir, dir/a, dir/sub, dir/sub/b, x
  EXPECT_EQ(dir->child_count, 2u);
  auto x = store_->GetContent(repo_, c.id, "x", 1, true);
  EXPECT_EQ(x->mode, "100755");

  // A file under a file is a conflict; deleting first makes it legal.
  CreateChangeParams bad;
  bad.base_change_id = c.id;
  bad.files = {Upsert("x/y", "z")};
  auto conflict = store_->CreateChange(repo_, bad, who_);
  EXPECT_EQ(HttpStatus(conflict.status()), 400);
  EXPECT_EQ(Code(conflict.status()), "PATH_CONFLICT");
  Change ok = NewChange(c.id, {Delete("x"), Upsert("x/y", "z"), Delete("dir")});
  auto root = store_->GetContent(repo_, ok.id, "", 1, false);
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(root->entries.size(), 1u);
  EXPECT_EQ(root->entries[0].path, "x");
  EXPECT_EQ(root->entries[0].type, "dir");

  CreateChangeParams missing;
  missing.base_change_id = c.id;
  missing.files = {Delete("no/such")};
  EXPECT_EQ(HttpStatus(store_->CreateChange(repo_, missing, who_).status()), 404);
}

TEST_F(StoreTest, SymlinksReadBackAsSymlinks) {
  Change c = NewChange(std::string(kVirtualRootChangeId), {Upsert("target.txt", "t"), Upsert("link", "target.txt", 0120000)});
  auto link = store_->GetContent(repo_, c.id, "link", 1, true);
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->type, "symlink");
  EXPECT_EQ(link->mode, "120000");
  EXPECT_EQ(link->data, "target.txt");
}

TEST_F(StoreTest, ListChangesNewestFirstWithPagination) {
  std::string base(kVirtualRootChangeId);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    Change c = NewChange(base, {Upsert("f" + std::to_string(i), "x")}, "c" + std::to_string(i));
    ids.push_back(c.id);
    base = c.id;
  }
  Move("main", base);
  std::vector<std::string> seen;
  std::optional<std::string> cursor;
  do {
    auto page = store_->ListChanges(R(), std::nullopt, cursor, 2);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& c : page->items) seen.push_back(c.id);
    cursor = page->next_cursor;
  } while (cursor);
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(HttpStatus(store_->ListChanges(repo_, "nope", std::nullopt, 10).status()), 404);
  EXPECT_EQ(HttpStatus(store_->ListChanges(repo_, std::nullopt, "garbage", 10).status()), 400);
}

TEST_F(StoreTest, MergeNoOpWhenBookmarksAgree) {
  Change c = NewChange(std::string(kVirtualRootChangeId), {Upsert("a", "a")});
  Move("main", c.id);
  ASSERT_TRUE(store_->CreateBookmark(repo_, "feature", c.id).ok());
  MergeParams p;
  p.target = "main";
  p.source = "feature";
  p.identity = who_;
  auto r = store_->MergeBookmarks(R(), p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->merge_type, "no_op");
  EXPECT_EQ(r->change_id, c.id);
  EXPECT_EQ(r->commit_oid, c.commit_oid);
  EXPECT_FALSE(r->is_conflicted);
}

TEST_F(StoreTest, MergeCommitJoinsDivergentBookmarks) {
  Change base = NewChange(std::string(kVirtualRootChangeId), {Upsert("shared.txt", "1\n2\n3\n4\n5\n6\n7\n8\n")});
  Change left = NewChange(base.id, {Upsert("shared.txt", "one\n2\n3\n4\n5\n6\n7\n8\n"), Upsert("left", "L")});
  Change right = NewChange(base.id, {Upsert("shared.txt", "1\n2\n3\n4\n5\n6\n7\neight\n"), Upsert("right", "R")});
  Move("main", left.id);
  ASSERT_TRUE(store_->CreateBookmark(repo_, "feature/right", right.id).ok());
  MergeParams p;
  p.target = "main";
  p.source = "feature/right";
  p.delete_source = true;
  p.identity = who_;
  auto r = store_->MergeBookmarks(R(), p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->merge_type, "merge_commit");
  EXPECT_FALSE(r->is_conflicted);
  EXPECT_TRUE(r->source_deleted);
  EXPECT_EQ(Read(r->change_id, "shared.txt"), "one\n2\n3\n4\n5\n6\n7\neight\n");
  EXPECT_EQ(Read(r->change_id, "left"), "L");
  EXPECT_EQ(Read(r->change_id, "right"), "R");
  auto merged = store_->GetChange(repo_, r->change_id);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged->parents, (std::vector<std::string>{left.id, right.id}));
  EXPECT_EQ(merged->message, "Merge bookmark 'feature/right' into 'main'");
  EXPECT_EQ(store_->GetBookmark(R(), "main")->change_id, r->change_id);
  EXPECT_EQ(HttpStatus(store_->GetBookmark(repo_, "feature/right").status()), 404);
  EXPECT_EQ(RefTarget("refs/heads/main"), r->commit_oid);
  EXPECT_EQ(RefTarget("refs/heads/feature/right"), "");
}

class MergeConflictTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    base_ = NewChange(std::string(kVirtualRootChangeId), {Upsert("f.txt", "a\nb\nc\n")});
    target_ = NewChange(base_.id, {Upsert("f.txt", "a\nTARGET\nc\n")});
    source_ = NewChange(base_.id, {Upsert("f.txt", "a\nSOURCE\nc\n")});
    Move("main", target_.id);
    ASSERT_TRUE(store_->CreateBookmark(repo_, "feature", source_.id).ok());
  }
  MergeParams Params() {
    MergeParams p;
    p.target = "main";
    p.source = "feature";
    p.identity = who_;
    return p;
  }
  Change base_, target_, source_;
};

TEST_F(MergeConflictTest, ConflictIs409WithHunksAndPersistsNothing) {
  auto r = store_->MergeBookmarks(R(), Params());
  ASSERT_FALSE(r.ok());
  auto info = rest::ErrorInfoFromStatus(r.status());
  EXPECT_EQ(info.http_status, 409);
  EXPECT_EQ(info.code, "MERGE_CONFLICT");
  EXPECT_EQ(info.details["conflict_paths"], nlohmann::json::array({"f.txt"}));
  const auto& hunks = info.details["conflicts"][0]["hunks"];
  ASSERT_EQ(hunks.size(), 1u);
  EXPECT_FALSE(hunks[0]["hunk_id"].get<std::string>().empty());
  EXPECT_EQ(hunks[0]["target"]["content"], "VEFSR0VUCg==");  // "TARGET\n"
  EXPECT_EQ(hunks[0]["source"]["content"], "U09VUkNFCg==");  // "SOURCE\n"
  EXPECT_EQ(hunks[0]["base"]["content"], "Ygo=");            // "b\n"
  // Nothing persisted: main unchanged, no new change reachable.
  EXPECT_EQ(store_->GetBookmark(R(), "main")->change_id, target_.id);
  auto listed = store_->ListChanges(repo_, std::nullopt, std::nullopt, 100);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->items.size(), 2u);

  // The same hunk id resolves it on retry.
  MergeParams p = Params();
  Resolution res;
  res.path = "f.txt";
  res.hunks.push_back({hunks[0]["hunk_id"].get<std::string>(), std::nullopt, std::string("source")});
  p.resolutions = {res};
  auto ok = store_->MergeBookmarks(R(), p);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FALSE(ok->is_conflicted);
  EXPECT_EQ(Read(ok->change_id, "f.txt"), "a\nSOURCE\nc\n");
}

TEST_F(MergeConflictTest, WholeFileResolutionAndUnknownHunk) {
  MergeParams p = Params();
  Resolution whole;
  whole.path = "f.txt";
  whole.content = "merged by hand\n";
  p.resolutions = {whole};
  auto ok = store_->MergeBookmarks(R(), p);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(Read(ok->change_id, "f.txt"), "merged by hand\n");

  Resolution wrong;
  wrong.path = "other.txt";
  wrong.take = "target";
  MergeParams q = Params();
  q.resolutions = {wrong};
  EXPECT_EQ(HttpStatus(store_->MergeBookmarks(R(), q).status()), 400);
}

TEST_F(MergeConflictTest, AllowConflictedThenResolveByPatch) {
  MergeParams p = Params();
  p.allow_conflicted = true;
  auto r = store_->MergeBookmarks(R(), p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_conflicted);
  auto change = store_->GetChange(R(), r->change_id);
  ASSERT_TRUE(change.ok());
  EXPECT_TRUE(change->is_conflicted);
  EXPECT_EQ(change->conflicts, std::vector<std::string>{"f.txt"});
  auto file = store_->GetContent(repo_, r->change_id, "f.txt", 1, true);
  EXPECT_TRUE(file->is_conflicted);
  EXPECT_NE(file->data.find("<<<<<<< target"), std::string::npos);

  auto diff = store_->GetDiff(repo_, target_.id, r->change_id, ConflictsMode::kInclude);
  ASSERT_TRUE(diff.ok());
  EXPECT_TRUE(diff->entries.empty());
  ASSERT_EQ(diff->conflicted_entries.size(), 1u);
  EXPECT_EQ(diff->conflicted_hunks, 1);
  auto excluded = store_->GetDiff(repo_, target_.id, r->change_id, ConflictsMode::kExclude);
  EXPECT_TRUE(excluded->conflicted_entries.empty());

  // Files cannot be written onto a conflicted change; resolutions can.
  UpdateChangeParams files;
  files.files = {Upsert("g", "g")};
  auto refused = store_->UpdateChange(repo_, r->change_id, files);
  EXPECT_EQ(Code(refused.status()), "MERGE_CONFLICT");
  EXPECT_EQ(rest::ErrorInfoFromStatus(refused.status()).details["conflict_paths"][0], "f.txt");
  UpdateChangeParams resolve;
  Resolution take;
  take.path = "f.txt";
  take.take = "target";
  resolve.resolutions = {take};
  auto clean = store_->UpdateChange(repo_, r->change_id, resolve);
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_FALSE(clean->is_conflicted);
  EXPECT_EQ(clean->id, r->change_id);
  EXPECT_EQ(Read(r->change_id, "f.txt"), "a\nTARGET\nc\n");
}

TEST_F(StoreTest, DiffHunksRenamesAndBinary) {
  Change a = NewChange(std::string(kVirtualRootChangeId),
                       {Upsert("text.txt", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"),
                        Upsert("old-name.txt", "stable content that is long enough to be a rename\n"),
                        Upsert("bin.dat", std::string("\0\1\2\3", 4))});
  Change b = NewChange(a.id, {Upsert("text.txt", "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n"), Delete("old-name.txt"),
                              Upsert("new-name.txt", "stable content that is long enough to be a rename\n"),
                              Upsert("bin.dat", std::string("\0\1\2\4", 4)), Upsert("added.txt", "no newline")});
  auto d = store_->GetDiff(repo_, a.id, b.id, ConflictsMode::kInclude);
  ASSERT_TRUE(d.ok()) << d.status();
  std::map<std::string, DiffEntry> by_path;
  for (const auto& e : d->entries) by_path[e.path] = e;
  ASSERT_EQ(by_path.size(), 4u);
  const DiffEntry& text = by_path["text.txt"];
  EXPECT_EQ(text.status, "modified");
  ASSERT_TRUE(text.hunks);
  ASSERT_EQ(text.hunks->size(), 1u);
  const DiffHunk& h = (*text.hunks)[0];
  EXPECT_EQ(h.old_start, 2);
  EXPECT_EQ(h.old_lines, 7);
  EXPECT_EQ(h.new_start, 2);
  EXPECT_EQ(h.new_lines, 7);
  std::vector<std::string> kinds;
  for (const auto& l : h.lines) kinds.push_back(l.kind + ":" + l.text);
  EXPECT_EQ(kinds, (std::vector<std::string>{"context:2", "context:3", "context:4", "deleted:5", "added:five",
                                              "context:6", "context:7", "context:8"}));
  EXPECT_EQ(by_path["new-name.txt"].status, "renamed");
  EXPECT_EQ(by_path["new-name.txt"].old_path, "old-name.txt");
  EXPECT_EQ(by_path["bin.dat"].omitted_reason, "binary");
  EXPECT_FALSE(by_path["bin.dat"].hunks);
  const auto& added = *by_path["added.txt"].hunks;
  EXPECT_EQ(added[0].lines.back().kind, "annotation");
  EXPECT_EQ(d->additions, 2);
  EXPECT_EQ(d->deletions, 1);

  auto patch = store_->GetUnifiedDiff(repo_, a.id, b.id);
  ASSERT_TRUE(patch.ok());
  EXPECT_NE(patch->find("-5\n+five\n"), std::string::npos);
  EXPECT_NE(patch->find("rename from old-name.txt"), std::string::npos);
}

TEST_F(StoreTest, ConcurrentPatchesSerializeWithoutLostUpdates) {
  Change c = NewChange(std::string(kVirtualRootChangeId), {Upsert("start", "s")});
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      UpdateChangeParams p;
      p.files = {Upsert("file" + std::to_string(i), std::to_string(i))};
      if (store_->UpdateChange(repo_, c.id, p).ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, kThreads);
  auto root = store_->GetContent(repo_, c.id, "", 1, false);
  EXPECT_EQ(root->entries.size(), static_cast<size_t>(kThreads + 1));

  // With the same base_commit_oid only one of many racers can win.
  std::string base = store_->GetChange(repo_, c.id)->commit_oid;
  std::atomic<int> won{0}, conflicted{0};
  threads.clear();
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      UpdateChangeParams p;
      p.base_commit_oid = base;
      p.files = {Upsert("race", std::to_string(i))};
      auto r = store_->UpdateChange(repo_, c.id, p);
      if (r.ok()) ++won;
      else if (HttpStatus(r.status()) == 409) ++conflicted;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won, 1);
  EXPECT_EQ(conflicted, kThreads - 1);
}

TEST_F(StoreTest, ReopenRepairsRefsAndRemovesOrphanRepoDirs) {
  Change c = NewChange(std::string(kVirtualRootChangeId), {Upsert("a", "a")});
  Move("main", c.id);
  std::string git_dir = store_->GitDir(repo_.id);
  // Simulate a kill between the SQLite commit and the ref update, and a kill between
  // creating a repo directory and inserting its row.
  ASSERT_EQ(testing::RunCommand("git --git-dir=" + git_dir + " update-ref -d refs/heads/main"), 0);
  std::string orphan = std::filesystem::path(git_dir).parent_path() / "repo_orphan.git";
  std::filesystem::create_directories(orphan);
  store_.reset();
  auto reopened = Store::Open(dir_.path());
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(*reopened);
  EXPECT_EQ(RefTarget("refs/heads/main"), c.commit_oid);
  EXPECT_FALSE(std::filesystem::exists(orphan));
}

TEST_F(StoreTest, RepoLifecycleAndValidation) {
  CreateRepoParams dup;
  dup.name = "repo";
  EXPECT_EQ(Code(store_->CreateRepo(org_, dup).status()), "REPO_ALREADY_EXISTS");
  CreateRepoParams bad;
  bad.name = "no/slashes";
  EXPECT_EQ(HttpStatus(store_->CreateRepo(org_, bad).status()), 400);

  UpdateRepoParams rename;
  rename.name = "renamed";
  rename.tags = nlohmann::json{{"Env", "prod"}};
  auto r = store_->UpdateRepo(org_, repo_, rename);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name, "renamed");
  EXPECT_EQ(r->tags, (nlohmann::json{{"env", "prod"}}));
  EXPECT_EQ(HttpStatus(store_->GetRepo(org_, "repo").status()), 404);

  ListReposParams list;
  list.tag_filter = {{"env", std::string("prod")}};
  EXPECT_EQ(store_->ListRepos(org_, list)->items.size(), 1u);
  list.tag_filter = {{"env", std::string("dev")}};
  EXPECT_EQ(store_->ListRepos(org_, list)->items.size(), 0u);

  std::string git_dir = store_->GitDir(r->id);
  ASSERT_TRUE(store_->DeleteRepo(*r).ok());
  EXPECT_FALSE(std::filesystem::exists(git_dir));
  EXPECT_EQ(HttpStatus(store_->GetRepo(org_, "renamed").status()), 404);
}

TEST(GlobTest, StarAndQuestionMark) {
  EXPECT_TRUE(GlobMatch("feature/*", "feature/auth"));
  EXPECT_TRUE(GlobMatch("f?o", "foo"));
  EXPECT_FALSE(GlobMatch("f?o", "fooo"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_FALSE(GlobMatch("main", "mainline"));
}

}  // namespace
}  // namespace mesa::server
