// The C++ client of mesad. Talks gRPC over mesad's Unix socket; the daemon holds every
// credential. Requests and results are the proto messages of proto/mesa; failures throw the
// typed errors of mesa/errors.h.
//
//   mesa::Client client;                          // $MESA_SOCKET or /run/mesad/mesad.sock
//   auto repo = client.repos().create("my-repo");
//   for (const auto& r : client.repos().list_all()) ...
#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mesa/daemon/v1/api.grpc.pb.h"
#include "mesa/daemon/v1/exec.grpc.pb.h"
#include "mesa/daemon/v1/mounts.grpc.pb.h"
#include "mesa/errors.h"

namespace mesa {

namespace dv1 = ::mesa::daemon::v1;
namespace v1 = ::mesa::v1;

struct ClientOptions {
  std::string socket;      // empty: $MESA_SOCKET, else /run/mesad/mesad.sock
  std::string session_id;  // empty: the caller's default session
  std::string org;         // empty: the session's org
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

std::string DefaultSocketPath();

class Client;

// Each resource namespace fills `call` (session, org) from the client unless already set.
class ClientResource {
 protected:
  explicit ClientResource(Client* client) : client_(client) {}
  template <typename Req>
  Req WithCall(Req req) const;
  std::unique_ptr<grpc::ClientContext> Context() const;
  Client* client_;
};

class Sessions : ClientResource {
 public:
  explicit Sessions(Client* c);
  dv1::LoginResponse login(const dv1::LoginRequest& request);
  void logout(const std::string& session_id = "");
  std::vector<dv1::Session> list(bool all_users = false);
  v1::Whoami whoami();

 private:
  std::unique_ptr<dv1::Sessions::Stub> stub_;
};

class Repos : ClientResource {
 public:
  explicit Repos(Client* c);
  dv1::ListReposResponse list(dv1::ListReposRequest request = {});
  std::vector<v1::Repo> list_all(dv1::ListReposRequest request = {});
  v1::Repo create(dv1::CreateRepoRequest request);
  v1::Repo create(const std::string& name);
  v1::Repo get(const std::string& repo);
  v1::Repo update(dv1::UpdateRepoRequest request);
  void remove(const std::string& repo);
  int64_t bulk_update_tags(dv1::BulkUpdateRepoTagsRequest request);

 private:
  std::unique_ptr<dv1::Repos::Stub> stub_;
};

class Bookmarks : ClientResource {
 public:
  explicit Bookmarks(Client* c);
  dv1::ListBookmarksResponse list(dv1::ListBookmarksRequest request);
  std::vector<v1::Bookmark> list_all(dv1::ListBookmarksRequest request);
  v1::Bookmark create(const std::string& repo, const std::string& name, const std::string& change_id);
  v1::Bookmark get(const std::string& repo, const std::string& name);
  v1::Bookmark move(const std::string& repo, const std::string& name, const std::string& change_id);
  void remove(const std::string& repo, const std::string& name);
  v1::MergeResult merge(dv1::MergeBookmarksRequest request);

 private:
  std::unique_ptr<dv1::Bookmarks::Stub> stub_;
};

class Changes : ClientResource {
 public:
  explicit Changes(Client* c);
  dv1::ListChangesResponse list(dv1::ListChangesRequest request);
  std::vector<v1::Change> list_all(dv1::ListChangesRequest request);
  v1::Change create(dv1::CreateChangeRequest request);
  v1::Change get(const std::string& repo, const std::string& change_id);
  v1::Change update(dv1::UpdateChangeRequest request);

 private:
  std::unique_ptr<dv1::Changes::Stub> stub_;
};

class ContentApi : ClientResource {
 public:
  explicit ContentApi(Client* c);
  v1::Content get(dv1::GetContentRequest request);
  // Raw file bytes at `path` (default bookmark unless change_id is given).
  std::string read(const std::string& repo, const std::string& path, const std::string& change_id = "");

 private:
  std::unique_ptr<dv1::Content::Stub> stub_;
};

class Diffs : ClientResource {
 public:
  explicit Diffs(Client* c);
  v1::Diff get(dv1::GetDiffRequest request);
  std::string unified(dv1::GetDiffRequest request);

