#include "client/cli/h2_call.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>

#include "absl/strings/escaping.h"
#include "grpcpp/support/status.h"
#include "mesa/errors.h"

namespace mesa::cli {
namespace {

constexpr size_t kMaxMessageBytes = 512u << 20;  // as the stub's channel allows
constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 1 << 24;

[[noreturn]] void Fail(grpc::StatusCode code, const std::string& message, const std::string& details = "") {
  ThrowForStatus(grpc::Status(code, message, details));
  std::abort();  // ThrowForStatus always throws for a non-OK status
}

// grpc-message is percent-encoded (PROTOCOL-HTTP2.md).
std::string PercentDecode(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// gRPC's timeout header: at most 8 digits and a unit.
std::string TimeoutHeader(std::chrono::milliseconds timeout) {
  int64_t ms = std::max<int64_t>(timeout.count(), 1);
  if (ms < 100000000) return std::to_string(ms) + "m";
  return std::to_string(std::min<int64_t>(ms / 1000, 99999999)) + "S";
}

// The state the nghttp2 callbacks fill in. They never call user code (nor throw): messages
// are queued and handed out by H2Call::Call between reads.
struct CallState {
  int fd = -1;
  int32_t stream_id = -1;
  std::string request;  // the length-prefixed request message
  size_t request_sent = 0;
  std::string partial;  // bytes of a response message not complete yet
  std::deque<std::string> messages;
  std::map<std::string, std::string> headers;  // response headers and trailers
  bool closed = false;
  uint32_t close_error = 0;
  std::string protocol_error;
};

ssize_t OnSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
  auto* st = static_cast<CallState*>(user);
  size_t done = 0;
  while (done < length) {
    ssize_t n = send(st->fd, data + done, length - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(length);
}

ssize_t ReadRequest(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source*,
                    void* user) {
  auto* st = static_cast<CallState*>(user);
  size_t n = std::min(length, st->request.size() - st->request_sent);
  memcpy(buf, st->request.data() + st->request_sent, n);
  st->request_sent += n;
  if (st->request_sent == st->request.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
             size_t valuelen, uint8_t, void* user) {
  auto* st = static_cast<CallState*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->hd.stream_id == st->stream_id) {
    st->headers[std::string(reinterpret_cast<const char*>(name), namelen)] =
        std::string(reinterpret_cast<const char*>(value), valuelen);
  }
  return 0;
}

int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* user) {
  auto* st = static_cast<CallState*>(user);
  if (stream_id != st->stream_id || !st->protocol_error.empty()) return 0;
  st->partial.append(reinterpret_cast<const char*>(data), len);
  // Messages: a compressed flag (0: we accept no encoding), a 4-byte big-endian length, bytes.
  size_t at = 0;
  while (st->partial.size() - at >= 5) {
    const auto* p = reinterpret_cast<const unsigned char*>(st->partial.data() + at);
    size_t size = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | size_t{p[4]};
    if (p[0] != 0) {
      st->protocol_error = "mesad sent a compressed message";
      break;
    }
    if (size > kMaxMessageBytes) {
      st->protocol_error = "mesad sent a message of " + std::to_string(size) + " bytes";
      break;
    }
    if (st->partial.size() - at - 5 < size) break;
    st->messages.push_back(st->partial.substr(at + 5, size));
    at += 5 + size;
  }
  st->partial.erase(0, at);
  return 0;
}

int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
  auto* st = static_cast<CallState*>(user);
  if (stream_id == st->stream_id) {
    st->closed = true;
    st->close_error = error_code;
  }
  return 0;
}

struct SessionDeleter {
  void operator()(nghttp2_session* s) const { nghttp2_session_del(s); }
};

nghttp2_nv Header(const char* name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), strlen(name), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME};
}

}  // namespace

H2Call::H2Call(const std::string& socket_path) : socket_path_(socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    throw DaemonUnavailableError("DAEMON_UNAVAILABLE", "mesad is not reachable: the socket path is too long");
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string why = strerror(errno);
    throw DaemonUnavailableError("DAEMON_UNAVAILABLE", "mesad is not reachable: connect: " + why);
  }
}

