// One gRPC call to mesad over HTTP/2 (nghttp2) on its Unix socket, without the gRPC runtime.
//
// Why: a `mesa` process lives for one call. The gRPC runtime costs it ~3 ms of CPU before and
// around that call (six threads, the channel's resolver/subchannel/handshaker machinery, their
// teardown), which is most of a `mesa exec m -- true`. This speaks the same wire protocol
// (gRPC over HTTP/2: length-prefixed messages, grpc-status trailers) on one connection, in
// the calling thread. Errors come out exactly as from the stubs: through mesa::ThrowForStatus.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "google/protobuf/message_lite.h"

namespace mesa::cli {

class H2Call {
 public:
  // Connects to mesad's socket; throws DaemonUnavailableError when nothing listens there.
  explicit H2Call(const std::string& socket_path);
  ~H2Call();
  H2Call(const H2Call&) = delete;
  H2Call& operator=(const H2Call&) = delete;

  // A server-streaming (or unary) call of `method` ("/package.Service/Method"): sends `request`,
  // hands each response message's bytes to `on_message` in order, and returns once the call
  // ends with status OK. `on_message` returning false cancels the call (RST_STREAM CANCEL,
  // as ClientContext::TryCancel does) and returns at once. A non-OK status throws as the stub's
  // would; a lost connection or a missing status throws DaemonUnavailableError / ServerError.
  void Call(const std::string& method, const google::protobuf::MessageLite& request,
            std::chrono::milliseconds timeout, const std::function<bool(std::string&&)>& on_message);

 private:
  int fd_ = -1;
  std::string socket_path_;
};

}  // namespace mesa::cli
