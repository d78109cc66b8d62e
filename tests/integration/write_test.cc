// The write path through real FUSE mounts and the file RPCs, against a real mesa-server:
// read-back, upload to the working change, workspace operations, bursts, crashes, concurrent
// writers, and a POSIX differential test against tmpfs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "daemon/cache/git_hash.h"
#include "mesa/client.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/fs_test_util.h"

namespace mesa::testing {
namespace {

namespace fsys = std::filesystem;

class WriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chmod(dir_.path().c_str(), 0755);
    server_ = std::make_unique<MesaServerProcess>(dir_.path());
    StartMesad();
    dv1::LoginRequest login;
    login.set_api_key(server_->key());
    login.set_make_default(true);
    client_->sessions().login(login);
    seed_ = std::make_unique<Seeder>(server_->data());
  }
  void TearDown() override {
    if (!client_) return;
    try {
      for (const auto& m : client_->mounts().list()) client_->mounts().unmount(m.id());
    } catch (const MesaError&) {
    }
  }
  void StartMesad() {
    mesad_ = std::make_unique<MesadProcess>(dir_.path(), server_->api_url(),
                                            std::vector<std::string>{"--runtime-dir", dir_.path() + "/run"});
    client_ = mesad_->NewClient();
  }
  dv1::MountInfo Mount(const std::vector<std::pair<std::string, std::string>>& repos) {
    dv1::MountRequest req;
    for (const auto& [name, mode] : repos) {
      auto* r = req.add_repos();
      r->set_name(name);
      r->set_mode(mode);
    }
    return client_->mounts().mount(req);
  }
  // Bytes of `path` at `change` through the server's content API (not through mesad's cache).
  std::string ServerRead(const std::string& repo, const std::string& path, const std::string& change) {
    return client_->content().read(repo, path, change);
  }
  std::string Current(const std::string& mount, const std::string& repo) {
    dv1::ChangesCurrentRequest req;
    req.set_mount(mount);
    req.set_repo(repo);
    grpc::ClientContext ctx;
    dv1::ChangeRef out;
    auto stub = dv1::Workspace::NewStub(client_->channel());
    auto st = stub->ChangesCurrent(&ctx, req, &out);
    if (!st.ok()) ThrowForStatus(st);
    return out.change_id();
  }
  void Flush(const std::string& mount) {
    auto stub = dv1::Workspace::NewStub(client_->channel());
    dv1::FlushRequest req;
    req.set_mount(mount);
    grpc::ClientContext ctx;
    dv1::Empty out;
    auto st = stub->Flush(&ctx, req, &out);
    if (!st.ok()) ThrowForStatus(st);
  }
  std::unique_ptr<dv1::Workspace::Stub> Workspace() { return dv1::Workspace::NewStub(client_->channel()); }

  TempDir dir_;
  std::unique_ptr<MesaServerProcess> server_;
  std::unique_ptr<MesadProcess> mesad_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Seeder> seed_;
};

