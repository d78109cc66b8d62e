#include "mesa/client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdlib>

#include "rest/codec.h"
#include "rest/time_format.h"

namespace mesa {

std::string DefaultSocketPath() {
  const char* env = getenv("MESA_SOCKET");
  return env && *env ? env : "/run/mesad/mesad.sock";
}

namespace {

template <typename Stub, typename Req, typename Resp>
Resp Invoke(std::unique_ptr<grpc::ClientContext> ctx, Stub* stub,
            grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*), const Req& req) {
  Resp resp;
  grpc::Status st = (stub->*method)(ctx.get(), req, &resp);
  if (!st.ok()) ThrowForStatus(st);
  return resp;
}

// Follows next_cursor until the last page.
template <typename Fetch, typename Items>
auto AllPages(Fetch fetch, Items items) {
  using Item = typename std::decay_t<decltype(items(fetch(std::string())))>::value_type;
  std::vector<Item> out;
  std::string cursor;
  while (true) {
    auto page = fetch(cursor);
    for (const auto& item : items(page)) out.push_back(item);
    if (!page.has_next_cursor() || page.next_cursor().empty()) break;
    cursor = page.next_cursor();
  }
  return out;
}

}  // namespace

template <typename Req>
Req ClientResource::WithCall(Req req) const {
  auto* call = req.mutable_call();
  if (call->session_id().empty()) call->set_session_id(client_->options_.session_id);
  if (call->org().empty()) call->set_org(client_->options_.org);
  return req;
}

std::unique_ptr<grpc::ClientContext> ClientResource::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + client_->options_.timeout);
  return ctx;
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  if (options_.socket.empty()) options_.socket = DefaultSocketPath();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(512 << 20);
  args.SetMaxSendMessageSize(512 << 20);
  channel_ = grpc::CreateCustomChannel("unix:" + options_.socket, grpc::InsecureChannelCredentials(), args);
  sessions_ = std::make_unique<Sessions>(this);
  repos_ = std::make_unique<Repos>(this);
  bookmarks_ = std::make_unique<Bookmarks>(this);
  changes_ = std::make_unique<Changes>(this);
  content_ = std::make_unique<ContentApi>(this);
  diffs_ = std::make_unique<Diffs>(this);
  api_keys_ = std::make_unique<ApiKeys>(this);
  webhook_targets_ = std::make_unique<WebhookTargets>(this);
  webhooks_ = std::make_unique<Webhooks>(this);
  mounts_ = std::make_unique<Mounts>(this);
  files_ = std::make_unique<Files>(this);
  exec_ = std::make_unique<Exec>(this);
  workspace_ = std::make_unique<Workspace>(this);
}

Client::~Client() = default;

v1::OrgSummary Client::org() {
  auto stub = dv1::Orgs::NewStub(channel_);
  dv1::GetOrgRequest req;
  req.mutable_call()->set_session_id(options_.session_id);
  req.mutable_call()->set_org(options_.org);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  v1::OrgSummary out;
  auto st = stub->GetOrg(&ctx, req, &out);
  if (!st.ok()) ThrowForStatus(st);
  return out;
}

dv1::StatusResponse Client::status() {
  auto stub = dv1::Daemon::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  dv1::StatusResponse out;
  auto st = stub->Status(&ctx, dv1::StatusRequest(), &out);
  if (!st.ok()) ThrowForStatus(st);
  return out;
}

// ---- Sessions ----
Sessions::Sessions(Client* c) : ClientResource(c), stub_(dv1::Sessions::NewStub(c->channel())) {}
dv1::LoginResponse Sessions::login(const dv1::LoginRequest& request) {
  return Invoke(Context(), stub_.get(), &dv1::Sessions::Stub::Login, request);
}
void Sessions::logout(const std::string& session_id) {
  dv1::LogoutRequest req;
  req.set_session_id(session_id);
  Invoke(Context(), stub_.get(), &dv1::Sessions::Stub::Logout, req);
}
std::vector<dv1::Session> Sessions::list(bool all_users) {
  dv1::ListSessionsRequest req;
  req.set_all_users(all_users);
  auto resp = Invoke(Context(), stub_.get(), &dv1::Sessions::Stub::ListSessions, req);
  return {resp.sessions().begin(), resp.sessions().end()};
}
v1::Whoami Sessions::whoami() {
  return Invoke(Context(), stub_.get(), &dv1::Sessions::Stub::Whoami, WithCall(dv1::WhoamiRequest()));
}