 private:
  std::unique_ptr<dv1::Diffs::Stub> stub_;
};

class ApiKeys : ClientResource {
 public:
  explicit ApiKeys(Client* c);
  dv1::ListApiKeysResponse list(dv1::ListApiKeysRequest request = {});
  std::vector<v1::ApiKey> list_all(dv1::ListApiKeysRequest request = {});
  v1::ApiKey create(dv1::CreateApiKeyRequest request);
  void revoke(const std::string& id);
  std::map<std::string, std::string> update(dv1::UpdateApiKeyRequest request);

 private:
  std::unique_ptr<dv1::ApiKeys::Stub> stub_;
};

class WebhookTargets : ClientResource {
 public:
  explicit WebhookTargets(Client* c);
  dv1::ListWebhookTargetsResponse list(dv1::ListWebhookTargetsRequest request = {});
  std::vector<v1::WebhookTarget> list_all(dv1::ListWebhookTargetsRequest request = {});
  v1::WebhookTarget create(dv1::CreateWebhookTargetRequest request);
  v1::WebhookTarget get(const std::string& id);
  v1::WebhookTarget update(dv1::UpdateWebhookTargetRequest request);
  void remove(const std::string& id);

 private:
  std::unique_ptr<dv1::WebhookTargets::Stub> stub_;
};

class Webhooks : ClientResource {
 public:
  explicit Webhooks(Client* c);
  // Verified by mesad with the session's (or the given) secret.
  v1::WebhookEvent verify(const std::string& body, const std::map<std::string, std::string>& headers,
                          const std::string& secret = "");
  // Verified here, without the daemon. Throws WebhookVerificationError.
  static v1::WebhookEvent VerifyLocally(const std::string& secret, const std::map<std::string, std::string>& headers,
                                        const std::string& body);

 private:
  std::unique_ptr<dv1::Webhooks::Stub> stub_;
};

class Mounts : ClientResource {
 public:
  explicit Mounts(Client* c);
  dv1::MountInfo mount(dv1::MountRequest request);
  void unmount(const std::string& id_or_path);
  std::vector<dv1::MountInfo> list(bool all_users = false);
  dv1::MountInfo get(const std::string& id_or_path);

 private:
  std::unique_ptr<dv1::Mounts::Stub> stub_;
};

// File access through a mount's filesystem, without the kernel. Paths look like
// "/my-repo/src/main.py"; errors carry the errno name as their code (ENOENT, EISDIR, ...).
class Files : ClientResource {
 public:
  explicit Files(Client* c);
  std::string read(const std::string& mount, const std::string& path, uint64_t offset = 0, uint64_t length = 0);
  dv1::FileStat stat(const std::string& mount, const std::string& path);   // follows symlinks
  dv1::FileStat lstat(const std::string& mount, const std::string& path);  // describes a final symlink
  std::vector<dv1::FileStat> readdir(const std::string& mount, const std::string& path);
  bool exists(const std::string& mount, const std::string& path);
  std::string readlink(const std::string& mount, const std::string& path);

  // Writes go to the mount's overlay at once and reach the server with the next flush
  // (Workspace::flush, or mesad's own flusher). Errors carry errno names (EROFS, EXDEV, ...).
  uint64_t write(const std::string& mount, const std::string& path, const std::string& data);  // replace; new size
  uint64_t write_at(const std::string& mount, const std::string& path, const std::string& data, uint64_t offset);
  uint64_t append(const std::string& mount, const std::string& path, const std::string& data);
  dv1::FileStat mkdir(const std::string& mount, const std::string& path, bool parents = false);
  void remove(const std::string& mount, const std::string& path, bool recursive = false, bool force = false);
  void rename(const std::string& mount, const std::string& from, const std::string& to);
  dv1::FileStat chmod(const std::string& mount, const std::string& path, uint32_t mode);