TEST_F(WriteTest, KernelWritesReadBackAndReachTheServer) {
  std::string base = seed_->Change("w", seed_->Root(), {Op("keep.txt", "keep"), Op("edit.txt", "old\n"),
                                                        Op("gone.txt", "bye"), Op("dir/a.txt", "a"), Op("dir/b.txt", "b")});
  seed_->Bookmark("w", "main", base);
  auto m = Mount({{"w", "rw"}});
  std::string r = m.path() + "/w";
  std::string binary = RandomBytes(300000, 5);
  ASSERT_TRUE(WriteFile(r + "/new.txt", "fresh\n"));
  ASSERT_TRUE(WriteFile(r + "/bin.dat", binary));
  ASSERT_EQ(fsys::create_directories(r + "/x/y/z"), true);
  ASSERT_TRUE(WriteFile(r + "/x/y/z/deep.txt", "deep"));
  {
    std::ofstream app(r + "/edit.txt", std::ios::app);
    app << "appended\n";
  }
  ASSERT_TRUE(WriteFile(r + "/run.sh", "#!/bin/sh\necho hi\n"));
  ASSERT_EQ(chmod((r + "/run.sh").c_str(), 0755), 0);
  ASSERT_EQ(truncate((r + "/keep.txt").c_str(), 2), 0);
  ASSERT_EQ(unlink((r + "/gone.txt").c_str()), 0);
  ASSERT_EQ(rename((r + "/new.txt").c_str(), (r + "/renamed.txt").c_str()), 0);
  ASSERT_EQ(rename((r + "/dir").c_str(), (r + "/moved").c_str()), 0);
  fsys::create_directory(r + "/empty-dir");

  // Visible at once, before any upload.
  EXPECT_EQ(ReadFile(r + "/renamed.txt"), "fresh\n");
  EXPECT_EQ(ReadFile(r + "/bin.dat"), binary);
  EXPECT_EQ(ReadFile(r + "/edit.txt"), "old\nappended\n");
  EXPECT_EQ(ReadFile(r + "/keep.txt"), "ke");
  EXPECT_EQ(ReadFile(r + "/moved/a.txt"), "a");
  EXPECT_FALSE(fsys::exists(r + "/dir"));
  EXPECT_FALSE(fsys::exists(r + "/gone.txt"));
  EXPECT_TRUE(fsys::is_directory(r + "/empty-dir"));
  std::string out;
  EXPECT_EQ(RunCommand(r + "/run.sh", &out), 0);
  EXPECT_EQ(out, "hi\n");

  Flush(m.id());
  std::string change = Current(m.id(), "w");
  EXPECT_NE(change, base);  // the first write forked a new change
  auto c = client_->changes().get("w", change);
  EXPECT_EQ(c.parents(0), base);
  EXPECT_EQ(client_->bookmarks().get("w", "main").change_id(), base);  // bookmarks never move by themselves
  EXPECT_EQ(ServerRead("w", "renamed.txt", change), "fresh\n");
  EXPECT_EQ(ServerRead("w", "bin.dat", change), binary);
  EXPECT_EQ(ServerRead("w", "edit.txt", change), "old\nappended\n");
  EXPECT_EQ(ServerRead("w", "keep.txt", change), "ke");
  EXPECT_EQ(ServerRead("w", "x/y/z/deep.txt", change), "deep");
  EXPECT_EQ(ServerRead("w", "moved/b.txt", change), "b");
  EXPECT_THROW(ServerRead("w", "gone.txt", change), NotFoundError);
  EXPECT_THROW(ServerRead("w", "dir/a.txt", change), NotFoundError);
  EXPECT_THROW(ServerRead("w", "new.txt", change), NotFoundError);
  dv1::GetContentRequest stat_req;
  stat_req.set_repo("w");
  stat_req.set_path("run.sh");
  stat_req.set_change_id(change);
  EXPECT_EQ(client_->content().get(stat_req).mode(), "100755");
  // The pinned change itself was never modified.
  EXPECT_EQ(ServerRead("w", "gone.txt", base), "bye");
}

