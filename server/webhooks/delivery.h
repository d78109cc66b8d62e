// Drains the store's webhook outbox: HTTP POSTs with libcurl (multi interface, several
// deliveries in flight), signed per attempt, retried with exponential backoff.
//
//   POST <target url>
//   content-type: application/json
//   x-mesa-signature: t=<now>,sha256=<hex HMAC-SHA256(secret, "<t>." + body)>   (fresh t per attempt)
//   x-mesa-event: <type>, x-mesa-delivery: <event id>, user-agent: mesa-server-webhooks/1
//
// 2xx is delivered (the row is deleted). Anything else (non-2xx, timeout, connection error)
// is retried after backoff_initial * 2^(attempts-1) (capped at backoff_max) until
// max_attempts attempts were made; then the row stays in the outbox as `failed`. The body,
// and so the event id, is the same on every attempt. Deliveries are at least once: an
// attempt in flight when the process stops is sent again after a restart.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "server/store/store.h"

namespace mesa::server::webhooks {

struct DeliveryOptions {
  bool enabled = true;
  int max_attempts = 8;
  int64_t backoff_initial_ms = 1000;
  int64_t backoff_max_ms = 10 * 60 * 1000;
  int64_t timeout_ms = 10000;  // per attempt, connect included
  int max_in_flight = 8;
};

// Delay before the retry that follows attempt number `attempts` (1-based).
int64_t BackoffMs(const DeliveryOptions& options, int attempts);

class DeliveryWorker {
 public:
  DeliveryWorker(Store* store, DeliveryOptions options);
  ~DeliveryWorker();  // Stop()

  void Start();
  // Wakes the thread and joins it; in-flight attempts are abandoned (they stay pending).
  // Returns well within a second. Safe to call more than once and from any thread.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesa::server::webhooks
