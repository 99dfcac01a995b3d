// curfew.demo.Demo on the synchronous gRPC API, recording what each call looked like on arrival
// so tests can check what a proxy forwarded (deadline budget, metadata) and whether a
// cancellation reached the backend.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "curfew/demo/demo.grpc.pb.h"

namespace curfew::testing {

// Everything the service observed. Thread-safe: handlers run on gRPC's thread pool while tests
// read from their own thread.
class DemoObservations {
 public:
  // Remembers the call's deadline budget and client metadata as the latest seen.
  void RecordArrival(const grpc::ServerContext& ctx);
  std::optional<std::chrono::milliseconds> last_seen_budget() const;
  std::multimap<std::string, std::string> last_metadata() const;

  std::atomic<int> calls_started{0};
  std::atomic<int> slow_calls_cancelled{0};
  std::atomic<int> slow_calls_completed{0};

 private:
  mutable std::mutex mu_;
  std::optional<std::chrono::milliseconds> last_seen_budget_;
  std::multimap<std::string, std::string> last_metadata_;
};

// The time left until the call's deadline, now; nullopt if the call has no deadline.
std::optional<std::chrono::milliseconds> RemainingBudget(const grpc::ServerContext& ctx);

class DemoService final : public curfew::demo::Demo::Service {
 public:
  // `observations` must outlive the service.
  explicit DemoService(DemoObservations* observations) : observations_(observations) {}

  grpc::Status Echo(grpc::ServerContext* ctx, const curfew::demo::EchoRequest* request,
                    curfew::demo::EchoReply* reply) override;
  grpc::Status Slow(grpc::ServerContext* ctx, const curfew::demo::SlowRequest* request,
                    curfew::demo::EchoReply* reply) override;
  grpc::Status Fail(grpc::ServerContext* ctx, const curfew::demo::FailRequest* request,
                    curfew::demo::EchoReply* reply) override;
  grpc::Status Stream(grpc::ServerContext* ctx, const curfew::demo::EchoRequest* request,
                      grpc::ServerWriter<curfew::demo::EchoReply>* writer) override;

 private:
  DemoObservations* const observations_;
};

}  // namespace curfew::testing
