// What a run of the `mesa` CLI gave a test: exit code, stdout, stderr, and the two output forms.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"

namespace mesa::testing {

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
  nlohmann::json Json() const {
    auto j = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << out;
    return j;
  }
  // The value of a "key: value" line.
  std::string Field(const std::string& key) const {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(key + ": ", 0) == 0) return line.substr(key.size() + 2);
    }
    ADD_FAILURE() << "no '" << key << ":' line in:\n" << out;
    return "";
  }
  size_t Lines() const { return static_cast<size_t>(std::count(out.begin(), out.end(), '\n')); }
};

inline std::ostream& operator<<(std::ostream& os, const CliResult& r) {
  return os << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

}  // namespace mesa::testing
