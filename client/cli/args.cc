#include "client/cli/args.h"

#include <algorithm>
#include <charconv>

namespace mesa::cli {

const std::vector<Option>& GlobalOptions() {
  static const std::vector<Option> kGlobals = {
      {"socket", 0, "PATH", "mesad's socket (default $MESA_SOCKET, else /run/mesad/mesad.sock)"},
      {"session", 0, "ID", "use this session instead of the default one"},
      {"org", 0, "ORG", "organization for this call (login: the session's org)"},
      {"json", 0, "", "machine output: the result as JSON"},
  };
  return kGlobals;
}

std::string ParsedArgs::positional(size_t i, const std::string& fallback) const {
  return i < positionals_.size() ? positionals_[i] : fallback;
}

bool ParsedArgs::has(const std::string& name) const {
  return std::any_of(options_.begin(), options_.end(), [&](const auto& o) { return o.first == name; });
}

std::optional<std::string> ParsedArgs::value(const std::string& name) const {
  std::optional<std::string> out;
  for (const auto& [k, v] : options_) {
    if (k == name) out = v;
  }
  return out;
}

std::string ParsedArgs::value_or(const std::string& name, const std::string& fallback) const {
  auto v = value(name);
  return v ? *v : fallback;
}

std::vector<std::string> ParsedArgs::values(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : options_) {
    if (k == name) out.push_back(v);
  }
  return out;
}

std::optional<int64_t> ParsedArgs::int_value(const std::string& name, int64_t min, int64_t max) const {
  auto text = value(name);
  if (!text) return std::nullopt;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc() || end != text->data() + text->size() || n < min || n > max) {
    throw UsageError("--" + name + " must be an integer between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", not '" + *text + "'");
  }
  return n;
}

namespace {

const Option* FindLong(const std::vector<const Option*>& options, const std::string& name) {
  for (const Option* o : options) {
    if (o->name == name) return o;
  }
  return nullptr;
}

const Option* FindShort(const std::vector<const Option*>& options, char c) {
  for (const Option* o : options) {
    if (o->short_name == c) return o;
  }
  return nullptr;
}

// Consumes one option word at argv[*i] (and its value). Returns false when argv[*i] is not
// an option. Sets *help on -h/--help.
bool TakeOption(const std::vector<const Option*>& options, const std::vector<std::string>& argv, size_t* i,
                ParsedArgs* out, bool* help) {
  const std::string& word = argv[*i];
  if (word.size() < 2 || word[0] != '-' || word == "--") return false;
  if (word == "-h" || word == "--help") {
    *help = true;
    ++*i;
    return true;
  }
  const Option* opt = nullptr;
  std::optional<std::string> inline_value;
  std::string shown;
  if (word[1] == '-') {
    std::string name = word.substr(2);
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    opt = FindLong(options, name);
    shown = "--" + name;
  } else {
    opt = word.size() == 2 ? FindShort(options, word[1]) : nullptr;
    if (!opt && word.size() > 2) {
      // -mVALUE
      opt = FindShort(options, word[1]);
      if (opt && !opt->value_name.empty()) inline_value = word.substr(2);
      else opt = nullptr;
    }
    shown = word.substr(0, 2);
  }
  if (!opt) throw UsageError("unknown option " + shown);
  if (opt->value_name.empty()) {
    if (inline_value) throw UsageError(shown + " takes no value");
    out->AddOption(opt->name, "");
    ++*i;
    return true;
  }
  if (!inline_value) {
    if (*i + 1 >= argv.size()) throw UsageError(shown + " needs a value (" + opt->value_name + ")");
    inline_value = argv[*i + 1];
    ++*i;
  }
  if (!opt->repeatable && out->has(opt->name)) {
    // Global options may legitimately appear twice (before and after the command); the last wins.
    bool global = std::any_of(GlobalOptions().begin(), GlobalOptions().end(),
                              [&](const Option& g) { return g.name == opt->name; });
    if (!global) throw UsageError(shown + " given more than once");
  }
  out->AddOption(opt->name, *inline_value);
  ++*i;
  return true;
}

std::vector<const Option*> AllOptions(const CommandSpec& spec) {
  std::vector<const Option*> all;
  for (const auto& o : spec.options) all.push_back(&o);
  for (const auto& o : GlobalOptions()) {
    if (!FindLong(all, o.name)) all.push_back(&o);
  }
  return all;
}

}  // namespace

ParsedArgs Parse(const CommandSpec& spec, const std::vector<std::string>& argv) {
  auto options = AllOptions(spec);
  ParsedArgs out;
  bool help = false;
  bool only_positionals = false;
  for (size_t i = 0; i < argv.size();) {
    if (!only_positionals && argv[i] == "--") {
      only_positionals = true;
      ++i;
      continue;
    }
    if (!only_positionals && TakeOption(options, argv, &i, &out, &help)) continue;
    out.AddPositional(argv[i]);
    ++i;
  }
  if (help) throw HelpRequested{Usage(spec)};
  size_t n = out.positionals().size();
  if (n < spec.min_positionals) {
    throw UsageError(spec.synopsis.empty() ? "missing argument"
                                           : "missing argument(s): expected " + spec.synopsis);
  }
  if (spec.max_positionals != kVariadic && n > spec.max_positionals) {
    throw UsageError("unexpected argument '" + out.positionals()[spec.max_positionals] + "'");
  }
  return out;
}

ParsedArgs ParseLeadingGlobals(const std::vector<std::string>& argv, size_t* index, bool* help) {
  std::vector<const Option*> options;
  for (const auto& o : GlobalOptions()) options.push_back(&o);
  ParsedArgs out;
  while (*index < argv.size() && TakeOption(options, argv, index, &out, help)) {
  }
  return out;
}

std::string FormatOptions(const std::vector<Option>& options) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const auto& o : options) {
    std::string left = o.short_name ? std::string("-") + o.short_name + ", " : "    ";
    left += "--" + o.name;
    if (!o.value_name.empty()) left += " " + o.value_name;
    std::string help = o.help;
    if (o.repeatable) help += " (repeatable)";
    width = std::max(width, left.size());
    rows.emplace_back(left, help);
  }
  std::string out;
  for (const auto& [left, help] : rows) {
    out += "  " + left + std::string(width - left.size() + 2, ' ') + help + "\n";
  }
  return out;
}

std::string Usage(const CommandSpec& spec) {
  std::string out = "usage: mesa " + spec.name;
  if (!spec.options.empty()) out += " [options]";
  if (!spec.synopsis.empty()) out += " " + spec.synopsis;
  out += "\n\n" + spec.summary + "\n";
  if (!spec.options.empty()) out += "\noptions:\n" + FormatOptions(spec.options);
  std::vector<Option> globals = GlobalOptions();
  globals.push_back({"help", 'h', "", "show this help"});
  out += "\nglobal options:\n" + FormatOptions(globals);
  if (!spec.details.empty()) out += "\n" + spec.details + (spec.details.back() == '\n' ? "" : "\n");
  return out;
}

std::pair<std::string, std::string> SplitKeyValue(const std::string& text, const std::string& what) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw UsageError(what + " must look like KEY=VALUE, not '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace mesa::cli
