// Webhook targets and the webhook outbox.
#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "rest/api_error.h"
#include "rest/encoding.h"
#include "rest/time_format.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"
#include "server/webhooks/events.h"

namespace mesa::server {

using namespace store_detail;  // NOLINT(build/namespaces)

namespace {

constexpr std::string_view kTargetColumns =
    "seq, id, org_id, name, url, events, repo_ids, created_at, updated_at";
constexpr size_t kMaxUrlLength = 2048;
constexpr size_t kMaxTargetNameLength = 256;

WebhookTarget ReadTargetRow(const Statement& s) {
  WebhookTarget t;
  t.seq = s.Int(0);
  t.id = s.Text(1);
  t.org_id = s.Text(2);
  t.name = s.OptText(3);
  t.url = s.Text(4);
  auto events = ParseJsonColumn(s.OptText(5), nlohmann::json::array());
  if (events.is_array()) t.events = events.get<std::vector<std::string>>();
  auto repo_ids = ParseJsonColumn(s.OptText(6), nullptr);
  if (repo_ids.is_array()) t.repo_ids = repo_ids.get<std::vector<std::string>>();
  t.created_at_ms = s.Int(7);
  t.updated_at_ms = s.Int(8);
  return t;
}

std::optional<std::string> JsonList(const std::optional<std::vector<std::string>>& list) {
  if (!list) return std::nullopt;
  return nlohmann::json(*list).dump();
}

// http(s)://host[:port][/...]: no whitespace or control characters, a non-empty host.
// Plain http is accepted (local receivers); Mesa's own service documents https only.
absl::Status CheckUrl(const std::string& url) {
  if (url.empty() || url.size() > kMaxUrlLength)
    return rest::FieldError("url", "must be an http(s) URL of at most 2048 characters");
  std::string lower = url.substr(0, 8);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t rest_at = lower.starts_with("https://") ? 8 : lower.starts_with("http://") ? 7 : 0;
  if (rest_at == 0) return rest::FieldError("url", "must use the http or https scheme");
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) return rest::FieldError("url", "must not contain whitespace or control characters");
  }
  std::string authority = url.substr(rest_at, url.find_first_of("/?#", rest_at) - rest_at);
  size_t at = authority.rfind('@');
  std::string host = at == std::string::npos ? authority : authority.substr(at + 1);
  if (host.empty() || host.front() == ':') return rest::FieldError("url", "must name a host");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> CheckEvents(const std::vector<std::string>& events) {
  if (events.empty()) return rest::FieldError("events", "must have at least 1 item");
  std::vector<std::string> out;
  for (const auto& e : events) {
    if (!webhooks::IsEventType(e)) return rest::FieldError("events", "unknown event type '" + e + "'");
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  return out;
}

// Every id must name a repo of the org.
absl::Status CheckRepoIds(SqliteConnection& db, const std::string& org_id, const std::vector<std::string>& ids) {
  if (ids.empty()) return rest::FieldError("repo_ids", "must have at least 1 item");
  for (const auto& id : ids) {
    auto stmt = db.Prepare("SELECT 1 FROM repos WHERE org_id = ? AND id = ?");
    if (!stmt.ok()) return stmt.status();
    stmt->Bind(1, org_id).Bind(2, id);
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) return rest::FieldError("repo_ids", "unknown repository id '" + id + "'");
  }
  return absl::OkStatus();
}

absl::Status CheckName(const std::optional<std::string>& name) {
  if (name && name->size() > kMaxTargetNameLength) return rest::FieldError("name", "must have at most 256 characters");
  return absl::OkStatus();
}

absl::Status TargetNotFound(const std::string& id) {
  return rest::NotFoundError("WEBHOOK_TARGET_NOT_FOUND", "webhook target '" + id + "' not found");
}

std::string SeqList(const std::vector<int64_t>& seqs) { return nlohmann::json(seqs).dump(); }

}  // namespace

