#include "daemon/rpc/rpc_metrics.h"

#include "daemon/metrics/metrics.h"

namespace mesa::daemon {
namespace {

// gRPC creates one interceptor per call and destroys it when the call is over.
class InFlight final : public grpc::experimental::Interceptor {
 public:
  InFlight() {
    auto& m = metrics::Global();
    m.rpc_total.fetch_add(1, std::memory_order_relaxed);
    m.rpc_inflight.fetch_add(1, std::memory_order_relaxed);
  }
  ~InFlight() override { metrics::Global().rpc_inflight.fetch_sub(1, std::memory_order_relaxed); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override { methods->Proceed(); }
};

class InFlightFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo*) override {
    return new InFlight();
  }
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> MakeRpcMetricsInterceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<InFlightFactory>());
  return out;
}

}  // namespace mesa::daemon
