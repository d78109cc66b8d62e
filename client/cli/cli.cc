#include "client/cli/cli.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <sstream>

namespace mesa::cli {

// ---- Context ----

void Context::ApplyGlobals(const ParsedArgs& args) {
  if (auto v = args.value("socket")) socket = *v;
  if (auto v = args.value("session")) session = *v;
  if (auto v = args.value("org")) org = *v;
  if (args.has("json")) json = true;
}

std::string Context::SocketPath() const { return socket.empty() ? mesa::DefaultSocketPath() : socket; }

mesa::Client& Context::client() {
  if (!client_) client_ = ClientFor(session);
  return *client_;
}

std::unique_ptr<mesa::Client> Context::ClientFor(const std::string& session_id) const {
  mesa::ClientOptions options;
  options.socket = SocketPath();
  options.session_id = session_id;
  options.org = org;
  return std::make_unique<mesa::Client>(options);
}

// ---- Registry ----

Group& Registry::AddGroup(const std::string& name, const std::string& summary) {
  groups_.push_back(Group{name, summary, {}, false});
  return groups_.back();
}

void Registry::AddLeaf(Command command) {
  Group g{command.spec.name, command.spec.summary, {}, true};
  g.commands.push_back(std::move(command));
  groups_.push_back(std::move(g));
}

const Group* Registry::Find(const std::string& name) const {
  for (const auto& g : groups_) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

std::string GroupUsage(const Group& group) {
  if (group.leaf) return Usage(group.commands.front().spec);
  std::string out = "usage: mesa " + group.name + " COMMAND [options] [args]\n\n" + group.summary + "\n\ncommands:\n";
  size_t width = 0;
  for (const auto& c : group.commands) width = std::max(width, c.spec.name.size() - group.name.size() - 1);
  for (const auto& c : group.commands) {
    std::string sub = c.spec.name.substr(group.name.size() + 1);
    out += "  " + sub + std::string(width - sub.size() + 2, ' ') + c.spec.summary + "\n";
  }
  out += "\nRun 'mesa " + group.name + " COMMAND --help' for a command's options.\n";
  return out;
}

// ---- helpers ----

std::vector<Option> ListOptions() {
  return {
      {"all", 0, "", "follow every cursor and print everything"},
      {"limit", 0, "N", "page size (default: the server's, 50 on mesa-server)"},
      {"cursor", 0, "C", "start at this cursor (from a previous page)"},
  };
}

// The server checks its own maximum (100 on mesa-server).
int ListLimit(const ParsedArgs& args) {
  return static_cast<int>(args.int_value("limit", 1, std::numeric_limits<int32_t>::max()).value_or(0));
}

std::string ReadLocalFile(const std::string& path) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CliError("LOCAL_FILE", "cannot read " + path + ": " + std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw CliError("LOCAL_FILE", "cannot read " + path);
  return data;
}

void PrintSuccess(const Context& ctx, const std::string& human) {
  if (ctx.json) {
    PrintJson({{"success", true}});
  } else {
    std::cout << human << "\n";
  }
}

mesa::v1::Signature ParseSignature(const std::string& text, const std::string& what) {
  size_t lt = text.find('<');
  size_t gt = text.rfind('>');
  if (lt == std::string::npos || gt == std::string::npos || gt < lt)
    throw UsageError(what + " must look like 'Name <email>', not '" + text + "'");
  std::string name = text.substr(0, lt);
  while (!name.empty() && name.back() == ' ') name.pop_back();
  mesa::v1::Signature sig;
  sig.set_name(name);
  sig.set_email(text.substr(lt + 1, gt - lt - 1));
  return sig;
}

std::vector<Option> ResolutionOptions() {
  return {
      {"take", 0, "PATH=SIDE", "resolve a conflicted path by taking one side: target or source", true},
      {"resolve", 0, "PATH=@FILE", "resolve a conflicted path with the bytes of a local file", true},
  };
}

std::vector<mesa::daemon::v1::Resolution> ParseResolutions(const ParsedArgs& args) {
  std::vector<mesa::daemon::v1::Resolution> out;
  for (const auto& [name, value] : args.ordered()) {
    if (name == "take") {
      auto [path, side] = SplitKeyValue(value, "--take");
      if (side != "target" && side != "source")
        throw UsageError("--take " + path + "=" + side + ": the side must be target or source");
      auto& r = out.emplace_back();
      r.set_path(path);
      r.set_take(side);
    } else if (name == "resolve") {
      auto [path, file] = SplitKeyValue(value, "--resolve");
      if (file.size() < 2 || file.front() != '@') throw UsageError("--resolve must look like PATH=@LOCAL_FILE");
      auto& r = out.emplace_back();
      r.set_path(path);
      r.set_content(ReadLocalFile(file.substr(1)));
    }
  }
  return out;
}

}  // namespace mesa::cli