namespace store_detail {

bool RepoSubset(const std::optional<std::vector<std::string>>& ids, const std::vector<std::string>& allowed) {
  if (!ids) return false;
  for (const auto& id : *ids) {
    if (std::find(allowed.begin(), allowed.end(), id) == allowed.end()) return false;
  }
  return true;
}

}  // namespace store_detail

// ---- targets ----

absl::StatusOr<NewWebhookTarget> Store::CreateWebhookTarget(const std::string& org_id,
                                                            const CreateWebhookTargetParams& p) {
  if (auto st = CheckUrl(p.url); !st.ok()) return st;
  if (auto st = CheckName(p.name); !st.ok()) return st;
  auto events = CheckEvents(p.events.value_or(std::vector<std::string>{"push"}));
  if (!events.ok()) return events.status();
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  if (p.repo_ids) {
    if (auto st = CheckRepoIds(**db, org_id, *p.repo_ids); !st.ok()) return st;
  }
  NewWebhookTarget out;
  WebhookTarget& t = out.target;
  t.id = NewId("wht_");
  t.org_id = org_id;
  t.name = p.name;
  t.url = p.url;
  t.events = *events;
  t.repo_ids = p.repo_ids;
  t.created_at_ms = t.updated_at_ms = rest::NowUnixMillis();
  // The HMAC key is the whole string (prefix included), as the SDK uses it.
  out.secret = "whsec_" + rest::RandomAlphanumeric(40);
  auto stmt = (*db)->Prepare(
      "INSERT INTO webhook_targets(id, org_id, name, url, events, repo_ids, secret, created_at, updated_at) "
      "VALUES(?,?,?,?,?,?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, t.id).Bind(2, org_id).Bind(3, t.name).Bind(4, t.url).Bind(5, nlohmann::json(t.events).dump())
      .Bind(6, JsonList(t.repo_ids)).Bind(7, out.secret).Bind(8, t.created_at_ms).Bind(9, t.updated_at_ms);
  if (auto st = stmt->Run(); !st.ok()) return st;
  t.seq = sqlite3_last_insert_rowid((*db)->raw());
  return out;
}

absl::StatusOr<WebhookTarget> Store::GetWebhookTarget(const std::string& org_id, const std::string& id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kTargetColumns) +
                             " FROM webhook_targets WHERE org_id = ? AND id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org_id).Bind(2, id);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return TargetNotFound(id);
  return ReadTargetRow(*stmt);
}

absl::StatusOr<Page<WebhookTarget>> Store::ListWebhookTargets(const std::string& org_id,
                                                              const ListWebhookTargetsParams& p) {
  int64_t after = 0;
  if (p.cursor) {
    auto v = DecodeCursor(*p.cursor, 'w');
    if (!v || v->empty() || !absl::SimpleAtoi(*v, &after)) return rest::FieldError("cursor", "invalid cursor");
  }
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(std::string("SELECT ") + std::string(kTargetColumns) +
                             " FROM webhook_targets WHERE org_id = ? AND seq > ? ORDER BY seq");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org_id).Bind(2, after);
  Page<WebhookTarget> page;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    WebhookTarget t = ReadTargetRow(*stmt);
    if (p.within_repo_ids && !RepoSubset(t.repo_ids, *p.within_repo_ids)) continue;
    if (static_cast<int>(page.items.size()) == p.limit) {
      page.next_cursor = EncodeCursor('w', std::to_string(page.items.back().seq));
      break;
    }
    page.items.push_back(std::move(t));
  }
  return page;
}

