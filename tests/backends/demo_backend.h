// An in-process curfew.demo.Demo server for tests and the curfew-demo-backend executable.
// See proto/curfew/demo/demo.proto for what each method does.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "demo_service.h"

namespace curfew::testing {

class DemoBackend {
 public:
  // Starts serving plaintext on `address` ("127.0.0.1:0" picks a free port). Returns nullptr if
  // the address cannot be bound.
  static std::unique_ptr<DemoBackend> Start(const std::string& address);

  // Shuts down if still running.
  ~DemoBackend();
  DemoBackend(const DemoBackend&) = delete;
  DemoBackend& operator=(const DemoBackend&) = delete;

  // The port actually bound.
  int port() const { return port_; }

  // Stops accepting calls, gives in-flight calls a grace period of one second, then cancels them.
  // Idempotent and thread-safe.
  void Shutdown();

  // Calls received by any method.
  int calls_started() const { return observations_.calls_started.load(); }
  // Slow calls that saw their cancellation (client cancel, expired deadline, or shutdown) before
  // delay_ms elapsed. Counted by the handler, a few ms after the call ended: poll.
  int slow_calls_cancelled() const { return observations_.slow_calls_cancelled.load(); }
  // Slow calls that slept their full delay_ms.
  int slow_calls_completed() const { return observations_.slow_calls_completed.load(); }

  // For the most recent call: the time left until its deadline when it arrived (what the
  // grpc-timeout header said, less transit), or nullopt if it had no deadline / no call yet.
  // gRPC encodes grpc-timeout lossily, rounding up (5000 ms can arrive as ~5009 ms): compare
  // with a tolerance of a percent or two, never exactly.
  std::optional<std::chrono::milliseconds> last_seen_budget() const {
    return observations_.last_seen_budget();
  }
  // For the most recent call: its client metadata (custom headers plus e.g. user-agent).
  std::multimap<std::string, std::string> last_metadata() const {
    return observations_.last_metadata();
  }

 private:
  DemoBackend() = default;

  DemoObservations observations_;
  std::unique_ptr<DemoService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::once_flag shutdown_once_;
};

}  // namespace curfew::testing
