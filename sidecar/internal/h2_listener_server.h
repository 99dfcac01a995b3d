// H2ListenerServer: one configured listener on the nghttp2 data path, served by the process-wide
// loops of an H2DataPlane. Loop 0 accepts and hands each connection to the plane's least-loaded
// loop; a connection is served by one loop for its whole life, one task per stream
// (h2_proxy_call), with that loop's upstream connections.
//
// Shutdown: GOAWAY on every connection (a shutdown notice, then the final GOAWAY), calls in
// flight run until the deadline, then the listener's tasks are cancelled (each call resets its
// upstream stream) and waited for; the plane's loops go on serving the other listeners.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "h2/session.h"
#include "runtime/event.h"
#include "runtime/socket.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/admission.h"
#include "sidecar/internal/h2_data_plane.h"
#include "sidecar/internal/routing.h"
#include "sidecar/internal/worker_state.h"

namespace curfew::sidecar {

// The HTTP/2 limits of a listener's caller connections, and of the upstream connections the
// plane's pools make for every listener of `config`.
h2::SessionLimits caller_session_limits(const config::Listener& listener);
h2::SessionLimits upstream_session_limits(const config::Config& config);

class H2ListenerServer {
 public:
  struct Options {
    H2DataPlane* plane = nullptr;      // outlives the listener
    CallObserver* observer = nullptr;  // may be null
    const std::atomic<bool>* shutting_down = nullptr;
  };

  // Binds the listener called `name` of `routing` and starts serving it.
  static absl::StatusOr<std::unique_ptr<H2ListenerServer>> start(
      std::shared_ptr<const Routing> routing, const std::string& name, Options options);
  ~H2ListenerServer();

  const std::string& name() const noexcept { return name_; }
  int port() const noexcept { return port_; }
  // Future calls use `routing`; calls in flight keep theirs. Thread-safe.
  void set_routing(std::shared_ptr<const Routing> routing);
  // Stops accepting, lets calls in flight run until `deadline`, cancels the rest, and waits
  // until everything is done. Blocking; not from one of the plane's loops.
  void shutdown(std::chrono::system_clock::time_point deadline);

  int calls_in_flight() const noexcept { return calls_in_flight_.load(std::memory_order_relaxed); }

 private:
  // This listener's share of one loop; touched only on that loop's thread, except `connections`
  // (read by the shutdown) and `running`.
  struct Worker {
    ~Worker() {
      for (const auto& a : arrived) ::close(a.fd);  // handed over after the loop stopped
    }
    std::shared_ptr<const Routing> routing;
    std::vector<std::shared_ptr<ConcurrencyLimit>> route_limits;  // by route index in `routing`
    WorkerState state;                            // retry budgets, random source, shadows
    std::vector<rt::Listener::Accepted> arrived;  // handed over by the acceptor
    rt::Event has_arrived;
    std::unordered_set<h2::Session*> sessions;  // each lives in its connection task's frame
    // Connections closed for breaking a limit, logged in the current second and not logged.
    rt::TimePoint closure_log_second{};
    int closures_logged = 0;
    uint64_t closures_not_logged = 0;
    std::atomic<int> connections{0};
    rt::TaskHandle<void> task;         // serve(i), under the plane
    std::atomic<bool> running{false};  // serve(i) was started and has not ended
  };

  // Clears a Worker's `running` flag when destroyed. Passed by value to serve(), it lives in the
  // coroutine frame, so the flag clears when the frame goes: when serve() ends, and also when
  // its task was cancelled before it started (then none of its body ever runs).
  class RunningMark {
   public:
    explicit RunningMark(std::atomic<bool>& flag) : flag_(&flag) {}
    RunningMark(RunningMark&& o) noexcept : flag_(std::exchange(o.flag_, nullptr)) {}
    RunningMark& operator=(RunningMark&&) = delete;
    ~RunningMark() {
      if (flag_ != nullptr) flag_->store(false, std::memory_order_release);
    }

   private:
    std::atomic<bool>* flag_;
  };

  // An accepted connection on its way to its task: owns the fd and the connection's place in the
  // counts (the Worker's and the plane's), and gives both back when destroyed. Passed by value to
  // serve_connection(), it lives in the coroutine frame, so nothing leaks when that task is
  // cancelled before its first step (a shutdown right after an accept): the frame goes unrun.
  class ArrivedConnection {
   public:
    ArrivedConnection(rt::Listener::Accepted accepted, std::atomic<int>& count, H2DataPlane& plane,
                      int loop)
        : fd_(std::exchange(accepted.fd, -1)),
          peer_(std::move(accepted.peer)),
          count_(&count),
          plane_(&plane),
          loop_(loop) {}
    ArrivedConnection(ArrivedConnection&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)),
          peer_(std::move(o.peer_)),
          count_(std::exchange(o.count_, nullptr)),
          plane_(o.plane_),
          loop_(o.loop_) {}
    ArrivedConnection& operator=(ArrivedConnection&&) = delete;
    ~ArrivedConnection() {
      if (fd_ >= 0) ::close(fd_);
      if (count_ == nullptr) return;
      count_->fetch_sub(1, std::memory_order_relaxed);
      plane_->connection_ended(loop_);
    }
    // The fd, now the caller's to close.
    int take_fd() noexcept { return std::exchange(fd_, -1); }
    const std::string& peer() const noexcept { return peer_; }

   private:
    int fd_;
    std::string peer_;
    std::atomic<int>* count_;  // null once moved from
    H2DataPlane* plane_;
    int loop_;
  };

  H2ListenerServer() = default;
  // `listener`: loop 0's, owned by its frame (so it goes on loop 0 even if never served).
  rt::Task<void> serve(int worker, RunningMark running, std::optional<rt::Listener> listener);
  rt::Task<void> serve_connections(int worker, std::optional<rt::Listener>& listener);
  rt::Task<void> serve_loop(int worker, rt::TaskGroup& group,
                            std::optional<rt::Listener>& listener);
  rt::Task<void> accept_loop(rt::Listener listener);
  rt::Task<void> serve_connection(int worker, ArrivedConnection connection);
  rt::Task<void> call(int worker, std::shared_ptr<h2::Stream> stream);
  // A caller's connection was closed for breaking a limit: a warning naming the peer.
  void log_closure(Worker& w, const std::string& peer, h2::CloseReason why);
  // Refuses a call over a concurrency limit: RESOURCE_EXHAUSTED at once, reported like any call.
  void refuse(h2::Stream& stream, const Routing& routing, const config::Route* route,
              Rejection why);
  void hand_over(rt::Listener::Accepted accepted);
  // Cancels serve(i) on every loop and waits until each has ended.
  void stop_workers();

  std::string name_;
  int port_ = 0;
  Options options_;
  h2::SessionLimits caller_limits_;
  std::vector<std::unique_ptr<Worker>> workers_;  // [i]: loop i of the plane
  std::optional<rt::Listener> listener_;          // moved into serve(0) when it is made
  rt::TaskHandle<void> accept_;                   // loop 0 only
  std::atomic<bool> stopping_{false};
  std::atomic<int> calls_in_flight_{0};
  bool stopped_ = false;
  ConcurrencyLimit listener_limit_;
  RouteLimits route_limits_;
};

}  // namespace curfew::sidecar