absl::StatusOr<WebhookTarget> Store::UpdateWebhookTarget(const std::string& org_id, const std::string& id,
                                                         const UpdateWebhookTargetParams& p) {
  if (p.url) {
    if (auto st = CheckUrl(*p.url); !st.ok()) return st;
  }
  if (p.name) {
    if (auto st = CheckName(*p.name); !st.ok()) return st;
  }
  std::optional<std::vector<std::string>> events;
  if (p.events) {
    auto checked = CheckEvents(*p.events);
    if (!checked.ok()) return checked.status();
    events = *checked;
  }
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  Transaction txn(**db);
  if (auto st = txn.Begin(); !st.ok()) return st;
  auto read = (*db)->Prepare(std::string("SELECT ") + std::string(kTargetColumns) +
                             " FROM webhook_targets WHERE org_id = ? AND id = ?");
  if (!read.ok()) return read.status();
  read->Bind(1, org_id).Bind(2, id);
  auto row = read->Step();
  if (!row.ok()) return row.status();
  if (!*row) return TargetNotFound(id);
  WebhookTarget t = ReadTargetRow(*read);
  read->Reset();
  if (p.name) t.name = *p.name;
  if (p.url) t.url = *p.url;
  if (events) t.events = *events;
  if (p.repo_ids) {
    if (*p.repo_ids) {
      if (auto st = CheckRepoIds(**db, org_id, **p.repo_ids); !st.ok()) return st;
    }
    t.repo_ids = *p.repo_ids;
  }
  t.updated_at_ms = std::max(rest::NowUnixMillis(), t.updated_at_ms);
  auto stmt = (*db)->Prepare(
      "UPDATE webhook_targets SET name = ?, url = ?, events = ?, repo_ids = ?, updated_at = ? WHERE id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, t.name).Bind(2, t.url).Bind(3, nlohmann::json(t.events).dump()).Bind(4, JsonList(t.repo_ids))
      .Bind(5, t.updated_at_ms).Bind(6, id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if (auto st = txn.Commit(); !st.ok()) return st;
  return t;
}

absl::Status Store::DeleteWebhookTarget(const std::string& org_id, const std::string& id) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  // Pending deliveries of the target go with it (ON DELETE CASCADE).
  auto stmt = (*db)->Prepare("DELETE FROM webhook_targets WHERE org_id = ? AND id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, org_id).Bind(2, id);
  if (auto st = stmt->Run(); !st.ok()) return st;
  if ((*db)->Changes() == 0) return TargetNotFound(id);
  return absl::OkStatus();
}

// ---- outbox ----

void Store::SetPublicUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  std::lock_guard<std::mutex> lock(in_->outbox_mu);
  in_->public_url = url.empty() ? "http://localhost" : url;
}

void Store::SetOutboxListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(in_->outbox_mu);
  in_->outbox_listener = std::move(listener);
}

void Store::KickOutbox() {
  std::lock_guard<std::mutex> lock(in_->outbox_mu);
  if (in_->outbox_listener) in_->outbox_listener();
}

