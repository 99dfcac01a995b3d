#include "sidecar/internal/h2_data_plane.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/errors.h"
#include "sidecar/log.h"

namespace curfew::sidecar {

H2DataPlane::H2DataPlane(Options options) : options_(options) {
  // Blocking threads resolve upstream names (dns/): a lookup stuck on a dead DNS server holds
  // one for its whole budget, so a few, not one, lest every other name wait behind it.
  runtime_ = std::make_unique<rt::Runtime>(
      rt::RuntimeOptions{.threads = options.loops,
                         .blocking_threads = std::max(4, options.loops),
                         .busy_poll = options.busy_poll});
  for (int i = 0; i < options.loops; ++i)
    loops_.push_back(std::make_unique<LoopState>(options.upstream_limits, options.connections));
  thread_ = std::thread([this] { runtime_->run([this](int i) { return root(i); }); });
}

H2DataPlane::~H2DataPlane() {
  runtime_->cancel("curfew is stopping");
  if (thread_.joinable()) thread_.join();
  runtime_->close();
}

bool H2DataPlane::start_on(int i, std::function<rt::Task<void>()> make,
                           std::function<void(rt::TaskHandle<void>)> started) {
  LoopState& l = *loops_[static_cast<size_t>(i)];
  {
    std::lock_guard lock(l.mu);
    l.starts.push_back({std::move(make), std::move(started)});
  }
  // The event is the loop's to set; a root not running yet finds the start when it begins.
  return runtime_->loop(i).post_threadsafe([&l] { l.has_starts.set(); });
}

void H2DataPlane::barrier() {
  std::atomic<int> pending{0};
  for (int i = 0; i < loops(); ++i) {
    pending.fetch_add(1, std::memory_order_relaxed);
    if (!runtime_->loop(i).post_threadsafe(
            [&pending] { pending.fetch_sub(1, std::memory_order_acq_rel); }))
      pending.fetch_sub(1, std::memory_order_relaxed);  // stopped: nothing runs there any more
  }
  // Bounded by the loops' passes: each runs its posts on its next pass.
  while (pending.load(std::memory_order_acquire) > 0)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

std::vector<UpstreamReport> H2DataPlane::upstream_reports(std::chrono::milliseconds limit) {
  // Shared with the posted functions: one that runs after the wait gave up writes into it, not
  // into a frame that is gone. The pools outlive any posted function (the loops are joined
  // before loops_ goes).
  struct Gathered {
    std::mutex mu;
    std::condition_variable done;
    std::vector<UpstreamReport> reports;  // guarded by mu
    int pending = 0;                      // guarded by mu
  };
  auto gathered = std::make_shared<Gathered>();
  for (int i = 0; i < loops(); ++i) {
    {
      std::lock_guard lock(gathered->mu);
      ++gathered->pending;
    }
    const bool posted = runtime_->loop(i).post_threadsafe([this, i, gathered] {
      std::vector<UpstreamReport> mine = pool(i).report(i);
      std::lock_guard lock(gathered->mu);
      for (UpstreamReport& r : mine) gathered->reports.push_back(std::move(r));
      --gathered->pending;
      gathered->done.notify_all();
    });
    if (!posted) {
      std::lock_guard lock(gathered->mu);
      --gathered->pending;  // stopped: nothing runs there any more
    }
  }
  std::unique_lock lock(gathered->mu);
  gathered->done.wait_for(lock, limit, [&] { return gathered->pending == 0; });
  return gathered->reports;
}

int H2DataPlane::take_least_loaded() noexcept {
  size_t target = 0;
  for (size_t i = 1; i < loops_.size(); ++i) {
    if (loops_[i]->connections.load(std::memory_order_relaxed) <
        loops_[target]->connections.load(std::memory_order_relaxed))
      target = i;
  }
  loops_[target]->connections.fetch_add(1, std::memory_order_relaxed);
  return static_cast<int>(target);
}

namespace {

// A listener's task on one loop. One connection's failure is that connection's alone (the
// listener catches it); a failure of the listener's task itself (a bug, memory) leaves that loop
// without the listener while the acceptor still hands it connections nobody serves, or on the
// accepting loop closes the port while /readyz says ready. Neither may pass for health: it is
// logged and becomes a FatalError, which stops curfew (non-zero) so the platform restarts it.
// Cancellation passes through.
rt::Task<void> fatal_on_failure(rt::Task<void> listener, int loop) {
  std::string what;
  try {
    co_await std::move(listener);
    co_return;
  } catch (const std::exception& e) {
    what = "curfew: a listener's task on loop " + std::to_string(loop) + " failed: " + e.what();
  }
  log(LogLevel::kError, what + "; curfew stops");
  throw rt::FatalError(what);
}

}  // namespace

rt::Task<void> H2DataPlane::root(int i) {
  LoopState& l = *loops_[static_cast<size_t>(i)];  // owned by the plane for the runtime's life
  rt::TaskGroup group;
  co_await group.run([](LoopState& l, rt::TaskGroup& group, int i) -> rt::Task<void> {
    group.spawn(l.pool.run(), "upstream-pool");
    for (;;) {  // until the plane stops (cancellation)
      std::vector<Start> starts;
      {
        std::lock_guard lock(l.mu);
        starts.swap(l.starts);
      }
      for (Start& s : starts) s.started(group.spawn(fatal_on_failure(s.make(), i), "listener"));
      if (starts.empty()) {
        l.has_starts.clear();
        std::lock_guard lock(l.mu);
        if (!l.starts.empty()) continue;  // pushed between the swap and the clear
      } else {
        continue;
      }
      co_await l.has_starts.wait();
    }
  }(l, group, i));
}

}  // namespace curfew::sidecar
