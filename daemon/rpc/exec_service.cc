#include "daemon/rpc/exec_service.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "daemon/rpc/grpc_status.h"
#include "daemon/status_macros.h"
#include "mesa/daemon/v1/exec.grpc.pb.h"

namespace mesa::daemon {
namespace {

namespace dv1 = ::mesa::daemon::v1;
using grpc::ServerContext;
using grpc::Status;

// Output bytes an ExecStream may hold before the command is made to wait for the client.
constexpr size_t kStreamQueueBytes = 1 << 20;

class UnarySink final : public ExecSink {
 public:
  explicit UnarySink(ServerContext* ctx) : ctx_(ctx) {}
  bool Gone() override { return ctx_->IsCancelled(); }

 private:
  ServerContext* ctx_;
};

// Queues chunks for a writer thread; Writable() turns false past kStreamQueueBytes and
// ready_fd() becomes readable once the writer has drained below it again. The thread starts
// with the first chunk: a command without output (a `true`, a `make -s` that succeeds) costs
// no thread, and its result goes out from the RPC's own thread with the trailers.
class StreamSink final : public ExecSink {
 public:
  StreamSink(ServerContext* ctx, grpc::ServerWriter<dv1::ExecStreamEvent>* writer)
      : ctx_(ctx), writer_(writer), ready_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~StreamSink() override {
    Close();
    if (ready_fd_ >= 0) close(ready_fd_);
  }

  bool streaming() const override { return true; }
  void Output(bool is_stderr, std::string_view data) override {
    dv1::ExecStreamEvent ev;
    if (is_stderr) {
      ev.set_stderr(std::string(data));
    } else {
      ev.set_stdout(std::string(data));
    }
    Push(std::move(ev), data.size());
  }
  bool Writable() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_bytes_ < kStreamQueueBytes || gone_) return true;
    uint64_t v;
    (void)!read(ready_fd_, &v, sizeof v);  // re-armed by the writer below the limit
    waiting_ = true;
    return false;
  }
  int ready_fd() override { return ready_fd_; }
  bool Gone() override {
    std::lock_guard<std::mutex> lock(mu_);
    return gone_ || ctx_->IsCancelled();
  }

  // Waits until every chunk is written (or the client is gone), then sends the result in the
  // same write as the trailers.
  void Finish(dv1::ExecResult result) {
    Close();
    if (gone_) return;
    dv1::ExecStreamEvent ev;
    *ev.mutable_result() = std::move(result);
    writer_->WriteLast(ev, grpc::WriteOptions());
  }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // Called from the run's thread only, as is Close: thread_ needs no lock.
  void Push(dv1::ExecStreamEvent ev, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (gone_) return;
      queue_.push_back({std::move(ev), bytes});
      queued_bytes_ += bytes;
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { WriterLoop(); });
    cv_.notify_all();
  }
  void WriterLoop() {
    while (true) {
      std::pair<dv1::ExecStreamEvent, size_t> item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
        if (queue_.empty()) return;
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      bool ok = writer_->Write(item.first);
      std::lock_guard<std::mutex> lock(mu_);
      queued_bytes_ -= item.second;
      if (!ok) {
        gone_ = true;
        queue_.clear();
        queued_bytes_ = 0;
      }
      if (waiting_ && (queued_bytes_ < kStreamQueueBytes / 2 || gone_)) {
        waiting_ = false;
        uint64_t one = 1;
        (void)!write(ready_fd_, &one, sizeof one);
      }
    }
  }

  ServerContext* ctx_;
  grpc::ServerWriter<dv1::ExecStreamEvent>* writer_;
  int ready_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<dv1::ExecStreamEvent, size_t>> queue_;
  size_t queued_bytes_ = 0;
  bool waiting_ = false;
  bool closed_ = false;
  bool gone_ = false;
  std::thread thread_;
};

class ExecService final : public dv1::Exec::Service {
 public:
  ExecService(ExecManager* exec, PeerRegistry* peers) : exec_(exec), peers_(peers) {}

  Status Exec(ServerContext* ctx, const dv1::ExecRequest* req, dv1::ExecResult* out) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      UnarySink sink(ctx);
      MESA_ASSIGN_OR_RETURN(*out, exec_->Run(caller, *req, &sink));
      return absl::OkStatus();
    }());
  }

  Status ExecStream(ServerContext* ctx, const dv1::ExecRequest* req,
                    grpc::ServerWriter<dv1::ExecStreamEvent>* writer) override {
    return ToGrpcStatus([&]() -> absl::Status {
      MESA_ASSIGN_OR_RETURN(PeerCred caller, peers_->Caller(ctx));
      StreamSink sink(ctx, writer);
      auto result = exec_->Run(caller, *req, &sink);
      if (!result.ok()) {
        sink.Close();
        return result.status();
      }
      sink.Finish(std::move(*result));
      return absl::OkStatus();
    }());
  }

 private:
  ExecManager* exec_;
  PeerRegistry* peers_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeExecService(ExecManager* exec, PeerRegistry* peers) {
  return std::make_unique<ExecService>(exec, peers);
}

}  // namespace mesa::daemon
