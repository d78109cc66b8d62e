// Counts gRPC calls for the metrics registry: calls received, and calls in flight (a call is
// in flight from its arrival until gRPC has finished with it, streaming calls included).
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

namespace mesa::daemon {

// For ServerBuilder::experimental().SetInterceptorCreators().
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> MakeRpcMetricsInterceptors();

}  // namespace mesa::daemon
