// Runtime: N loop threads, each waiting in its own poller (a gRPC completion queue or epoll), plus
// the blocking pool.
//
//   rt::Runtime runtime({.threads = 2, .server_builder = &builder});
//   auto server = builder.BuildAndStart();
//   runtime.run([&](int worker) -> rt::Task<void> { ... serve on runtime.loop(worker) ... });
//
// Each worker runs one root task and finishes when that root and everything it started are done
// and no gRPC tag is in flight on its queue, so shutdown leaves no pending tag and no coroutine
// frame behind. Then close() (or the destructor) shuts the queues down; a grpc::Server using them
// must have been shut down and destroyed before (gRPC's order).
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

#include <grpcpp/server_builder.h>

#include "runtime/blocking_pool.h"
#include "runtime/detail/spawned_task.h"
#include "runtime/loop.h"
#include "runtime/process.h"
#include "runtime/task.h"

namespace curfew::rt {

struct RuntimeOptions {
  int threads = 1;           // loop threads, each with its own poller
  int blocking_threads = 4;  // threads of the pool behind to_thread()
  // What the loops wait in (detail/poller.h); none: the process's default_poller().
  std::optional<PollerKind> poller;
  // When set, each loop's queue is made by this builder (a ServerCompletionQueue), so the loops
  // can accept calls of the server it builds. Call before builder->BuildAndStart(). Only with
  // the completion-queue poller.
  grpc::ServerBuilder* server_builder = nullptr;
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

  // Closes the pollers (completion queues are shut down and drained); returns how many
  // operations were still pending (0 unless a bug). A grpc::Server using the queues must be shut
  // down AND destroyed first.
  // Idempotent; the destructor calls it.
  size_t close();

  // close(), then the number of tags it found (for tests: 0 means shutdown was clean).
  size_t leftover_tags() {
    close();
    return leftover_;
  }

 private:
  class Worker;

  void record_failure(int worker, std::exception_ptr error);

  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
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