// ---- Repos ----
Repos::Repos(Client* c) : ClientResource(c), stub_(dv1::Repos::NewStub(c->channel())) {}
dv1::ListReposResponse Repos::list(dv1::ListReposRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Repos::Stub::ListRepos, WithCall(std::move(request)));
}
std::vector<v1::Repo> Repos::list_all(dv1::ListReposRequest request) {
  return AllPages([&](const std::string& cursor) { request.set_cursor(cursor); return list(request); },
                  [](const dv1::ListReposResponse& p) { return std::vector<v1::Repo>(p.repos().begin(), p.repos().end()); });
}
v1::Repo Repos::create(dv1::CreateRepoRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Repos::Stub::CreateRepo, WithCall(std::move(request)));
}
v1::Repo Repos::create(const std::string& name) {
  dv1::CreateRepoRequest req;
  req.set_name(name);
  return create(std::move(req));
}
v1::Repo Repos::get(const std::string& repo) {
  dv1::GetRepoRequest req;
  req.set_repo(repo);
  return Invoke(Context(), stub_.get(), &dv1::Repos::Stub::GetRepo, WithCall(std::move(req)));
}
v1::Repo Repos::update(dv1::UpdateRepoRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Repos::Stub::UpdateRepo, WithCall(std::move(request)));
}
void Repos::remove(const std::string& repo) {
  dv1::DeleteRepoRequest req;
  req.set_repo(repo);
  Invoke(Context(), stub_.get(), &dv1::Repos::Stub::DeleteRepo, WithCall(std::move(req)));
}
int64_t Repos::bulk_update_tags(dv1::BulkUpdateRepoTagsRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Repos::Stub::BulkUpdateRepoTags, WithCall(std::move(request))).updated();
}

// ---- Bookmarks ----
Bookmarks::Bookmarks(Client* c) : ClientResource(c), stub_(dv1::Bookmarks::NewStub(c->channel())) {}
dv1::ListBookmarksResponse Bookmarks::list(dv1::ListBookmarksRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Bookmarks::Stub::ListBookmarks, WithCall(std::move(request)));
}
std::vector<v1::Bookmark> Bookmarks::list_all(dv1::ListBookmarksRequest request) {
  return AllPages([&](const std::string& cursor) { request.set_cursor(cursor); return list(request); },
                  [](const dv1::ListBookmarksResponse& p) {
                    return std::vector<v1::Bookmark>(p.bookmarks().begin(), p.bookmarks().end());
                  });
}
v1::Bookmark Bookmarks::create(const std::string& repo, const std::string& name, const std::string& change_id) {
  dv1::CreateBookmarkRequest req;
  req.set_repo(repo);
  req.set_name(name);
  req.set_change_id(change_id);
  return Invoke(Context(), stub_.get(), &dv1::Bookmarks::Stub::CreateBookmark, WithCall(std::move(req)));
}
v1::Bookmark Bookmarks::get(const std::string& repo, const std::string& name) {
  dv1::GetBookmarkRequest req;
  req.set_repo(repo);
  req.set_name(name);
  return Invoke(Context(), stub_.get(), &dv1::Bookmarks::Stub::GetBookmark, WithCall(std::move(req)));
}
v1::Bookmark Bookmarks::move(const std::string& repo, const std::string& name, const std::string& change_id) {
  dv1::MoveBookmarkRequest req;
  req.set_repo(repo);
  req.set_name(name);
  req.set_change_id(change_id);
  return Invoke(Context(), stub_.get(), &dv1::Bookmarks::Stub::MoveBookmark, WithCall(std::move(req)));
}
void Bookmarks::remove(const std::string& repo, const std::string& name) {
  dv1::DeleteBookmarkRequest req;
  req.set_repo(repo);
  req.set_name(name);
  Invoke(Context(), stub_.get(), &dv1::Bookmarks::Stub::DeleteBookmark, WithCall(std::move(req)));
}
v1::MergeResult Bookmarks::merge(dv1::MergeBookmarksRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Bookmarks::Stub::MergeBookmarks, WithCall(std::move(request)));
}

