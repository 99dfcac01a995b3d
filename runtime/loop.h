// Loop: the event loop of one worker thread, driven by that thread's gRPC CompletionQueue.
//
// One iteration: fire the timers that are due, run the Runnables that were ready when the
// iteration began (FIFO, like asyncio's call_soon), then wait in the completion queue until the
// next timer or the next gRPC event (with tasks still ready: poll it without waiting, skipped for
// a few microseconds after such a poll found it empty). Tasks never migrate between loops, so
// everything a task touches is touched by one thread only; the only cross-thread entry is
// post_threadsafe().
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include "runtime/detail/completion.h"
#include "runtime/detail/timers.h"

namespace curfew::rt {

class BlockingPool;

class Loop {
 public:
  // `cq` is owned by the caller and must outlive the loop. `server_cq` is the same queue when it
  // was created by a grpc::ServerBuilder (needed to accept calls), else null.
  Loop(grpc::CompletionQueue& cq, grpc::ServerCompletionQueue* server_cq, BlockingPool& pool,
       int index);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop();

  // The loop running on this thread, or null outside a loop.
  static Loop* current() noexcept;

  grpc::CompletionQueue& cq() noexcept { return cq_; }
  grpc::ServerCompletionQueue* server_cq() noexcept { return server_cq_; }
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
  void tag_started(void* tag) noexcept;
  long tags_in_flight() const noexcept { return tags_in_flight_.load(std::memory_order_acquire); }

  // Drives the loop until `*finished` is true and nothing is ready or in flight.
  void run(const bool& finished);

  // Busy polling: for this long after the last completion-queue event, the loop polls the queue
  // instead of sleeping on it, so the next event of a busy call (the upstream's answer, the next
  // request) is picked up without a thread wake-up. Zero (the default) never spins. Loop thread
  // only, before run().
  void set_busy_poll(Duration window) noexcept { busy_poll_ = window; }

  // Refuses further post_threadsafe() calls, shuts the completion queue down and drains it.
  // Returns how many tags were still in it (0 unless a bug left one behind).
  size_t close();

 private:
  class WakeTag final : public Completion {
   public:
    explicit WakeTag(Loop& loop) : loop_(loop) {}
    void complete(bool ok) override;

   private:
    Loop& loop_;
  };

  void run_ready();
  void dispatch(void* tag, bool ok);
  void run_inbox();
  bool close_inbox();

  grpc::CompletionQueue& cq_;
  grpc::ServerCompletionQueue* server_cq_;
  BlockingPool& pool_;
  int index_;
  Timers timers_;
  std::optional<TimePoint> last_empty_poll_;  // a non-blocking poll that found nothing
  Duration busy_poll_{};                      // see set_busy_poll()
  TimePoint last_event_{};                    // when the queue last gave an event
  Runnable* ready_head_ = nullptr;
  Runnable* ready_tail_ = nullptr;
  std::atomic<long> tags_in_flight_{0};

  // Cross-thread inbox, woken through an immediate grpc::Alarm.
  std::mutex inbox_mu_;
  std::vector<std::function<void()>> inbox_;
  bool wake_armed_ = false;
  bool closed_ = false;
  grpc::Alarm wake_alarm_;
  WakeTag wake_tag_{*this};
};

}  // namespace curfew::rt