TEST_F(WriteTest, FileRpcsWriteThroughTheSameCore) {
  seed_->Bookmark("f", "main", seed_->Change("f", seed_->Root(), {Op("a.txt", "a")}));
  auto m = Mount({{"f", "rw"}});
  auto& files = client_->files();
  std::string r = m.path() + "/f";
  EXPECT_EQ(ReadFile(r + "/a.txt"), "a");  // the kernel caches it now
  EXPECT_EQ(files.read(m.id(), "/f/a.txt"), "a");
  dv1::WriteRequest w;  // via the raw stub to set no offset
  files.read(m.id(), "/f/a.txt");
  auto stub = dv1::Files::NewStub(client_->channel());
  auto call = [&](auto method, auto req, auto* resp) {
    grpc::ClientContext ctx;
    auto st = (stub.get()->*method)(&ctx, req, resp);
    if (!st.ok()) ThrowForStatus(st);
  };
  dv1::WriteResponse wr;
  w.set_mount(m.id());
  w.set_path("/f/a.txt");
  w.set_data("replaced");
  call(&dv1::Files::Stub::Write, w, &wr);
  EXPECT_EQ(wr.size(), 8u);
  EXPECT_EQ(ReadFile(r + "/a.txt"), "replaced");  // kernel cache was invalidated
  dv1::AppendRequest ap;
  ap.set_mount(m.id());
  ap.set_path("/f/log.txt");
  ap.set_data("one\n");
  call(&dv1::Files::Stub::Append, ap, &wr);
  call(&dv1::Files::Stub::Append, ap, &wr);
  EXPECT_EQ(ReadFile(r + "/log.txt"), "one\none\n");
  dv1::MkdirRequest mk;
  mk.set_mount(m.id());
  mk.set_path("/f/p/q/r");
  try {
    dv1::FileStat st;
    call(&dv1::Files::Stub::Mkdir, mk, &st);
    FAIL() << "mkdir without parents must fail";
  } catch (const NotFoundError& e) {
    EXPECT_EQ(e.code(), "ENOENT");
  }
  mk.set_parents(true);
  dv1::FileStat st;
  call(&dv1::Files::Stub::Mkdir, mk, &st);
  EXPECT_EQ(st.type(), "dir");
  EXPECT_TRUE(fsys::is_directory(r + "/p/q/r"));
  w.set_path("/f/p/q/r/file.txt");
  w.set_data("in dir");
  call(&dv1::Files::Stub::Write, w, &wr);
  dv1::ChmodRequest ch;
  ch.set_mount(m.id());
  ch.set_path("/f/p/q/r/file.txt");
  ch.set_mode(0755);
  call(&dv1::Files::Stub::Chmod, ch, &st);
  EXPECT_EQ(st.mode() & 0777, 0755u);
  dv1::RenameRequest rn;
  rn.set_mount(m.id());
  rn.set_from("/f/p");
  rn.set_to("/f/pp");
  dv1::Empty empty;
  call(&dv1::Files::Stub::Rename, rn, &empty);
  EXPECT_EQ(ReadFile(r + "/pp/q/r/file.txt"), "in dir");
  EXPECT_FALSE(fsys::exists(r + "/p"));
  dv1::RemoveRequest rm;
  rm.set_mount(m.id());
  rm.set_path("/f/pp");
  try {
    call(&dv1::Files::Stub::Remove, rm, &empty);
    FAIL();
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.code(), "ENOTEMPTY");
  }
  rm.set_recursive(true);
  call(&dv1::Files::Stub::Remove, rm, &empty);
  EXPECT_FALSE(fsys::exists(r + "/pp"));
  rm.set_path("/f/nope");
  EXPECT_THROW(call(&dv1::Files::Stub::Remove, rm, &empty), NotFoundError);
  rm.set_force(true);
  call(&dv1::Files::Stub::Remove, rm, &empty);
  Flush(m.id());
  std::string change = Current(m.id(), "f");
  EXPECT_EQ(ServerRead("f", "a.txt", change), "replaced");
  EXPECT_EQ(ServerRead("f", "log.txt", change), "one\none\n");
  EXPECT_THROW(ServerRead("f", "pp/q/r/file.txt", change), NotFoundError);
}

