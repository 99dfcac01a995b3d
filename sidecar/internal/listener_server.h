// ListenerServer: one configured listener — a grpc::Server on its address with an
// AsyncGenericService, served by a Runtime of its own whose every loop thread accepts calls and
// runs each as a ProxyCall task in the worker's task group.
//
// The routing is per worker (a copy of the shared_ptr that only that loop thread touches), so a
// call reads its routing without a lock; a reload posts the new routing to every loop.
//
// Admission (overload protection, admission.h): a call takes a slot of the listener's and its
// route's concurrency limits before it runs, or is refused at once with RESOURCE_EXHAUSTED.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "runtime/runtime.h"
#include "runtime/task_group.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/admission.h"
#include "sidecar/internal/routing.h"
#include "sidecar/internal/serving_listener.h"
#include "sidecar/internal/worker_state.h"

namespace curfew::sidecar {

class ListenerServer final : public ServingListener {
 public:
  struct Options {
    int workers = 1;
    std::chrono::nanoseconds busy_poll{0};  // see config::Config::busy_poll
    CallObserver* observer = nullptr;       // may be null
    const std::atomic<bool>* shutting_down = nullptr;
  };

  // Binds the listener called `name` of `routing` and starts serving it.
  static absl::StatusOr<std::unique_ptr<ListenerServer>> start(
      std::shared_ptr<const Routing> routing, const std::string& name, Options options);
  ~ListenerServer() override;

  const std::string& name() const noexcept override { return name_; }
  int port() const noexcept override { return port_; }

  // Future calls use `routing`; calls in flight keep theirs. Thread-safe.
  void set_routing(std::shared_ptr<const Routing> routing) override;

  // Calls holding a slot of the listener's concurrency limit now (admitted, not yet finished).
  int calls_in_flight() const noexcept { return listener_limit_.in_flight(); }

  // Route names with a concurrency counter kept (for tests: reloads must not grow it unbounded).
  size_t route_limits_kept();

  // Stops accepting, lets calls in flight run until `deadline`, cancels the rest (their
  // upstream calls are cancelled with them), and waits until everything is done. Blocking;
  // call it from a thread that is not one of the listener's loops.
  void shutdown(std::chrono::system_clock::time_point deadline) override;

 private:
  // What one loop thread routes new calls with: the routing, and for each route of this
  // listener (by index) its concurrency limit, or null when the route sets none.
  struct WorkerRouting {
    std::shared_ptr<const Routing> routing;
    std::vector<std::shared_ptr<ConcurrencyLimit>> route_limits;
  };

  ListenerServer() = default;
  rt::Task<void> serve(int worker);
  // The worker's calls, while `shadows` holds their mirror copies (see serve()).
  rt::Task<void> serve_calls(int worker, rt::TaskGroup& shadows);
  rt::Task<void> accept_loop(int worker, rt::TaskGroup& calls);
  WorkerRouting worker_routing_for(std::shared_ptr<const Routing> routing);

  std::string name_;
  int port_ = 0;
  Options options_;
  grpc::AsyncGenericService service_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<WorkerRouting> worker_routing_;               // [i]: loop i only
  std::vector<std::unique_ptr<WorkerState>> worker_state_;  // [i]: loop i only
  std::thread thread_;
  bool stopped_ = false;

  ConcurrencyLimit listener_limit_;
  RouteLimits route_limits_;
};

}  // namespace curfew::sidecar
