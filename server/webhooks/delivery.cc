#include "server/webhooks/delivery.h"

#include <curl/curl.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <vector>

#include "rest/time_format.h"
#include "rest/webhook_signature.h"

namespace mesa::server::webhooks {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Discard(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

constexpr int64_t kKeepFailedMs = 7LL * 24 * 3600 * 1000;

}  // namespace

int64_t BackoffMs(const DeliveryOptions& o, int attempts) {
  int64_t delay = std::max<int64_t>(1, o.backoff_initial_ms);
  for (int i = 1; i < attempts && delay < o.backoff_max_ms; ++i) delay *= 2;
  return std::min(delay, std::max<int64_t>(1, o.backoff_max_ms));
}

class DeliveryWorker::Impl {
 public:
  Impl(Store* store, DeliveryOptions options) : store_(store), o_(options) {
    GlobalInit();
    o_.max_attempts = std::max(1, o_.max_attempts);
    o_.max_in_flight = std::max(1, o_.max_in_flight);
  }
  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_.joinable()) return;
    multi_ = curl_multi_init();
    if (!multi_) {
      std::cerr << "mesa-server: webhooks: curl_multi_init failed; deliveries disabled" << std::endl;
      return;
    }
    stop_ = false;
    // Given-up deliveries are kept a week for inspection (sqlite3 meta.db), then dropped.
    (void)store_->PruneFailedDeliveries(rest::NowUnixMillis() - kKeepFailedMs);
    CURLM* multi = multi_;
    store_->SetOutboxListener([multi] { curl_multi_wakeup(multi); });
    thread_ = std::thread([this] { Loop(); });
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    store_->SetOutboxListener(nullptr);  // no wakeups of a multi handle about to go away
    stop_ = true;
    curl_multi_wakeup(multi_);
    thread_.join();
    curl_multi_cleanup(multi_);
    multi_ = nullptr;
  }

 private:
  struct InFlight {
    PendingDelivery d;
    curl_slist* headers = nullptr;
    char error[CURL_ERROR_SIZE] = {};
  };

  std::vector<int64_t> InFlightSeqs() const {
    std::vector<int64_t> seqs;
    for (const auto& [easy, f] : inflight_) seqs.push_back(f->d.seq);
    return seqs;
  }

  void Loop() {
    while (!stop_) {
      bool db_ok = true;
      int capacity = o_.max_in_flight - static_cast<int>(inflight_.size());
      if (capacity > 0) {
        auto due = store_->DueDeliveries(rest::NowUnixMillis(), capacity, InFlightSeqs());
        if (due.ok()) {
          for (auto& d : *due) Launch(std::move(d));
        } else {
          db_ok = false;
          LogOnce("outbox read failed: " + std::string(due.status().message()));
        }
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
        if (m->msg == CURLMSG_DONE) Finish(m->easy_handle, m->data.result);
      }
      // Sleep until a retry is due, a transfer progresses, a mutation commits an event
      // (the store's listener wakes us) or Stop(); at most a second.
      int64_t wait = 1000;
      if (db_ok && static_cast<int>(inflight_.size()) < o_.max_in_flight) {
        auto next = store_->NextDeliveryAt(InFlightSeqs());
        if (next.ok() && next->has_value()) wait = std::clamp<int64_t>(**next - rest::NowUnixMillis(), 0, 1000);
      }
      if (stop_) break;
      if (wait > 0 || !inflight_.empty()) curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait), nullptr);
    }
    // Abandon what is in flight: those rows stay pending and go out after a restart.
    for (auto& [easy, f] : inflight_) Release(easy, *f);
    inflight_.clear();
  }

  void Launch(PendingDelivery d) {
    auto f = std::make_unique<InFlight>();
    f->d = std::move(d);
    CURL* easy = curl_easy_init();
    if (!easy) return;
    int64_t t = rest::NowUnixMillis() / 1000;  // fresh per attempt
    std::string signature = std::string(rest::kWebhookSignatureHeader) + ": " +
                            rest::SignWebhook(f->d.secret, t, f->d.body);
    for (const std::string& h : {std::string("Content-Type: application/json"), signature,
                                 "x-mesa-event: " + f->d.event_type, "x-mesa-delivery: " + f->d.event_id,
                                 std::string("Expect:")}) {
      f->headers = curl_slist_append(f->headers, h.c_str());
    }
    curl_easy_setopt(easy, CURLOPT_URL, f->d.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, f->d.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(f->d.body.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "mesa-server-webhooks/1");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(o_.timeout_ms));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.timeout_ms));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, Discard);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, f->error);
    if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
      curl_easy_cleanup(easy);
      curl_slist_free_all(f->headers);
      return;
    }
    inflight_.emplace(easy, std::move(f));
  }

  void Finish(CURL* easy, CURLcode result) {
    auto it = inflight_.find(easy);
    if (it == inflight_.end()) return;
    InFlight& f = *it->second;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    absl::Status st;
    if (result == CURLE_OK && status >= 200 && status < 300) {
      st = store_->CompleteDelivery(f.d.seq);
    } else {
      std::string error = result != CURLE_OK ? std::string(f.error[0] ? f.error : curl_easy_strerror(result))
                                             : "HTTP " + std::to_string(status);
      int attempts = f.d.attempts + 1;
      bool give_up = attempts >= o_.max_attempts;
      int64_t delay = give_up ? 0 : BackoffMs(o_, attempts);
      // The target id, never its URL (it may carry credentials) or secret.
      std::cerr << "mesa-server: webhook " << f.d.event_id << " (" << f.d.event_type << ") to " << f.d.target_id
                << ": attempt " << attempts << "/" << o_.max_attempts << " failed (" << error << ")"
                << (give_up ? "; giving up" : "; retrying in " + std::to_string(delay) + " ms") << std::endl;
      st = store_->FailDelivery(f.d.seq, attempts,
                                give_up ? std::nullopt : std::optional<int64_t>(rest::NowUnixMillis() + delay), error);
    }
    if (!st.ok()) LogOnce("outbox update failed: " + std::string(st.message()));
    Release(easy, f);
    inflight_.erase(it);
  }

  void Release(CURL* easy, InFlight& f) {
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(f.headers);
    f.headers = nullptr;
  }

  void LogOnce(const std::string& message) {
    if (message == last_error_) return;
    last_error_ = message;
    std::cerr << "mesa-server: webhooks: " << message << std::endl;
  }

  Store* store_;
  DeliveryOptions o_;
  std::mutex mu_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  CURLM* multi_ = nullptr;
  std::map<CURL*, std::unique_ptr<InFlight>> inflight_;
  std::string last_error_;
};

DeliveryWorker::DeliveryWorker(Store* store, DeliveryOptions options)
    : impl_(std::make_unique<Impl>(store, options)) {}

DeliveryWorker::~DeliveryWorker() = default;

void DeliveryWorker::Start() { impl_->Start(); }

void DeliveryWorker::Stop() { impl_->Stop(); }

}  // namespace mesa::server::webhooks