// ---- Changes ----
Changes::Changes(Client* c) : ClientResource(c), stub_(dv1::Changes::NewStub(c->channel())) {}
dv1::ListChangesResponse Changes::list(dv1::ListChangesRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Changes::Stub::ListChanges, WithCall(std::move(request)));
}
std::vector<v1::Change> Changes::list_all(dv1::ListChangesRequest request) {
  return AllPages([&](const std::string& cursor) { request.set_cursor(cursor); return list(request); },
                  [](const dv1::ListChangesResponse& p) {
                    return std::vector<v1::Change>(p.changes().begin(), p.changes().end());
                  });
}
v1::Change Changes::create(dv1::CreateChangeRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Changes::Stub::CreateChange, WithCall(std::move(request)));
}
v1::Change Changes::get(const std::string& repo, const std::string& change_id) {
  dv1::GetChangeRequest req;
  req.set_repo(repo);
  req.set_change_id(change_id);
  return Invoke(Context(), stub_.get(), &dv1::Changes::Stub::GetChange, WithCall(std::move(req)));
}
v1::Change Changes::update(dv1::UpdateChangeRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Changes::Stub::UpdateChange, WithCall(std::move(request)));
}

// ---- Content ----
ContentApi::ContentApi(Client* c) : ClientResource(c), stub_(dv1::Content::NewStub(c->channel())) {}
v1::Content ContentApi::get(dv1::GetContentRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Content::Stub::GetContent, WithCall(std::move(request)));
}
std::string ContentApi::read(const std::string& repo, const std::string& path, const std::string& change_id) {
  dv1::GetContentRequest req;
  req.set_repo(repo);
  req.set_path(path);
  req.set_change_id(change_id);
  req.set_raw(true);
  return get(std::move(req)).content();
}

// ---- Diffs ----
Diffs::Diffs(Client* c) : ClientResource(c), stub_(dv1::Diffs::NewStub(c->channel())) {}
v1::Diff Diffs::get(dv1::GetDiffRequest request) {
  request.set_unified(false);
  return Invoke(Context(), stub_.get(), &dv1::Diffs::Stub::GetDiff, WithCall(std::move(request))).diff();
}
std::string Diffs::unified(dv1::GetDiffRequest request) {
  request.set_unified(true);
  return Invoke(Context(), stub_.get(), &dv1::Diffs::Stub::GetDiff, WithCall(std::move(request))).unified();
}

// ---- API keys ----
ApiKeys::ApiKeys(Client* c) : ClientResource(c), stub_(dv1::ApiKeys::NewStub(c->channel())) {}
dv1::ListApiKeysResponse ApiKeys::list(dv1::ListApiKeysRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::ApiKeys::Stub::ListApiKeys, WithCall(std::move(request)));
}
std::vector<v1::ApiKey> ApiKeys::list_all(dv1::ListApiKeysRequest request) {
  return AllPages([&](const std::string& cursor) { request.set_cursor(cursor); return list(request); },
                  [](const dv1::ListApiKeysResponse& p) {
                    return std::vector<v1::ApiKey>(p.api_keys().begin(), p.api_keys().end());
                  });
}
v1::ApiKey ApiKeys::create(dv1::CreateApiKeyRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::ApiKeys::Stub::CreateApiKey, WithCall(std::move(request)));
}
void ApiKeys::revoke(const std::string& id) {
  dv1::RevokeApiKeyRequest req;
  req.set_id(id);
  Invoke(Context(), stub_.get(), &dv1::ApiKeys::Stub::RevokeApiKey, WithCall(std::move(req)));
}
std::map<std::string, std::string> ApiKeys::update(dv1::UpdateApiKeyRequest request) {
  auto resp = Invoke(Context(), stub_.get(), &dv1::ApiKeys::Stub::UpdateApiKey, WithCall(std::move(request)));
  return {resp.tags().begin(), resp.tags().end()};
}

