// One output stream of a command, kept within a byte cap without ever holding more: the first
// cap - cap/2 bytes (head) and the last cap/2 bytes (tail) of everything appended.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mesa::daemon {

class OutputCapture {
 public:
  explicit OutputCapture(uint64_t cap) : head_cap_(cap - cap / 2), tail_cap_(cap / 2) {}

  void Append(std::string_view data);
  uint64_t total() const { return total_; }
  bool truncated() const { return total_ > head_cap_ + tail_cap_; }
  // Head + tail, in order (the whole output when nothing was dropped).
  std::string Take();

 private:
  uint64_t head_cap_;
  uint64_t tail_cap_;
  uint64_t total_ = 0;
  std::string head_;
  std::string ring_;  // grows to tail_cap_, then wraps at ring_pos_
  size_t ring_pos_ = 0;
};

}  // namespace mesa::daemon
