#pragma once

#include <string>

namespace mesa::testing {

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs a shell command; returns its exit status and captures stdout.
int RunCommand(const std::string& command, std::string* out = nullptr);

}  // namespace mesa::testing