// ---- Webhook targets ----
WebhookTargets::WebhookTargets(Client* c) : ClientResource(c), stub_(dv1::WebhookTargets::NewStub(c->channel())) {}
dv1::ListWebhookTargetsResponse WebhookTargets::list(dv1::ListWebhookTargetsRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::WebhookTargets::Stub::ListWebhookTargets, WithCall(std::move(request)));
}
std::vector<v1::WebhookTarget> WebhookTargets::list_all(dv1::ListWebhookTargetsRequest request) {
  return AllPages([&](const std::string& cursor) { request.set_cursor(cursor); return list(request); },
                  [](const dv1::ListWebhookTargetsResponse& p) {
                    return std::vector<v1::WebhookTarget>(p.webhook_targets().begin(), p.webhook_targets().end());
                  });
}
v1::WebhookTarget WebhookTargets::create(dv1::CreateWebhookTargetRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::WebhookTargets::Stub::CreateWebhookTarget, WithCall(std::move(request)));
}
v1::WebhookTarget WebhookTargets::get(const std::string& id) {
  dv1::GetWebhookTargetRequest req;
  req.set_id(id);
  return Invoke(Context(), stub_.get(), &dv1::WebhookTargets::Stub::GetWebhookTarget, WithCall(std::move(req)));
}
v1::WebhookTarget WebhookTargets::update(dv1::UpdateWebhookTargetRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::WebhookTargets::Stub::UpdateWebhookTarget, WithCall(std::move(request)));
}
void WebhookTargets::remove(const std::string& id) {
  dv1::DeleteWebhookTargetRequest req;
  req.set_id(id);
  Invoke(Context(), stub_.get(), &dv1::WebhookTargets::Stub::DeleteWebhookTarget, WithCall(std::move(req)));
}

// ---- Webhooks ----
Webhooks::Webhooks(Client* c) : ClientResource(c), stub_(dv1::Webhooks::NewStub(c->channel())) {}
v1::WebhookEvent Webhooks::verify(const std::string& body, const std::map<std::string, std::string>& headers,
                                  const std::string& secret) {
  dv1::VerifyWebhookRequest req;
  req.set_body(body);
  for (const auto& [k, v] : headers) (*req.mutable_headers())[k] = v;
  req.set_secret(secret);
  return Invoke(Context(), stub_.get(), &dv1::Webhooks::Stub::Verify, WithCall(std::move(req)));
}
v1::WebhookEvent Webhooks::VerifyLocally(const std::string& secret, const std::map<std::string, std::string>& headers,
                                         const std::string& body) {
  std::string header;
  for (const auto& [k, v] : headers) {
    std::string lower = k;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "x-mesa-signature") header = v;
  }
  v1::WebhookEvent event;
  auto st = rest::VerifyWebhook(secret, header, body, rest::NowUnixMillis() / 1000, &event);
  if (!st.ok()) throw WebhookVerificationError("WEBHOOK_VERIFICATION_FAILED", std::string(st.message()));
  return event;
}

// ---- Mounts ----
Mounts::Mounts(Client* c) : ClientResource(c), stub_(dv1::Mounts::NewStub(c->channel())) {}
dv1::MountInfo Mounts::mount(dv1::MountRequest request) {
  return Invoke(Context(), stub_.get(), &dv1::Mounts::Stub::Mount, WithCall(std::move(request)));
}
void Mounts::unmount(const std::string& id_or_path) {
  dv1::UnmountRequest req;
  req.set_mount(id_or_path);
  Invoke(Context(), stub_.get(), &dv1::Mounts::Stub::Unmount, req);
}
std::vector<dv1::MountInfo> Mounts::list(bool all_users) {
  dv1::ListMountsRequest req;
  req.set_all_users(all_users);
  auto resp = Invoke(Context(), stub_.get(), &dv1::Mounts::Stub::ListMounts, req);
  return {resp.mounts().begin(), resp.mounts().end()};
}
dv1::MountInfo Mounts::get(const std::string& id_or_path) {
  dv1::GetMountRequest req;
  req.set_mount(id_or_path);
  return Invoke(Context(), stub_.get(), &dv1::Mounts::Stub::GetMount, req);
}

