// The sandbox's /etc: a copy of the few host files commands need (the dynamic linker's cache,
// nsswitch, alternatives for cc and friends, TLS roots, ...), world-readable ones only, made
// under a directory of mesad's and bound at /etc with a single mount (one bind per file costs
// each command milliseconds). Remade, as a new generation, when the host's files change; a
// running sandbox keeps the generation it started with (old ones are removed at the next start).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace mesa::daemon {

// The names under /etc that the sandbox shows (when the host has them).
const std::vector<std::string>& SandboxEtcNames(bool network);

class EtcSnapshot {
 public:
  // `parent`: a root-owned directory every user may traverse (the copies are world-readable).
  EtcSnapshot(std::string parent, bool network) : parent_(std::move(parent)), network_(network) {}

  // The directory to bind at /etc, remade first if the host's files changed (looked at most
  // once a second); empty if it cannot be made (the sandbox then binds the host's files one
  // by one).
  std::string Current();

 private:
  // lstat times of the sources and of every directory below them.
  std::string Signature() const;
  bool Build(const std::string& dir) const;

  std::string parent_;
  bool network_;
  std::mutex mu_;
  std::string current_;
  std::string signature_;
  int generation_ = 0;
  std::chrono::steady_clock::time_point checked_;
};

}  // namespace mesa::daemon
