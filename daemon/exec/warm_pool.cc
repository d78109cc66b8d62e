#include "daemon/exec/warm_pool.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "daemon/log.h"

namespace mesa::daemon {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// bwrap has exited (so the sandbox is no use any more).
bool Ended(const SandboxProcess& sp) {
  if (sp.pidfd < 0) return false;
  pollfd p{sp.pidfd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

}  // namespace

WarmPool::WarmPool(SpawnFn spawn, MountAliveFn mount_alive, int idle_ms)
    : spawn_(std::move(spawn)), mount_alive_(std::move(mount_alive)), idle_ms_(idle_ms) {
  thread_ = std::thread([this] { Loop(); });
}

WarmPool::~WarmPool() {
  Shutdown();
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WarmPool::Kill(std::unique_ptr<WarmSandbox> w) {
  if (!w) return;
  KillUnusedSandbox(w->sp);
  w->cgroup.reset();  // kills anything left in it, removes it
}

bool WarmPool::StillWantedLocked(const Request& r) const {
  if (stopping_ || idle_ms_ <= 0) return false;
  auto it = cancelled_.find(r.mount_id);
  return it == cancelled_.end() || r.epoch >= it->second;
}

std::unique_ptr<WarmSandbox> WarmPool::Take(uid_t uid, const std::string& mount_id, const std::string& fingerprint) {
  std::unique_ptr<WarmSandbox> w;
  {
    std::unique_lock<std::mutex> lock(mu_);
    Key key(uid, mount_id);
    // One being started for this uid and mount is nearly there (bwrap is exec'd within a
    // millisecond or so): better than setting up another.
    settled_.wait(lock, [&] { return !spawning_ || spawning_key_ != key; });
    auto it = warm_.find(key);
    if (it == warm_.end()) return nullptr;
    w = std::move(it->second);
    warm_.erase(it);
    if (w->fingerprint == fingerprint && !Ended(w->sp)) {
      ++stats_.taken;
      return w;
    }
    ++stats_.dropped;
  }
  MESA_LOG(kDebug) << "exec: warm sandbox of uid " << uid << " in " << mount_id << " (bwrap pid " << w->sp.pid
                   << ") does not fit this command; killing it";
  Kill(std::move(w));
  return nullptr;
}

void WarmPool::Prepare(const SandboxSpec& spec, const std::string& mount_id, const std::string& fingerprint) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || idle_ms_ <= 0) return;
    Key key(spec.uid, mount_id);
    if (wanted_.count(key)) return;
    auto it = warm_.find(key);
    if (it != warm_.end() && it->second->fingerprint == fingerprint) return;
    Request r;
    r.spec = spec;
    // Nothing of the command stays in the pool.
    r.spec.command.clear();
    r.spec.env.clear();
    r.spec.cwd = "/";
    r.spec.has_stdin = false;
    r.spec.cgroup_procs_fd = -1;
    r.mount_id = mount_id;
    r.fingerprint = fingerprint;
    r.epoch = epoch_;
    queue_.push_back(std::move(r));
    wanted_.insert(key);
  }
  wake_.notify_all();
}

void WarmPool::CancelMount(const std::string& mount_id) {
  std::vector<std::unique_ptr<WarmSandbox>> doomed;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cancelled_[mount_id] = ++epoch_;
    for (auto it = warm_.begin(); it != warm_.end();) {
      if (it->first.second == mount_id) {
        doomed.push_back(std::move(it->second));
        it = warm_.erase(it);
      } else {
        ++it;
      }
    }
    std::erase_if(queue_, [&](const Request& r) {
      if (r.mount_id != mount_id) return false;
      wanted_.erase(Key(r.spec.uid, r.mount_id));
      return true;
    });
    stats_.dropped += doomed.size();
    // One being made for this mount is killed by the thread when it is ready (its request
    // predates the cancel); wait for that.
    settled_.wait(lock, [&] { return !spawning_ || spawning_key_.second != mount_id; });
  }
  for (auto& w : doomed) Kill(std::move(w));
}

