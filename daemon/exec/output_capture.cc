#include "daemon/exec/output_capture.h"

#include <algorithm>

namespace mesa::daemon {

void OutputCapture::Append(std::string_view data) {
  total_ += data.size();
  if (head_.size() < head_cap_) {
    size_t n = std::min<uint64_t>(data.size(), head_cap_ - head_.size());
    head_.append(data.substr(0, n));
    data.remove_prefix(n);
  }
  if (data.empty() || tail_cap_ == 0) return;
  if (data.size() >= tail_cap_) {
    ring_.assign(data.substr(data.size() - tail_cap_));
    ring_pos_ = 0;
    return;
  }
  if (ring_.size() < tail_cap_) {
    size_t n = std::min<uint64_t>(data.size(), tail_cap_ - ring_.size());
    ring_.append(data.substr(0, n));
    data.remove_prefix(n);
    if (ring_.size() == tail_cap_) ring_pos_ = 0;
  }
  // Full ring: overwrite the oldest bytes, starting at ring_pos_.
  while (!data.empty()) {
    size_t n = std::min(data.size(), ring_.size() - ring_pos_);
    ring_.replace(ring_pos_, n, data.substr(0, n));
    ring_pos_ = (ring_pos_ + n) % ring_.size();
    data.remove_prefix(n);
  }
}

std::string OutputCapture::Take() {
  std::string out = std::move(head_);
  out.append(ring_, ring_pos_, std::string::npos);
  out.append(ring_, 0, ring_pos_);
  head_.clear();
  ring_.clear();
  ring_pos_ = 0;
  return out;
}

}  // namespace mesa::daemon
