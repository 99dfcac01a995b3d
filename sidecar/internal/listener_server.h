// ListenerServer: one configured listener — a grpc::Server on its address with an
// AsyncGenericService, served by a Runtime of its own whose every loop thread accepts calls and
// runs each as a ProxyCall task in the worker's task group.
//
// The routing is per worker (a copy of the shared_ptr that only that loop thread touches), so a
// call reads its routing without a lock; a reload posts the new routing to every loop.
//
// Admission (overload protection): before a call is run, it takes a slot of the listener's
// limits.max_concurrent_calls and, if its route sets one, of the route's max_concurrent_calls.
// When either is full the call is refused at once with RESOURCE_EXHAUSTED (CallReport::rejected
// says which limit) — nothing is ever queued in curfew. Each limit is one atomic counter
// (ConcurrencyLimit): exact, lock-free, one read-modify-write per call per limit, shared by the
// listener's loop threads only through that cache line. Route counters are kept by route name for
// the listener's whole life, so calls admitted before a reload still count against the route
// after it and a reload never opens a window above the limit. Both limits are reloadable.
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
#include "sidecar/internal/routing.h"
#include "sidecar/internal/serving_listener.h"
#include "sidecar/internal/worker_state.h"

namespace curfew::sidecar {

// A concurrency limit: how many calls hold one of its slots. The limit itself comes from the
// configuration current when a call arrives.
class alignas(64) ConcurrencyLimit {
 public:
  // Takes a slot unless `limit` are already taken.
  bool try_acquire(int limit) noexcept {
    if (in_flight_.fetch_add(1, std::memory_order_relaxed) < limit) return true;
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void release() noexcept { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  int in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> in_flight_{0};
};

// The slots one admitted call holds; given back when the call's task ends, however it ends. It
// shares ownership of the route's counter, which a reload may drop from the listener's map.
class CallSlots {
 public:
  CallSlots() = default;
  CallSlots(ConcurrencyLimit* listener, std::shared_ptr<ConcurrencyLimit> route)
      : listener_(listener), route_(std::move(route)) {}
  CallSlots(CallSlots&& other) noexcept
      : listener_(std::exchange(other.listener_, nullptr)), route_(std::move(other.route_)) {}
  CallSlots& operator=(CallSlots&&) = delete;
  ~CallSlots() {
    if (listener_) listener_->release();
    if (route_) route_->release();
  }

 private:
  ConcurrencyLimit* listener_ = nullptr;  // the ListenerServer's own, which outlives every call
  std::shared_ptr<ConcurrencyLimit> route_;
};

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
  // The route limits of `routing`'s routes; counters are created on first use of a route name,
  // and those of routes `routing` no longer has are dropped once no call holds a slot.
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
  std::mutex route_limits_mu_;  // start and reloads only, never on the per-call path
  std::unordered_map<std::string, std::shared_ptr<ConcurrencyLimit>>
      route_limits_;  // by route name
};

}  // namespace curfew::sidecar
