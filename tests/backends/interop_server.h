// An in-process gRPC interop test server (grpc.testing.TestService) for tests and the
// curfew_interop_server executable. See interop_service.h for the features it implements.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>

#include "interop_service.h"

namespace curfew::testing {

class InteropServer {
 public:
  // Largest message the server sends or accepts. gRPC's default 4 MiB receive limit would reject
  // the large_unary_16mb case; clients (and a proxy in between) need a matching limit.
  static constexpr int kMaxMessageBytes = 32 * 1024 * 1024;

  // Starts serving plaintext on `address` ("127.0.0.1:0" picks a free port). Returns nullptr if
  // the address cannot be bound.
  static std::unique_ptr<InteropServer> Start(const std::string& address);

  // Shuts down if still running.
  ~InteropServer();
  InteropServer(const InteropServer&) = delete;
  InteropServer& operator=(const InteropServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }

  // Stops accepting calls, gives in-flight calls a grace period of one second, then cancels them.
  // Idempotent and thread-safe.
  void Shutdown();

  // Handlers entered so far.
  int calls_started() const { return stats_.calls_started.load(); }
  // Handlers that found their call cancelled (by the client, its deadline, or shutdown) by the
  // time they returned. Counted when the handler returns, which may be a little after the client
  // saw the call end: poll rather than read once.
  int cancellations_observed() const { return stats_.cancellations_observed.load(); }

 private:
  InteropServer() = default;

  InteropServiceStats stats_;
  std::unique_ptr<InteropService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::once_flag shutdown_once_;
};

}  // namespace curfew::testing