TEST_F(WriteTest, ErofsEnotsupAndExdev) {
  seed_->Bookmark("rw1", "main", seed_->Change("rw1", seed_->Root(), {Op("a", "a")}));
  seed_->Bookmark("rw2", "main", seed_->Change("rw2", seed_->Root(), {Op("b", "b")}));
  seed_->Bookmark("ro", "main", seed_->Change("ro", seed_->Root(), {Op("c", "c")}));
  auto m = Mount({{"rw1", "rw"}, {"rw2", "rw"}, {"ro", "ro"}});
  std::string p = m.path();
  EXPECT_FALSE(WriteFile(p + "/ro/new", "x"));
  int fd = open((p + "/ro/c").c_str(), O_WRONLY);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(symlink("a", (p + "/rw1/link").c_str()), 0);
  EXPECT_EQ(errno, ENOTSUP);
  EXPECT_NE(link((p + "/rw1/a").c_str(), (p + "/rw1/hard").c_str()), 0);
  EXPECT_EQ(errno, ENOTSUP);
  EXPECT_NE(rename((p + "/rw1/a").c_str(), (p + "/rw2/a").c_str()), 0);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_NE(mkdir((p + "/newrepo").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(mkdir((p + "/rw1/.git").c_str(), 0755), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(ReadFile(p + "/rw1/a"), "a");
}

TEST_F(WriteTest, WorkspaceChangesAndBookmarks) {
  std::string base = seed_->Change("ws", seed_->Root(), {Op("v.txt", "base")});
  seed_->Bookmark("ws", "main", base);
  auto m = Mount({{"ws", "rw"}});
  std::string r = m.path() + "/ws";
  auto ws = Workspace();
  EXPECT_EQ(Current(m.id(), "ws"), base);  // nothing written: the pinned change
  ASSERT_TRUE(WriteFile(r + "/v.txt", "first"));
  std::string first = Current(m.id(), "ws");  // flushes
  EXPECT_NE(first, base);

  // BookmarksCreate at the current change; a second one with the same name is ALREADY_EXISTS.
  dv1::WorkspaceBookmarkRequest bm;
  bm.set_mount(m.id());
  bm.set_repo("ws");
  bm.set_name("feature/one");
  {
    grpc::ClientContext ctx;
    v1::Bookmark out;
    ASSERT_TRUE(ws->BookmarksCreate(&ctx, bm, &out).ok());
    EXPECT_EQ(out.change_id(), first);
  }
  {
    grpc::ClientContext ctx;
    v1::Bookmark out;
    auto st = ws->BookmarksCreate(&ctx, bm, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  }
  // ChangesNew from main: the view shows main's tree, not the previous writes.
  dv1::ChangesNewRequest nw;
  nw.set_mount(m.id());
  nw.set_repo("ws");
  nw.set_bookmark("main");
  nw.set_message("second attempt");
  dv1::ChangeRef second;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(ws->ChangesNew(&ctx, nw, &second).ok());
  }
  EXPECT_EQ(ReadFile(r + "/v.txt"), "base");
  ASSERT_TRUE(WriteFile(r + "/w.txt", "in second"));
  EXPECT_EQ(Current(m.id(), "ws"), second.change_id());  // edits go to the new change directly
  EXPECT_EQ(client_->changes().get("ws", second.change_id()).message(), "second attempt");
  // ChangesEdit back to the first change: its writes are visible again, and amend it.
  dv1::ChangesEditRequest ed;
  ed.set_mount(m.id());
  ed.set_repo("ws");
  ed.set_change_id(first);
  {
    grpc::ClientContext ctx;
    dv1::ChangeRef out;
    ASSERT_TRUE(ws->ChangesEdit(&ctx, ed, &out).ok());
  }
  EXPECT_EQ(ReadFile(r + "/v.txt"), "first");
  EXPECT_FALSE(fsys::exists(r + "/w.txt"));
  ASSERT_TRUE(WriteFile(r + "/v.txt", "first amended"));
  EXPECT_EQ(Current(m.id(), "ws"), first);
  EXPECT_EQ(ServerRead("ws", "v.txt", first), "first amended");
  EXPECT_EQ(ServerRead("ws", "w.txt", second.change_id()), "in second");
  // ChangesList: reachable from the current change, newest first.
  dv1::ChangesListRequest ls;
  ls.set_mount(m.id());
  ls.set_repo("ws");
  dv1::ChangesListResponse listed;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(ws->ChangesList(&ctx, ls, &listed).ok());
  }
  ASSERT_EQ(listed.changes_size(), 2);
  EXPECT_EQ(listed.changes(0).id(), first);
  EXPECT_EQ(listed.changes(1).id(), base);
  // BookmarksMove and BookmarksList.
  bm.set_change_id(second.change_id());
  {
    grpc::ClientContext ctx;
    v1::Bookmark out;
    ASSERT_TRUE(ws->BookmarksMove(&ctx, bm, &out).ok());
    EXPECT_EQ(out.change_id(), second.change_id());
  }
  dv1::WorkspaceBookmarksListRequest bl;
  bl.set_mount(m.id());
  bl.set_repo("ws");
  dv1::WorkspaceBookmarksListResponse bls;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(ws->BookmarksList(&ctx, bl, &bls).ok());
  }
  std::map<std::string, std::string> bookmarks;
  for (const auto& b : bls.bookmarks()) bookmarks[b.name()] = b.change_id();
  EXPECT_EQ(bookmarks["main"], base);
  EXPECT_EQ(bookmarks["feature/one"], second.change_id());
}

TEST_F(WriteTest, BurstOfAThousandFilesStaysVisibleAndArrivesByteExact) {
  seed_->Bookmark("burst", "main", seed_->Change("burst", seed_->Root(), {Op("seed", "s")}));
  auto m = Mount({{"burst", "rw"}});
  std::string r = m.path() + "/burst";
  fsys::create_directory(r + "/files");
  std::atomic<bool> stop{false};
  std::thread flusher([&] {  // explicit flushes racing with the writes, on top of the idle ones
    auto local = mesad_->NewClient();
    while (!stop) {
      try {
        auto stub = dv1::Workspace::NewStub(local->channel());
        dv1::FlushRequest req;
        req.set_mount(m.id());
        grpc::ClientContext ctx;
        dv1::Empty out;
        stub->Flush(&ctx, req, &out);
      } catch (...) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{stop, flusher};
  std::map<std::string, std::string> written;
  for (int i = 0; i < 1000; ++i) {
    std::string name = "f" + std::to_string(i);
    std::string content = "content of file " + std::to_string(i) + "\n" + std::string(i % 200, 'x');
    errno = 0;
    ASSERT_TRUE(WriteFile(r + "/files/" + name, content)) << name << ": " << strerror(errno) << "\n" << mesad_->Log();
    written[name] = content;
    if (i % 100 == 99) {
      // Every file written so far is visible: readdir, lookup and read.
      size_t seen = 0;
      for (const auto& e : fsys::directory_iterator(r + "/files")) {
        (void)e;
        ++seen;
      }
      EXPECT_EQ(seen, written.size()) << "after " << i + 1 << " writes";
      for (int k = 0; k <= i; k += 37) {
        EXPECT_EQ(ReadFile(r + "/files/f" + std::to_string(k)), written["f" + std::to_string(k)]);
      }
    }
  }
  stop = true;
  flusher.join();
  Flush(m.id());
  std::string change = Current(m.id(), "burst");
  dv1::GetContentRequest req;
  req.set_repo("burst");
  req.set_path("files");
  req.set_change_id(change);
  auto listing = client_->content().get(req);
  ASSERT_EQ(listing.entries_size(), 1000);
  for (const auto& e : listing.entries()) {
    ASSERT_TRUE(written.count(e.name())) << e.name();
    EXPECT_EQ(e.sha(), daemon::GitBlobSha(written[e.name()])) << e.name();
  }
}

TEST_F(WriteTest, KillNineMidBurstLosesNoAcknowledgedWrite) {
  seed_->Bookmark("crash", "main", seed_->Change("crash", seed_->Root(), {Op("seed", "s")}));
  auto m = Mount({{"crash", "rw"}});
  std::string r = m.path() + "/crash";
  std::map<std::string, std::string> acked;
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop && i < 5000; ++i) {
      std::string name = "c" + std::to_string(i);
      std::string content = "crash-test " + std::to_string(i) + "\n" + RandomBytes(i % 500, i);
      int fd = open((r + "/" + name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0) break;
      bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
      ok = close(fd) == 0 && ok;
      if (!ok) break;
      std::lock_guard<std::mutex> lock(mu);
      acked[name] = content;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  mesad_->Stop(SIGKILL);
  stop = true;
  writer.join();
  ASSERT_GT(acked.size(), 20u);
  StartMesad();  // restores the mount and uploads what was pending
  auto restored = client_->mounts().list();
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].id(), m.id());
  Flush(m.id());
  std::string change = Current(m.id(), "crash");
  dv1::GetContentRequest req;
  req.set_repo("crash");
  req.set_change_id(change);
  auto listing = client_->content().get(req);
  std::map<std::string, std::string> on_server;
  for (const auto& e : listing.entries()) on_server[e.name()] = e.sha();
  std::vector<std::string> missing, wrong;
  for (const auto& [name, content] : acked) {
    if (!on_server.count(name)) missing.push_back(name);
    else if (on_server[name] != daemon::GitBlobSha(content)) wrong.push_back(name);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << acked.size() << " acknowledged files missing, e.g. "
                               << missing.front() << "\n" << mesad_->Log();
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " files differ, e.g. " << (wrong.empty() ? "" : wrong.front());
  // And the restored mount still shows them.
  EXPECT_EQ(ReadFile(r + "/" + acked.begin()->first), acked.begin()->second);
}

// The overlay cap (fs_overlay_max_bytes) bounds unconfirmed bytes only: confirmed writes free
// their share, so a mount can write far more than the cap over its life; with the server down
// the cap is reached and writes fail with ENOSPC, and nothing acknowledged is lost.
TEST_F(WriteTest, OverlayCapCountsOnlyUnconfirmedBytes) {
  std::string config = dir_.path() + "/capped.yaml";
  ASSERT_TRUE(WriteFile(config, "fs_overlay_max_bytes: 1048576\nfs_flush_idle_ms: 50\n"));
  client_.reset();
  mesad_.reset();
  mesad_ = std::make_unique<MesadProcess>(dir_.path(), server_->api_url(),
                                          std::vector<std::string>{"--runtime-dir", dir_.path() + "/run", "--config", config});
  client_ = mesad_->NewClient();
  seed_->Bookmark("cap", "main", seed_->Change("cap", seed_->Root(), {Op("seed", "s")}));
  auto m = Mount({{"cap", "rw"}});
  std::string r = m.path() + "/cap";
  const std::string chunk = RandomBytes(600 << 10, 3);
  for (int i = 0; i < 4; ++i) {  // 2.4 MiB in all, each confirmed before the next
    ASSERT_TRUE(WriteFile(r + "/f" + std::to_string(i), chunk)) << "file " << i;
    Flush(m.id());
  }
  std::string change = Current(m.id(), "cap");
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ServerRead("cap", "f" + std::to_string(i), change) == chunk) << i;

  server_->Kill(SIGKILL);  // uploads fail from now on
  ASSERT_TRUE(WriteFile(r + "/g0", chunk));
  auto second = WriteFile(r + "/g1", chunk);  // 1.2 MiB unconfirmed > 1 MiB
  EXPECT_FALSE(second);
  EXPECT_NE(std::string(second.message()).find("No space left on device"), std::string::npos) << second.message();
  EXPECT_EQ(ReadFile(r + "/g0"), chunk);  // the acknowledged write is still there
}

// mesa-server refuses bodies over max_body_bytes (HTTP 413). Batches shrink until they fit; a
// single file that can never fit stays in the mount, Flush names it, and it blocks nothing else.
TEST_F(WriteTest, AFileTooLargeForTheServerIsKeptAndNamedWhileTheRestUploads) {
  TempDir other;
  chmod(other.path().c_str(), 0755);
  std::string config = other.path() + "/server.yaml";
  ASSERT_TRUE(WriteFile(config, "max_body_bytes: 1048576\n"));
  client_.reset();
  mesad_.reset();
  server_ = std::make_unique<MesaServerProcess>(other.path(), "acme", std::vector<std::string>{"--config", config});
  seed_ = std::make_unique<Seeder>(server_->data());
  StartMesad();
  dv1::LoginRequest login;
  login.set_api_key(server_->key());
  login.set_make_default(true);
  client_->sessions().login(login);
  seed_->Bookmark("lim", "main", seed_->Change("lim", seed_->Root(), {Op("seed", "s")}));
  auto m = Mount({{"lim", "rw"}});
  std::string r = m.path() + "/lim";
  const std::string huge = RandomBytes(2 << 20, 5);  // 2.7 MiB as base64: never fits
  std::vector<std::string> small;
  for (int i = 0; i < 5; ++i) {  // 1.5 MiB together: fits only in smaller batches
    small.push_back(RandomBytes(300 << 10, 10 + i));
    ASSERT_TRUE(WriteFile(r + "/s" + std::to_string(i), small.back()));
  }
  ASSERT_TRUE(WriteFile(r + "/huge.bin", huge));
  try {
    Flush(m.id());
    ADD_FAILURE() << "Flush succeeded although the server refuses huge.bin";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code(), "FILE_TOO_LARGE") << e.what();
    EXPECT_NE(std::string(e.what()).find("/huge.bin"), std::string::npos) << e.what();
  }
  std::string change = Current(m.id(), "lim");
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(ServerRead("lim", "s" + std::to_string(i), change) == small[i]) << i;
  EXPECT_THROW(ServerRead("lim", "huge.bin", change), MesaError);
  EXPECT_EQ(ReadFile(r + "/huge.bin"), huge);  // kept, readable
  // Rewritten to something the server takes, it goes up like any other write.
  ASSERT_TRUE(WriteFile(r + "/huge.bin", "small now\n"));
  Flush(m.id());
  EXPECT_EQ(ServerRead("lim", "huge.bin", Current(m.id(), "lim")), "small now\n");
}

TEST_F(WriteTest, ConcurrentPatchOfTheSameChangeLosesNothing) {
  seed_->Bookmark("cc", "main", seed_->Change("cc", seed_->Root(), {Op("seed", "s")}));
  auto m = Mount({{"cc", "rw"}});
  std::string r = m.path() + "/cc";
  ASSERT_TRUE(WriteFile(r + "/mine-0", "0"));
  std::string change = Current(m.id(), "cc");
  // Another client amends the same change while this mount keeps writing.
  std::atomic<bool> stop{false};
  std::atomic<int> theirs{0};
  std::thread other([&] {
    auto local = mesad_->NewClient();
    for (int i = 0; !stop && i < 40; ++i) {
      dv1::UpdateChangeRequest up;
      up.set_repo("cc");
      up.set_change_id(change);
      auto* f = up.add_files();
      f->set_path("theirs-" + std::to_string(i));
      f->set_content("t" + std::to_string(i));
      try {
        local->changes().update(up);
        ++theirs;
      } catch (const MesaError&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  bool written = true;
  for (int i = 1; i <= 100 && written; ++i) {
    auto w = WriteFile(r + "/mine-" + std::to_string(i), std::to_string(i));
    written = w;
    EXPECT_TRUE(w);
    if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  other.join();
  ASSERT_TRUE(written);
  Flush(m.id());
  EXPECT_EQ(Current(m.id(), "cc"), change);
  for (int i = 0; i <= 100; ++i) EXPECT_EQ(ServerRead("cc", "mine-" + std::to_string(i), change), std::to_string(i));
  for (int i = 0; i < theirs; ++i) EXPECT_EQ(ServerRead("cc", "theirs-" + std::to_string(i), change), "t" + std::to_string(i));
}

// Applies the same seeded random operations under two roots and compares every result.
class PosixOps {
 public:
  explicit PosixOps(uint32_t seed) : rng_(seed) {}
  std::string Next(const std::string& a, const std::string& b) {
    const std::vector<std::string> names = {"a", "b", "c", "d1", "d2"};
    auto pick_path = [&]() {
      std::string p = names[rng_() % names.size()];
      if (rng_() % 2) p = names[3 + rng_() % 2] + "/" + names[rng_() % names.size()];
      return p;
    };
    std::string p = pick_path(), q = pick_path();
    int op = static_cast<int>(rng_() % 9);
    std::string data(rng_() % 64, static_cast<char>('A' + rng_() % 26));
    auto run = [&](const std::string& root) -> std::string {
      errno = 0;
      int rc = 0;
      std::string x = root + "/" + p, y = root + "/" + q;
      switch (op) {
        case 0: {
          int fd = open(x.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
          if (fd < 0) return "open:" + std::to_string(errno);
          rc = static_cast<int>(write(fd, data.data(), data.size()));
          close(fd);
          return "write:" + std::to_string(rc);
        }
        case 1: {
          int fd = open(x.c_str(), O_WRONLY | O_APPEND);
          if (fd < 0) return "append-open:" + std::to_string(errno);
          rc = static_cast<int>(write(fd, data.data(), data.size()));
          close(fd);
          return "append:" + std::to_string(rc);
        }
        case 2: rc = mkdir(x.c_str(), 0755); break;
        case 3: rc = rmdir(x.c_str()); break;
        case 4: rc = unlink(x.c_str()); break;
        case 5: rc = rename(x.c_str(), y.c_str()); break;
        case 6: rc = truncate(x.c_str(), static_cast<off_t>(data.size() / 2)); break;
        case 7: rc = chmod(x.c_str(), (rng_() % 2) ? 0755 : 0644); break;
        case 8: {
          std::string content = ReadFile(x);
          struct stat st;
          if (stat(x.c_str(), &st) != 0) return "read:" + std::to_string(errno);
          return "read:" + (S_ISDIR(st.st_mode) ? std::string("dir") : content);
        }
      }
      return std::to_string(op) + ":" + std::to_string(rc) + ":" + std::to_string(rc ? errno : 0);
    };
    // The same random state for both sides: remember it and replay.
    auto saved = rng_;
    std::string ra = run(a);
    auto after_a = rng_;
    rng_ = saved;
    std::string rb = run(b);
    rng_ = after_a;
    history_.push_back("op " + std::to_string(op) + " " + p + " -> " + q + " [" + std::to_string(data.size()) + "] = " + rb);
    if (ra == rb) return "";
    std::string tail;
    for (size_t i = history_.size() > 25 ? history_.size() - 25 : 0; i < history_.size(); ++i) tail += "  " + history_[i] + "\n";
    return "op " + std::to_string(op) + " " + p + " -> " + q + ": mount=" + ra + " tmpfs=" + rb + "\nlast ops:\n" + tail;
  }

 private:
  std::vector<std::string> history_;
  std::mt19937 rng_;
};

std::string Tree(const std::string& root) {
  std::vector<std::string> lines;
  for (const auto& e : fsys::recursive_directory_iterator(root)) {
    std::string rel = e.path().string().substr(root.size());
    struct stat st;
    lstat(e.path().c_str(), &st);
    if (S_ISDIR(st.st_mode)) lines.push_back(rel + " dir");
    else lines.push_back(rel + " file " + ((st.st_mode & S_IXUSR) ? "x " : "- ") + ReadFile(e.path()));
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST_F(WriteTest, PosixDifferentialAgainstTmpfs) {
  seed_->Bookmark("px", "main", seed_->Change("px", seed_->Root(), {Op("seed", "s")}));
  auto m = Mount({{"px", "rw"}});
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::string a = m.path() + "/px/run" + std::to_string(seed);
    std::string b = "/dev/shm/mesad-posix-" + std::to_string(getpid()) + "-" + std::to_string(seed);
    fsys::remove_all(b);
    ASSERT_EQ(mkdir(a.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(b.c_str(), 0755), 0);
    PosixOps ops(seed);
    for (int i = 0; i < 400; ++i) {
      std::string diff = ops.Next(a, b);
      ASSERT_EQ(diff, "") << "seed " << seed << " step " << i;
    }
    EXPECT_EQ(Tree(a), Tree(b)) << "seed " << seed;
    fsys::remove_all(b);
  }
  // What reached the server matches the files of the mount.
  Flush(m.id());
  std::string change = Current(m.id(), "px");
  for (const auto& e : fsys::recursive_directory_iterator(m.path() + "/px")) {
    if (!e.is_regular_file()) continue;
    std::string rel = e.path().string().substr(m.path().size() + 4);
    EXPECT_EQ(ServerRead("px", rel, change), ReadFile(e.path())) << rel;
  }
}

}  // namespace
}  // namespace mesa::testing