absl::Status Store::EnqueueEvents(SqliteConnection& db, const std::string& org_id, const Repo* repo,
                                  const std::vector<Event>& events) {
  if (events.empty()) return absl::OkStatus();
  struct Match {
    std::string id;
    std::set<std::string> events;
    std::optional<std::vector<std::string>> repo_ids;
  };
  std::vector<Match> targets;
  {
    auto stmt = db.Prepare("SELECT id, events, repo_ids FROM webhook_targets WHERE org_id = ? ORDER BY seq");
    if (!stmt.ok()) return stmt.status();
    stmt->Bind(1, org_id);
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Match m;
      m.id = stmt->Text(0);
      auto types = ParseJsonColumn(stmt->OptText(1), nlohmann::json::array());
      for (const auto& t : types) {
        if (t.is_string()) m.events.insert(t.get<std::string>());
      }
      auto ids = ParseJsonColumn(stmt->OptText(2), nullptr);
      if (ids.is_array()) m.repo_ids = ids.get<std::vector<std::string>>();
      targets.push_back(std::move(m));
    }
  }
  if (targets.empty()) return absl::OkStatus();  // the common case: nothing to write
  Org org;
  {
    auto stmt = db.Prepare("SELECT id, slug, name, created_at FROM orgs WHERE id = ?");
    if (!stmt.ok()) return stmt.status();
    stmt->Bind(1, org_id);
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) return rest::InternalError("event for unknown org " + org_id);
    org = Org{stmt->Text(0), stmt->Text(1), stmt->Text(2), stmt->Int(3)};
  }
  std::string public_url;
  {
    std::lock_guard<std::mutex> lock(in_->outbox_mu);
    public_url = in_->public_url;
  }
  int64_t now = rest::NowUnixMillis();
  auto ins = db.Prepare(
      "INSERT INTO webhook_deliveries(event_id, event_type, target_id, body, next_attempt_at, created_at) "
      "VALUES(?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  for (const auto& e : events) {
    std::string body;
    std::string event_id;
    for (const auto& t : targets) {
      if (!t.events.count(e.type)) continue;
      if (t.repo_ids && (!repo || std::find(t.repo_ids->begin(), t.repo_ids->end(), repo->id) == t.repo_ids->end()))
        continue;
      if (body.empty()) {
        // One event id and one body per event, whatever the number of targets and attempts.
        event_id = webhooks::NewEventId();
        // Never throws: bytes that are not UTF-8 (say, in a bookmark name) become U+FFFD.
        body = webhooks::Envelope(event_id, e.type, now, org, repo, public_url, e.data)
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
      ins->Reset();
      ins->Bind(1, event_id).Bind(2, e.type).Bind(3, t.id).Bind(4, body).Bind(5, now).Bind(6, now);
      if (auto st = ins->Run(); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PendingDelivery>> Store::DueDeliveries(int64_t now_ms, int limit,
                                                                  const std::vector<int64_t>& exclude) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "SELECT d.seq, d.event_id, d.event_type, d.body, d.target_id, t.url, t.secret, d.attempts "
      "FROM webhook_deliveries d JOIN webhook_targets t ON t.id = d.target_id "
      "WHERE d.state = 'pending' AND d.next_attempt_at <= ? "
      "AND d.seq NOT IN (SELECT value FROM json_each(?)) ORDER BY d.next_attempt_at, d.seq LIMIT ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, now_ms).Bind(2, SeqList(exclude)).Bind(3, limit);
  std::vector<PendingDelivery> out;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    PendingDelivery d;
    d.seq = stmt->Int(0);
    d.event_id = stmt->Text(1);
    d.event_type = stmt->Text(2);
    d.body = stmt->Text(3);
    d.target_id = stmt->Text(4);
    d.url = stmt->Text(5);
    d.secret = stmt->Text(6);
    d.attempts = static_cast<int>(stmt->Int(7));
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<std::optional<int64_t>> Store::NextDeliveryAt(const std::vector<int64_t>& exclude) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending' "
      "AND seq NOT IN (SELECT value FROM json_each(?))");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, SeqList(exclude));
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<int64_t>();
  return stmt->OptInt(0);
}

absl::Status Store::CompleteDelivery(int64_t seq) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare("DELETE FROM webhook_deliveries WHERE seq = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, seq);
  return stmt->Run();
}

absl::Status Store::FailDelivery(int64_t seq, int attempts, std::optional<int64_t> retry_at_ms,
                                 const std::string& error) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "UPDATE webhook_deliveries SET attempts = ?, state = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, static_cast<int64_t>(attempts)).Bind(2, retry_at_ms ? "pending" : "failed")
      .Bind(3, retry_at_ms.value_or(rest::NowUnixMillis())).Bind(4, error).Bind(5, seq);
  return stmt->Run();
}

absl::StatusOr<int64_t> Store::PruneFailedDeliveries(int64_t failed_before_ms) {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare("DELETE FROM webhook_deliveries WHERE state = 'failed' AND next_attempt_at < ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, failed_before_ms);
  if (auto st = stmt->Run(); !st.ok()) return st;
  return (*db)->Changes();
}

absl::StatusOr<OutboxStats> Store::GetOutboxStats() {
  auto db = in_->db.Acquire();
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(
      "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0) FROM webhook_deliveries");
  if (!stmt.ok()) return stmt.status();
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  OutboxStats s;
  if (*row) {
    s.pending = stmt->Int(0);
    s.failed = stmt->Int(1);
  }
  return s;
}

}  // namespace mesa::server