// ---- Files ----
Files::Files(Client* c) : ClientResource(c), stub_(dv1::Files::NewStub(c->channel())) {}
std::string Files::read(const std::string& mount, const std::string& path, uint64_t offset, uint64_t length) {
  dv1::ReadRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_offset(offset);
  req.set_length(length);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Read, req).data();
}
dv1::FileStat Files::stat(const std::string& mount, const std::string& path) {
  dv1::StatRequest req;
  req.set_mount(mount);
  req.set_path(path);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Stat, req);
}
dv1::FileStat Files::lstat(const std::string& mount, const std::string& path) {
  dv1::StatRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_no_follow(true);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Stat, req);
}
std::vector<dv1::FileStat> Files::readdir(const std::string& mount, const std::string& path) {
  dv1::ReadDirRequest req;
  req.set_mount(mount);
  req.set_path(path);
  auto resp = Invoke(Context(), stub_.get(), &dv1::Files::Stub::ReadDir, req);
  return {resp.entries().begin(), resp.entries().end()};
}
bool Files::exists(const std::string& mount, const std::string& path) {
  dv1::ExistsRequest req;
  req.set_mount(mount);
  req.set_path(path);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Exists, req).exists();
}
std::string Files::readlink(const std::string& mount, const std::string& path) {
  dv1::ReadLinkRequest req;
  req.set_mount(mount);
  req.set_path(path);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::ReadLink, req).target();
}
uint64_t Files::write(const std::string& mount, const std::string& path, const std::string& data) {
  dv1::WriteRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_data(data);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Write, req).size();
}
uint64_t Files::write_at(const std::string& mount, const std::string& path, const std::string& data, uint64_t offset) {
  dv1::WriteRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_data(data);
  req.set_offset(offset);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Write, req).size();
}
uint64_t Files::append(const std::string& mount, const std::string& path, const std::string& data) {
  dv1::AppendRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_data(data);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Append, req).size();
}
dv1::FileStat Files::mkdir(const std::string& mount, const std::string& path, bool parents) {
  dv1::MkdirRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_parents(parents);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Mkdir, req);
}
void Files::remove(const std::string& mount, const std::string& path, bool recursive, bool force) {
  dv1::RemoveRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_recursive(recursive);
  req.set_force(force);
  Invoke(Context(), stub_.get(), &dv1::Files::Stub::Remove, req);
}
void Files::rename(const std::string& mount, const std::string& from, const std::string& to) {
  dv1::RenameRequest req;
  req.set_mount(mount);
  req.set_from(from);
  req.set_to(to);
  Invoke(Context(), stub_.get(), &dv1::Files::Stub::Rename, req);
}
dv1::FileStat Files::chmod(const std::string& mount, const std::string& path, uint32_t mode) {
  dv1::ChmodRequest req;
  req.set_mount(mount);
  req.set_path(path);
  req.set_mode(mode);
  return Invoke(Context(), stub_.get(), &dv1::Files::Stub::Chmod, req);
}