void WarmPool::Shutdown() {
  std::vector<std::unique_ptr<WarmSandbox>> doomed;
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [key, w] : warm_) doomed.push_back(std::move(w));
    warm_.clear();
    queue_.clear();
    wanted_.clear();
    stats_.dropped += doomed.size();
    settled_.wait(lock, [&] { return !spawning_; });
  }
  wake_.notify_all();
  for (auto& w : doomed) Kill(std::move(w));
}

void WarmPool::SetIdleMs(int idle_ms) {
  std::vector<std::unique_ptr<WarmSandbox>> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_ms_ = idle_ms;
    if (idle_ms <= 0) {
      for (auto& [key, w] : warm_) doomed.push_back(std::move(w));
      warm_.clear();
      queue_.clear();
      wanted_.clear();
      stats_.dropped += doomed.size();
    }
  }
  wake_.notify_all();  // expiry times changed
  for (auto& w : doomed) Kill(std::move(w));
}

WarmPool::Stats WarmPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.waiting = static_cast<int>(warm_.size());
  return s;
}

void WarmPool::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!quit_) {
    // Unused past the idle time, or ended on their own (reaped here, not left as zombies).
    std::vector<std::unique_ptr<WarmSandbox>> doomed;
    int64_t now = NowMs();
    int64_t next = now + 1000;  // also how soon a sandbox that died on its own is reaped
    for (auto it = warm_.begin(); it != warm_.end();) {
      int64_t expires = it->second->started_ms + idle_ms_;
      bool expired = now >= expires;
      if (expired || Ended(it->second->sp)) {
        ++(expired ? stats_.expired : stats_.dropped);
        if (expired) {
          MESA_LOG(kDebug) << "exec: warm sandbox of uid " << it->first.first << " in " << it->first.second
                           << " unused for " << idle_ms_ << " ms; killing it";
        }
        doomed.push_back(std::move(it->second));
        it = warm_.erase(it);
      } else {
        next = std::min(next, expires);
        ++it;
      }
    }
    if (!doomed.empty()) {
      lock.unlock();
      for (auto& w : doomed) Kill(std::move(w));
      lock.lock();
      continue;
    }

    if (!queue_.empty()) {
      Request r = std::move(queue_.front());
      queue_.pop_front();
      Key key(r.spec.uid, r.mount_id);
      std::unique_ptr<WarmSandbox> replaced;
      auto it = warm_.find(key);
      if (!StillWantedLocked(r) || (it != warm_.end() && it->second->fingerprint == r.fingerprint)) {
        wanted_.erase(key);
        continue;
      }
      if (it != warm_.end()) {  // made for another configuration: this one replaces it
        replaced = std::move(it->second);
        warm_.erase(it);
        ++stats_.dropped;
      }
      spawning_ = true;
      spawning_key_ = key;
      lock.unlock();
      Kill(std::move(replaced));
      absl::StatusOr<std::unique_ptr<WarmSandbox>> made =
          mount_alive_(key.first, key.second) ? spawn_(r.spec) : absl::StatusOr<std::unique_ptr<WarmSandbox>>(nullptr);
      lock.lock();
      wanted_.erase(key);
      std::unique_ptr<WarmSandbox> w;
      if (!made.ok()) {
        MESA_LOG(kWarning) << "exec: cannot prepare a warm sandbox for uid " << key.first << " in " << key.second << ": "
                           << made.status().message();
      } else if (*made) {
        w = std::move(*made);
        w->uid = key.first;
        w->mount_id = key.second;
        w->fingerprint = r.fingerprint;
        w->started_ms = NowMs();
        ++stats_.spawned;
        if (StillWantedLocked(r) && !warm_.count(key)) {
          warm_[key] = std::move(w);
        } else {
          ++stats_.dropped;
        }
      }
      if (w) {  // not wanted any more: unmounted, stopping, or disabled meanwhile
        lock.unlock();
        Kill(std::move(w));
        lock.lock();
      }
      spawning_ = false;
      settled_.notify_all();
      continue;
    }

    if (!spawning_) cancelled_.clear();  // no request older than any cancel is left
    if (idle_ms_ <= 0 || warm_.empty()) next = now + 1000;
    wake_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(next - now, 1)));
  }
}

}  // namespace mesa::daemon