 private:
  std::unique_ptr<dv1::Files::Stub> stub_;
};

// The working change of each writable repo of a mount (SDK 0.38.0 `fs.changes` / `fs.bookmarks`).
class Workspace : ClientResource {
 public:
  explicit Workspace(Client* c);
  // A new change on `bookmark` or `change_id` (one of them); the repo's view switches to it.
  dv1::ChangeRef changes_new(const std::string& mount, const std::string& repo, const std::string& bookmark,
                             const std::string& change_id = "", const std::optional<std::string>& message = {});
  // Switches the view to an existing change (by id, or the change a bookmark points at).
  dv1::ChangeRef changes_edit(const std::string& mount, const std::string& repo, const std::string& change_id,
                              const std::string& bookmark = "");
  std::vector<v1::Change> changes_list(const std::string& mount, const std::string& repo, int limit = 50);
  dv1::ChangeRef changes_current(const std::string& mount, const std::string& repo);
  v1::Bookmark bookmarks_create(const std::string& mount, const std::string& repo, const std::string& name);
  v1::Bookmark bookmarks_move(const std::string& mount, const std::string& repo, const std::string& name,
                              const std::string& change_id);
  std::vector<v1::Bookmark> bookmarks_list(const std::string& mount, const std::string& repo);
  // Uploads pending writes (of `repo`, or of every repo when empty) and waits for the server.
  void flush(const std::string& mount, const std::string& repo = "", int timeout_ms = 0);

 private:
  std::unique_ptr<dv1::Workspace::Stub> stub_;
};

// Commands inside a mount: `bash -c COMMAND` in mesad's sandbox, as the calling user, with the
// mount's repos at /<repo> (see proto/mesa/daemon/v1/exec.proto). A failing command is a
// result (exit_code, signal, timed_out), not an exception.
class Exec : ClientResource {
 public:
  explicit Exec(Client* c);
  // Runs to the end; stdout/stderr come back capped by mesad (head + tail, `truncated`).
  dv1::ExecResult exec(dv1::ExecRequest request);
  dv1::ExecResult exec(const std::string& mount, const std::string& command);
  // Calls on_output(is_stderr, chunk) as output arrives, then returns the result (whose stdout
  // and stderr are empty: everything went through on_output). Returning false from on_output
  // stops the command; the result then has cancelled = true and cancel_reason "client".
  using OutputCallback = std::function<bool(bool is_stderr, const std::string& chunk)>;
  dv1::ExecResult exec_stream(dv1::ExecRequest request, const OutputCallback& on_output);

 private:
  // The client's timeout plus the command's own (30 s when unset).
  std::unique_ptr<grpc::ClientContext> ExecContext(const dv1::ExecRequest& request) const;
  std::unique_ptr<dv1::Exec::Stub> stub_;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();

  Sessions& sessions() { return *sessions_; }
  Repos& repos() { return *repos_; }
  Bookmarks& bookmarks() { return *bookmarks_; }
  Changes& changes() { return *changes_; }
  ContentApi& content() { return *content_; }
  Diffs& diffs() { return *diffs_; }
  ApiKeys& api_keys() { return *api_keys_; }
  WebhookTargets& webhook_targets() { return *webhook_targets_; }
  Webhooks& webhooks() { return *webhooks_; }
  Mounts& mounts() { return *mounts_; }
  Files& files() { return *files_; }
  Exec& exec() { return *exec_; }
  Workspace& workspace() { return *workspace_; }

  v1::OrgSummary org();
  dv1::StatusResponse status();

  const ClientOptions& options() const { return options_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

 private:
  friend class ClientResource;
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Sessions> sessions_;
  std::unique_ptr<Repos> repos_;
  std::unique_ptr<Bookmarks> bookmarks_;
  std::unique_ptr<Changes> changes_;
  std::unique_ptr<ContentApi> content_;
  std::unique_ptr<Diffs> diffs_;
  std::unique_ptr<ApiKeys> api_keys_;
  std::unique_ptr<WebhookTargets> webhook_targets_;
  std::unique_ptr<Webhooks> webhooks_;
  std::unique_ptr<Mounts> mounts_;
  std::unique_ptr<Files> files_;
  std::unique_ptr<Exec> exec_;
  std::unique_ptr<Workspace> workspace_;
};

}  // namespace mesa
