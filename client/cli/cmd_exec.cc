// exec: run a command inside a mount, in mesad's sandbox, streaming its output live.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <charconv>
#include <iostream>

#include "client/cli/cli.h"
#include "client/cli/h2_call.h"

namespace mesa::cli {
namespace {

namespace dv1 = ::mesa::daemon::v1;

constexpr int kExitTimeout = 124;

// "30s", "1500ms", "2m", "1h" or plain seconds -> milliseconds.
uint32_t ParseTimeout(const std::string& text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string unit(end, text.data() + text.size());
  uint64_t scale = unit.empty() || unit == "s" ? 1000 : unit == "ms" ? 1 : unit == "m" ? 60000 : unit == "h" ? 3600000 : 0;
  if (ec != std::errc() || end == text.data() || scale == 0 || n == 0 || n * scale > UINT32_MAX)
    throw UsageError("--timeout must look like 30s, 1500ms, 2m or 1h, not '" + text + "'");
  return static_cast<uint32_t>(n * scale);
}

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw CliError("OUTPUT", "cannot write the command's output");
    done += static_cast<size_t>(n);
  }
}

int Exec(Context& ctx, const ParsedArgs& args) {
  const auto& words = args.positionals();
  dv1::ExecRequest req;
  req.set_mount(MountKey(words[0]));
  std::string command;
  for (size_t i = 1; i < words.size(); ++i) command += (i > 1 ? " " : "") + words[i];
  req.set_command(command);
  req.set_cwd(args.value_or("cwd", ""));
  for (const auto& kv : args.values("env")) {
    auto [key, value] = SplitKeyValue(kv, "--env");
    (*req.mutable_env())[key] = value;
  }
  if (auto t = args.value("timeout")) req.set_timeout_ms(ParseTimeout(*t));
  if (args.has("stdin")) req.set_stdin(ReadLocalFile("-"));

  // Not through ctx.client(): one call over a bare HTTP/2 connection (see h2_call.h) starts
  // ~3 ms sooner than a gRPC channel would, which is most of a short command's overhead.
  auto command_ms = std::chrono::milliseconds(req.timeout_ms() ? req.timeout_ms() : 30000);
  auto timeout = mesa::ClientOptions().timeout + command_ms;
  H2Call call(ctx.SocketPath());
  dv1::ExecResult result;
  if (ctx.json) {
    call.Call("/mesa.daemon.v1.Exec/Exec", req, timeout, [&](std::string&& bytes) {
      if (!result.ParseFromString(bytes)) throw CliError("PROTOCOL", "mesad sent an ExecResult that does not parse");
      return true;
    });
    PrintMessageJson(result);
  } else {
    dv1::ExecStreamEvent ev;
    call.Call("/mesa.daemon.v1.Exec/ExecStream", req, timeout, [&](std::string&& bytes) {
      if (!ev.ParseFromString(bytes)) throw CliError("PROTOCOL", "mesad sent an ExecStreamEvent that does not parse");
      if (ev.has_stdout()) WriteAll(1, ev.stdout());
      if (ev.has_stderr()) WriteAll(2, ev.stderr());
      if (ev.has_result()) result = std::move(*ev.mutable_result());
      return true;
    });
  }
  std::cout.flush();
  if (result.timed_out()) {
    std::cerr << "mesa: TIMED_OUT: the command ran out of time after " << result.duration_ms()
              << " ms and was killed\n";
    return kExitTimeout;
  }
  if (result.cancelled()) {
    std::cerr << "mesa: CANCELLED: the command was stopped (" << result.cancel_reason() << ")\n";
  }
  return result.exit_code();
}

}  // namespace

void RegisterExecCommands(Registry& r) {
  r.AddLeaf({{"exec", "MOUNT -- COMMAND...",
              "run a command inside a mount, in mesad's sandbox, and stream its output",
              {{"cwd", 0, "DIR", "working directory inside the sandbox, e.g. /my-repo/src (default /)"},
               {"env", 'e', "KEY=VALUE", "set an environment variable", true},
               {"timeout", 't', "DURATION", "kill the command after 30s, 1500ms, 2m, 1h (default: mesad's, 30s)"},
               {"stdin", 'i', "", "send this process's stdin to the command (default: /dev/null)"}},
              2,
              kVariadic,
              "The words after -- are joined with spaces and run as `bash -c`, like ssh does:\n"
              "quote a pipeline as one word (mesa exec m -- 'make 2>&1 | tail').\n"
              "The command runs as you, with the mount's repos at /<repo>, read-only system\n"
              "directories, a private /tmp and home, no network, and only PATH, HOME, LANG and\n"
              "the --env variables in its environment. Files it writes go through the mount.\n\n"
              "Exit status: the command's (128+N when signal N killed it), 124 on timeout, or\n"
              "mesa's own error codes (see mesa --help) when the command could not run.\n"
              "--json: run to the end and print the result (output capped by mesad) as JSON.\n\n"
              "examples:\n"
              "  mesa exec m1 --cwd /my-repo -- make test\n"
              "  mesa exec m1 -e CI=1 --timeout 10m -- 'cd /my-repo && ./build.sh 2>&1 | tee /tmp/log'"},
             Exec});
}

}  // namespace mesa::cli
