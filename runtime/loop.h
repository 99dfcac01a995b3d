// Loop: the event loop of one worker thread, waiting in its Poller (a gRPC CompletionQueue or
// epoll: detail/poller.h).
//
// One iteration: fire the timers that are due, run the Runnables that were ready when the
// iteration began (FIFO, like asyncio's call_soon), then wait in the poller until the next timer
// or the next event (with tasks still ready: poll it without waiting, skipped for a few
// microseconds after such a poll found it empty). Tasks never migrate between loops, so
// everything a task touches is touched by one thread only; the only cross-thread entry is
// post_threadsafe().
#pragma once

#include <cassert>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <grpcpp/completion_queue.h>

#include "runtime/detail/completion.h"
#include "runtime/detail/cq_poller.h"
#include "runtime/detail/epoll_poller.h"
#include "runtime/detail/poller.h"
#include "runtime/detail/timers.h"

namespace curfew::rt {

class BlockingPool;

class Loop {
 public:
  // A loop on a gRPC completion queue. `cq` is owned by the caller and must outlive the loop.
  // `server_cq` is the same queue when it was created by a grpc::ServerBuilder (needed to accept
  // calls), else null.
  Loop(grpc::CompletionQueue& cq, grpc::ServerCompletionQueue* server_cq, BlockingPool& pool,
       int index);
  // A loop on epoll.
  Loop(BlockingPool& pool, int index);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop();

  // The loop running on this thread, or null outside a loop.
  static Loop* current() noexcept;

  PollerKind poller_kind() const noexcept {
    return cq_poller_ != nullptr ? PollerKind::kCompletionQueue : PollerKind::kEpoll;
  }
  // The gRPC awaitables' queue: only on a completion-queue loop.
  grpc::CompletionQueue& cq() noexcept {
    assert(cq_poller_ != nullptr && "a gRPC awaitable on an epoll loop");
    return cq_poller_->cq();
  }
  grpc::ServerCompletionQueue* server_cq() noexcept {
    return cq_poller_ != nullptr ? cq_poller_->server_cq() : nullptr;
  }
  // The fd watches' poller (fd_watch.h): only on an epoll loop.
  EpollPoller& epoll() noexcept {
    assert(epoll_poller_ != nullptr && "an fd watch on a completion-queue loop");
    return *epoll_poller_;
  }
  BlockingPool& blocking_pool() noexcept { return pool_; }
  Timers& timers() noexcept { return timers_; }
  int index() const noexcept { return index_; }

  // Queues `r` to run on this loop (loop thread only). A Runnable already queued stays queued once.
  void post(Runnable& r) noexcept;

  // Runs `fn` on the loop thread soon; callable from any thread. Returns false (and drops `fn`)
  // once the loop has been closed.
  bool post_threadsafe(std::function<void()> fn);

  // Bookkeeping of gRPC tags in flight on cq(): the loop does not finish while any is pending,
  // so shutdown never leaves a tag behind. Call tag_started() right before handing a tag to gRPC.
  void tag_started(void* tag) noexcept { cq_poller_->tag_started(tag); }
  long tags_in_flight() const noexcept { return poller_->in_flight(); }

  // Drives the loop until `*finished` is true and nothing is ready or in flight.
  void run(const bool& finished);

  // Busy polling: for this long after the last event, the loop polls its poller instead of
  // sleeping in it, so the next event of a busy call (the upstream's answer, the next
  // request) is picked up without a thread wake-up. Zero (the default) never spins. Loop thread
  // only, before run().
  void set_busy_poll(Duration window) noexcept { busy_poll_ = window; }

  // Refuses further post_threadsafe() calls and closes the poller (a completion queue is shut
  // down and drained). Returns how many operations were still pending (0 unless a bug left one
  // behind).
  size_t close();

 private:
  void run_ready();
  void run_inbox();
  bool close_inbox();

  std::unique_ptr<Poller> poller_;
  CqPoller* cq_poller_ = nullptr;        // poller_, when it is a completion queue
  EpollPoller* epoll_poller_ = nullptr;  // poller_, when it is epoll
  BlockingPool& pool_;
  int index_;
  Timers timers_;
  std::optional<TimePoint> last_empty_poll_;  // a non-blocking poll that found nothing
  Duration busy_poll_{};                      // see set_busy_poll()
  TimePoint last_event_{};                    // when the poller last gave an event
  Runnable* ready_head_ = nullptr;
  Runnable* ready_tail_ = nullptr;

  // Cross-thread inbox, woken through Poller::wake().
  std::mutex inbox_mu_;
  std::vector<std::function<void()>> inbox_;
  bool wake_armed_ = false;
  bool closed_ = false;
};

}  // namespace curfew::rt