H2Call::~H2Call() {
  if (fd_ >= 0) close(fd_);
}

void H2Call::Call(const std::string& method, const google::protobuf::MessageLite& request,
                  std::chrono::milliseconds timeout, const std::function<bool(std::string&&)>& on_message) {
  CallState st;
  st.fd = fd_;
  std::string body = request.SerializeAsString();
  st.request.reserve(body.size() + 5);
  st.request.push_back('\0');
  for (int shift = 24; shift >= 0; shift -= 8) st.request.push_back(static_cast<char>((body.size() >> shift) & 0xff));
  st.request += body;

  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) throw std::bad_alloc();
  nghttp2_session_callbacks_set_send_callback(cbs, OnSend);
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
  nghttp2_session* raw = nullptr;
  int rv = nghttp2_session_client_new(&raw, cbs, &st);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) throw std::bad_alloc();
  std::unique_ptr<nghttp2_session, SessionDeleter> session(raw);

  nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow}};
  nghttp2_submit_settings(raw, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(raw, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  const std::string post = "POST", scheme = "http", authority = "localhost", grpc = "application/grpc",
                    trailers = "trailers", user_agent = std::string("mesa-cli/") + MESA_VERSION,
                    timeout_value = TimeoutHeader(timeout);
  nghttp2_nv headers[] = {Header(":method", post),
                          Header(":scheme", scheme),
                          Header(":path", method),
                          Header(":authority", authority),
                          Header("content-type", grpc),
                          Header("te", trailers),
                          Header("grpc-timeout", timeout_value),
                          Header("user-agent", user_agent)};
  nghttp2_data_provider body_provider{};
  body_provider.read_callback = ReadRequest;
  st.stream_id = nghttp2_submit_request(raw, nullptr, headers, sizeof headers / sizeof headers[0], &body_provider, &st);
  if (st.stream_id < 0) Fail(grpc::StatusCode::INTERNAL, nghttp2_strerror(st.stream_id));

  // The server enforces the deadline; this wait adds a margin so its status wins the race.
  auto give_up = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(5);
  char buf[65536];
  while (true) {
    if (nghttp2_session_send(raw) != 0) Fail(grpc::StatusCode::UNAVAILABLE, "Socket closed");
    while (!st.messages.empty()) {
      std::string m = std::move(st.messages.front());
      st.messages.pop_front();
      if (!on_message(std::move(m))) {
        nghttp2_submit_rst_stream(raw, NGHTTP2_FLAG_NONE, st.stream_id, NGHTTP2_CANCEL);
        nghttp2_session_send(raw);
        return;
      }
    }
    if (!st.protocol_error.empty()) Fail(grpc::StatusCode::INTERNAL, st.protocol_error);
    if (st.closed) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) Fail(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
    pollfd p{fd_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) continue;
    ssize_t got = read(fd_, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) Fail(grpc::StatusCode::UNAVAILABLE, "Socket closed");
    ssize_t used = nghttp2_session_mem_recv(raw, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(got));
    if (used < 0) Fail(grpc::StatusCode::INTERNAL, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(used)));
  }

  auto header = [&](const std::string& name) {
    auto it = st.headers.find(name);
    return it == st.headers.end() ? std::string() : it->second;
  };
  std::string status = header("grpc-status");
  if (status.empty()) {
    if (st.close_error == NGHTTP2_REFUSED_STREAM) Fail(grpc::StatusCode::UNAVAILABLE, "Stream refused");
    if (st.close_error == NGHTTP2_CANCEL) Fail(grpc::StatusCode::CANCELLED, "Cancelled");
    std::string http = header(":status");
    if (!http.empty() && http != "200") Fail(grpc::StatusCode::UNAVAILABLE, "HTTP status " + http);
    Fail(grpc::StatusCode::INTERNAL, "the call ended without a status");
  }
  int code = atoi(status.c_str());
  if (code == 0) return;
  std::string details;
  if (std::string bin = header("grpc-status-details-bin"); !bin.empty()) absl::Base64Unescape(bin, &details);
  Fail(static_cast<grpc::StatusCode>(code), PercentDecode(header("grpc-message")), details);
}

}  // namespace mesa::cli
