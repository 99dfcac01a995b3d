// H2ListenerServer: one configured listener on the nghttp2 data path. An epoll Runtime of
// `workers` loops; loop 0 accepts and hands each connection to the loop serving the fewest
// (SO_REUSEPORT would spread few long-lived connections unevenly); a connection is served by
// one loop for its whole life, one task per stream (h2_proxy_call). Each loop keeps its own
// upstream connections (UpstreamPool), which reloads keep.
//
// Shutdown: GOAWAY on every connection (a shutdown notice, then the final GOAWAY), calls in
// flight run until the deadline, then everything left is cancelled (each call resets its
// upstream stream) and the loops join.
#pragma once

#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "h2/session.h"
#include "runtime/event.h"
#include "runtime/runtime.h"
#include "runtime/socket.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/admission.h"
#include "sidecar/internal/serving_listener.h"
#include "sidecar/internal/upstream_pool.h"
#include "sidecar/internal/worker_state.h"

namespace curfew::sidecar {

class H2ListenerServer final : public ServingListener {
 public:
  struct Options {
    int workers = 1;
    CallObserver* observer = nullptr;  // may be null
    const std::atomic<bool>* shutting_down = nullptr;
  };

  // Binds the listener called `name` of `routing` and starts serving it.
  static absl::StatusOr<std::unique_ptr<H2ListenerServer>> start(
      std::shared_ptr<const Routing> routing, const std::string& name, Options options);
  ~H2ListenerServer() override;

  const std::string& name() const noexcept override { return name_; }
  int port() const noexcept override { return port_; }
  void set_routing(std::shared_ptr<const Routing> routing) override;
  void shutdown(std::chrono::system_clock::time_point deadline) override;

  int calls_in_flight() const noexcept { return calls_in_flight_.load(std::memory_order_relaxed); }

 private:
  // What one loop owns; touched only on its thread, except `connections` (read by the acceptor).
  struct Worker {
    explicit Worker(h2::SessionLimits upstream_limits) : pool(upstream_limits) {}
    ~Worker() {
      for (const auto& a : arrived) ::close(a.fd);  // handed over after the loop stopped
    }
    std::shared_ptr<const Routing> routing;
    std::vector<std::shared_ptr<ConcurrencyLimit>> route_limits;  // by route index in `routing`
    UpstreamPool pool;
    WorkerState state;                            // retry budgets, random source, shadows
    std::vector<rt::Listener::Accepted> arrived;  // handed over by the acceptor
    rt::Event has_arrived;
    std::unordered_set<h2::Session*> sessions;  // each lives in its connection task's frame
    std::atomic<int> connections{0};
  };

  H2ListenerServer() = default;
  rt::Task<void> serve(int worker);
  rt::Task<void> serve_connections(int worker);
  rt::Task<void> serve_loop(int worker, rt::TaskGroup& group);
  rt::Task<void> accept_loop(rt::Listener listener);
  rt::Task<void> serve_connection(int worker, rt::Listener::Accepted accepted);
  rt::Task<void> call(int worker, std::shared_ptr<h2::Stream> stream);
  // Refuses a call over a concurrency limit: RESOURCE_EXHAUSTED at once, reported like any call.
  void refuse(h2::Stream& stream, const Routing& routing, const config::Route* route,
              Rejection why);
  void hand_over(rt::Listener::Accepted accepted);

  std::string name_;
  int port_ = 0;
  Options options_;
  h2::SessionLimits caller_limits_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::vector<std::unique_ptr<Worker>> workers_;  // [i]: loop i
  std::optional<rt::Listener> listener_;          // moved into loop 0's accept task at start
  rt::TaskHandle<void> accept_;                   // loop 0 only
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> calls_in_flight_{0};
  bool stopped_ = false;
  ConcurrencyLimit listener_limit_;
  RouteLimits route_limits_;
};

}  // namespace curfew::sidecar
