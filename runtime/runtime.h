// Runtime: N loop threads, each waiting in its own epoll, plus the blocking pool.
//
//   rt::Runtime runtime({.threads = 2});
//   runtime.run([&](int worker) -> rt::Task<void> { ... serve on runtime.loop(worker) ... });
//
// Each worker runs one root task and finishes when that root and everything it started are done,
// so shutdown leaves no coroutine frame behind. Then close() (or the destructor) closes the
// loops' pollers.
//
// rt::run(task) is the asyncio.run of this runtime: one thread, one task, its result.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/blocking_pool.h"
#include "runtime/detail/spawned_task.h"
#include "runtime/loop.h"
#include "runtime/process.h"
#include "runtime/task.h"

namespace curfew::rt {

struct RuntimeOptions {
  int threads = 1;           // loop threads, each with its own epoll
  int blocking_threads = 4;  // threads of the pool behind to_thread()
  // Each loop polls instead of sleeping for this long after its last event (Loop::set_busy_poll).
  // Lower latency for a hot loop at the price of a spinning core; zero: off.
  Duration busy_poll{};
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  ~Runtime();

  int threads() const noexcept { return static_cast<int>(loops_.size()); }
  Loop& loop(int worker) noexcept { return *loops_[worker]; }

  // Runs root(worker) as the root task of every worker (worker 0 on the calling thread) and
  // returns when all have finished. The first root to fail cancels the others; its error is
  // rethrown. Can be called once.
  void run(const std::function<Task<void>(int worker)>& root);

  // Cancels every root task (and so everything under it) with `reason`. Thread-safe; use it
  // from a signal-handling thread.
  void cancel(const std::string& reason);

  // Closes the loops' pollers; returns how many fd watches were still registered (0 unless a
  // bug). Idempotent; the destructor calls it.
  size_t close();

 private:
  class Worker;

  void record_failure(int worker, std::exception_ptr error);

  std::unique_ptr<BlockingPool> pool_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mu_;
  std::exception_ptr first_failure_;
  bool ran_ = false;
  bool closed_ = false;
  size_t leftover_ = 0;
};

// Runs `main` on a fresh single-threaded runtime and returns its result (asyncio.run).
template <class T>
T run(Task<T> main, RuntimeOptions options = {}) {
  options.threads = 1;
  Runtime runtime(options);
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
  runtime.run([&](int) -> Task<void> {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(main);
    } else {
      result.emplace(co_await std::move(main));
    }
  });
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// Coroutine frames currently alive in the process (for leak checks).
inline long live_frames() noexcept { return detail::live_frames.load(std::memory_order_relaxed); }

}  // namespace curfew::rt
