// Why the test servers never let gRPC shut down.
//
// gRPC 1.51 runs grpc_shutdown() when its last object (often the last grpc::Server) is destroyed,
// and that call joins executor threads that may be parked in a poll with a ~10 s timeout. Tests
// and the server executables then stall for up to 10 s at teardown for no reason. Holding one
// grpc_init() reference for the life of the process keeps that from happening; process exit
// reclaims everything anyway.
#pragma once

#include <grpc/grpc.h>

#include <mutex>

namespace curfew::testing {

// Takes one process-lifetime grpc_init() reference; later calls do nothing.
inline void KeepGrpcInitialized() {
  static std::once_flag once;
  std::call_once(once, [] { grpc_init(); });
}

}  // namespace curfew::testing
