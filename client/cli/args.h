// A small command-line parser for `mesa`: long options (`--name VALUE`, `--name=VALUE`),
// short aliases (`-m VALUE`), flags without a value, repeatable options, positionals, and `--`
// to end options. Options may appear anywhere among the positionals. Every command also
// accepts the global options (GlobalOptions()) and `-h`/`--help`.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mesa::cli {

// Bad command line: exit code 2, with the command's usage hint.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `-h`/`--help` was given: print `text` to stdout and exit 0.
struct HelpRequested {
  std::string text;
};

struct Option {
  std::string name;        // long name without the leading "--"
  char short_name = 0;     // 0: none
  std::string value_name;  // empty: a flag that takes no value
  std::string help;
  bool repeatable = false;
};

struct CommandSpec {
  std::string name;      // full path, e.g. "repos create"
  std::string synopsis;  // positionals as shown in usage, e.g. "REPO [PATH]"
  std::string summary;   // one line
  std::vector<Option> options;
  size_t min_positionals = 0;
  size_t max_positionals = 0;  // kVariadic: no upper bound
  std::string details;         // free text after the option list (examples, notes)
};

inline constexpr size_t kVariadic = static_cast<size_t>(-1);

// Options every command accepts (before or after the command name).
const std::vector<Option>& GlobalOptions();

class ParsedArgs {
 public:
  const std::vector<std::string>& positionals() const { return positionals_; }
  // The i-th positional, or `fallback` when absent.
  std::string positional(size_t i, const std::string& fallback = "") const;

  bool has(const std::string& name) const;
  // The last value of `name`, or nullopt.
  std::optional<std::string> value(const std::string& name) const;
  std::string value_or(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> values(const std::string& name) const;
  // An integer option in [min, max]; UsageError otherwise.
  std::optional<int64_t> int_value(const std::string& name, int64_t min, int64_t max) const;

  // Every option occurrence in command-line order (name, value; value empty for flags).
  const std::vector<std::pair<std::string, std::string>>& ordered() const { return options_; }

  void AddOption(std::string name, std::string value) { options_.emplace_back(std::move(name), std::move(value)); }
  void AddPositional(std::string value) { positionals_.push_back(std::move(value)); }

 private:
  std::vector<std::string> positionals_;
  std::vector<std::pair<std::string, std::string>> options_;
};

// Parses `argv` (the words after the command name) against `spec` plus GlobalOptions().
// Throws UsageError or HelpRequested.
ParsedArgs Parse(const CommandSpec& spec, const std::vector<std::string>& argv);

// Parses global options up to the first word that is not one, starting at argv[*index];
// advances *index past them. A `-h`/`--help` there is reported through *help.
ParsedArgs ParseLeadingGlobals(const std::vector<std::string>& argv, size_t* index, bool* help);

// The full `--help` text of a command.
std::string Usage(const CommandSpec& spec);

// Formats an option list as aligned "  --name VALUE   help" lines.
std::string FormatOptions(const std::vector<Option>& options);

// "KEY=VALUE" -> {KEY, VALUE}; UsageError naming `what` when there is no '=' or KEY is empty.
std::pair<std::string, std::string> SplitKeyValue(const std::string& text, const std::string& what);

}  // namespace mesa::cli