Workspace::Workspace(Client* c) : ClientResource(c), stub_(dv1::Workspace::NewStub(c->channel())) {}
dv1::ChangeRef Workspace::changes_new(const std::string& mount, const std::string& repo, const std::string& bookmark,
                                      const std::string& change_id, const std::optional<std::string>& message) {
  dv1::ChangesNewRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  if (!change_id.empty()) {
    req.set_change_id(change_id);
  } else if (!bookmark.empty()) {
    req.set_bookmark(bookmark);
  }
  if (message) req.set_message(*message);
  return Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::ChangesNew, req);
}
dv1::ChangeRef Workspace::changes_edit(const std::string& mount, const std::string& repo, const std::string& change_id,
                                       const std::string& bookmark) {
  dv1::ChangesEditRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  if (!change_id.empty()) {
    req.set_change_id(change_id);
  } else if (!bookmark.empty()) {
    req.set_bookmark(bookmark);
  }
  return Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::ChangesEdit, req);
}
std::vector<v1::Change> Workspace::changes_list(const std::string& mount, const std::string& repo, int limit) {
  dv1::ChangesListRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  req.set_limit(limit);
  auto resp = Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::ChangesList, req);
  return {resp.changes().begin(), resp.changes().end()};
}
dv1::ChangeRef Workspace::changes_current(const std::string& mount, const std::string& repo) {
  dv1::ChangesCurrentRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  return Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::ChangesCurrent, req);
}
v1::Bookmark Workspace::bookmarks_create(const std::string& mount, const std::string& repo, const std::string& name) {
  dv1::WorkspaceBookmarkRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  req.set_name(name);
  return Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::BookmarksCreate, req);
}
v1::Bookmark Workspace::bookmarks_move(const std::string& mount, const std::string& repo, const std::string& name,
                                       const std::string& change_id) {
  dv1::WorkspaceBookmarkRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  req.set_name(name);
  req.set_change_id(change_id);
  return Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::BookmarksMove, req);
}
std::vector<v1::Bookmark> Workspace::bookmarks_list(const std::string& mount, const std::string& repo) {
  dv1::WorkspaceBookmarksListRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  auto resp = Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::BookmarksList, req);
  return {resp.bookmarks().begin(), resp.bookmarks().end()};
}
void Workspace::flush(const std::string& mount, const std::string& repo, int timeout_ms) {
  dv1::FlushRequest req;
  req.set_mount(mount);
  req.set_repo(repo);
  req.set_timeout_ms(timeout_ms);
  Invoke(Context(), stub_.get(), &dv1::Workspace::Stub::Flush, req);
}

// ---- Exec ----
Exec::Exec(Client* c) : ClientResource(c), stub_(dv1::Exec::NewStub(c->channel())) {}
std::unique_ptr<grpc::ClientContext> Exec::ExecContext(const dv1::ExecRequest& request) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  auto command = std::chrono::milliseconds(request.timeout_ms() ? request.timeout_ms() : 30000);
  ctx->set_deadline(std::chrono::system_clock::now() + client_->options().timeout + command);
  return ctx;
}
dv1::ExecResult Exec::exec(dv1::ExecRequest request) {
  return Invoke(ExecContext(request), stub_.get(), &dv1::Exec::Stub::Exec, request);
}
dv1::ExecResult Exec::exec(const std::string& mount, const std::string& command) {
  dv1::ExecRequest req;
  req.set_mount(mount);
  req.set_command(command);
  return exec(std::move(req));
}
dv1::ExecResult Exec::exec_stream(dv1::ExecRequest request, const OutputCallback& on_output) {
  auto ctx = ExecContext(request);
  auto reader = stub_->ExecStream(ctx.get(), request);
  dv1::ExecStreamEvent ev;
  dv1::ExecResult result;
  bool have_result = false;
  bool stopped = false;
  while (reader->Read(&ev)) {
    if (ev.has_result()) {
      result = std::move(*ev.mutable_result());
      have_result = true;
    } else if (!stopped && (ev.has_stdout() || ev.has_stderr())) {
      bool is_stderr = ev.has_stderr();
      if (!on_output(is_stderr, is_stderr ? ev.stderr() : ev.stdout())) {
        stopped = true;
        ctx->TryCancel();
      }
    }
  }
  grpc::Status st = reader->Finish();
  if (stopped && !have_result) {
    result.set_cancelled(true);
    result.set_cancel_reason("client");
    result.set_exit_code(128 + 9);
    result.set_signal(9);
    return result;
  }
  if (!st.ok()) ThrowForStatus(st);
  return result;
}

}  // namespace mesa
