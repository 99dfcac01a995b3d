// H2DataPlane: the data path's loops: one process-wide set of epoll loops serving every
// listener. Each loop owns the caller connections handed to it (by whichever listener accepted
// them) and its own upstream connections (UpstreamPool: one multiplexed connection per endpoint
// per loop, kept across reloads), so a call never crosses threads.
//
//   H2DataPlane plane({.loops = 2, .upstream_limits = limits});
//   plane.start_on(i, [] { return serve(i); }, [](rt::TaskHandle<void> h) { ... });
//   int loop = plane.take_least_loaded();   // an acceptor's choice for a new connection
//
// Listeners start their per-loop tasks under the plane and cancel them when they stop; the plane
// itself stops (cancels whatever still runs and joins its threads) when destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "h2/limits.h"
#include "runtime/event.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "sidecar/connection_report.h"
#include "sidecar/internal/upstream_pool.h"

namespace curfew::sidecar {

class H2DataPlane {
 public:
  struct Options {
    int loops = 1;
    h2::SessionLimits upstream_limits;
    ConnectionObserver* connections = nullptr;  // may be null
    std::chrono::nanoseconds busy_poll{0};      // see config::Config::busy_poll
  };

  explicit H2DataPlane(Options options);
  H2DataPlane(const H2DataPlane&) = delete;
  H2DataPlane& operator=(const H2DataPlane&) = delete;
  ~H2DataPlane();

  int loops() const noexcept { return static_cast<int>(loops_.size()); }
  rt::Loop& loop(int i) noexcept { return runtime_->loop(i); }
  // Loop i's upstream connections; loop i's thread only.
  UpstreamPool& pool(int i) noexcept { return loops_[static_cast<size_t>(i)]->pool; }
  ConnectionObserver* connection_observer() const noexcept { return options_.connections; }

  // Starts `make()` on loop i as a child of the plane (any thread); `started` receives its
  // handle there, on loop i's thread, before anything else runs it. False once the plane stops.
  bool start_on(int i, std::function<rt::Task<void>()> make,
                std::function<void(rt::TaskHandle<void>)> started);

  // Returns once every loop has run everything posted to it before this call (loops that have
  // stopped are skipped). Any thread but a loop's.
  void barrier();

  // Every loop's view of its endpoint sets, gathered on the loops (waits at most `limit`; a
  // loop that has not answered by then is left out). Any thread but a loop's.
  std::vector<UpstreamReport> upstream_reports(std::chrono::milliseconds limit);

  // The loop serving the fewest caller connections, counted at once as serving one more (so a
  // burst spreads before any of its connections started); connection_ended() gives it back.
  // SO_REUSEPORT would spread few long-lived connections unevenly. Any thread.
  int take_least_loaded() noexcept;
  void connection_ended(int i) noexcept {
    loops_[static_cast<size_t>(i)]->connections.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  struct Start {
    std::function<rt::Task<void>()> make;
    std::function<void(rt::TaskHandle<void>)> started;
  };
  struct LoopState {
    LoopState(h2::SessionLimits limits, ConnectionObserver* observer) : pool(limits, observer) {}
    UpstreamPool pool;
    std::atomic<int> connections{0};
    std::mutex mu;              // guards `starts` (pushed by any thread)
    std::vector<Start> starts;  // taken by the loop's root
    rt::Event has_starts;       // loop thread only
  };
  rt::Task<void> root(int i);

  Options options_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::vector<std::unique_ptr<LoopState>> loops_;
  std::thread thread_;
};

}  // namespace curfew::sidecar
