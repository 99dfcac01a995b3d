// Loop: the event loop of one worker thread, waiting in epoll (detail/epoll_poller.h) for its
// fds, its timers and cross-thread posts.
//
// One iteration: fire the timers that are due, run the Runnables that were ready when the
// iteration began (FIFO, like asyncio's call_soon), then wait in the poller until the next timer
// or the next event (with tasks still ready: poll it without waiting, skipped within a few
// microseconds of the last poll). Runnables posted "before poll" (libuv's prepare phase) run once
// nothing else is ready, before the poll: a connection's writer sends what a whole burst of its
// streams' work queued, in one write, without a pass of its own. Tasks never migrate between
// loops, so everything a task touches is touched by one thread only; the only cross-thread entry
// is post_threadsafe().
#pragma once

#include <cassert>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "runtime/detail/epoll_poller.h"
#include "runtime/detail/runnable.h"
#include "runtime/detail/timers.h"

namespace curfew::rt {

class BlockingPool;

class Loop {
 public:
  Loop(BlockingPool& pool, int index);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop();

  // The loop running on this thread, or null outside a loop.
  static Loop* current() noexcept;

  // The fd watches' poller (fd_watch.h).
  EpollPoller& epoll() noexcept { return poller_; }
  BlockingPool& blocking_pool() noexcept { return pool_; }
  Timers& timers() noexcept { return timers_; }
  int index() const noexcept { return index_; }

  // Queues `r` to run on this loop (loop thread only). A Runnable already queued stays queued once.
  void post(Runnable& r) noexcept;

  // Queues `r` to run just before this loop next polls for I/O: once no other Runnable is ready
  // (every one ready now, and every one those make ready, has run), or, while some stay ready,
  // at the next poll (at most the repoll interval away, 20 µs by default). A loop polls between two
  // such turns, so a Runnable that queues itself again each time cannot starve I/O. Loop thread
  // only; a Runnable already queued (on either list) stays queued once.
  void post_before_poll(BeforePollRunnable& r) noexcept;
  // Takes `r` off the before-poll list if it is on it (a cancelled waiter).
  void remove_before_poll(BeforePollRunnable& r) noexcept;

  // Runs `fn` on the loop thread soon; callable from any thread. Returns false (and drops `fn`)
  // once the loop has been closed.
  bool post_threadsafe(std::function<void()> fn);

  // Drives the loop until `*finished` is true and nothing is ready or posted.
  void run(const bool& finished);

  // Busy polling: for this long after the last event, the loop polls its poller instead of
  // sleeping in it, so the next event of a busy call (the upstream's answer, the next
  // request) is picked up without a thread wake-up. Zero (the default) never spins. Loop thread
  // only, before run().
  void set_busy_poll(Duration window) noexcept { busy_poll_ = window; }

  // The interval within which a pass with tasks ready does not poll again (20 µs by default).
  // Such a pass would poll without blocking, a system call that costs about as much as a short
  // pass, and chains of short passes are common on the proxy path (a request is read, routed and
  // written upstream over three or four). So a busy loop polls about once per interval, and an
  // event waits at most this long. Loop thread only; for tests that need a burst of passes
  // without a poll in between, whatever the build's speed.
  void set_repoll_interval(Duration interval) noexcept { repoll_interval_ = interval; }

  // Refuses further post_threadsafe() calls and closes the poller. Returns how many fd watches
  // were still registered (0 unless a bug left one behind).
  size_t close();

 private:
  void run_ready();
  void release_before_poll() noexcept;  // the before-poll list, in order, onto the ready list
  void run_inbox();
  bool close_inbox();

  EpollPoller poller_;
  BlockingPool& pool_;
  int index_;
  Timers timers_;
  TimePoint last_poll_{};                                     // when the poller was last asked
  Duration repoll_interval_ = std::chrono::microseconds(20);  // see set_repoll_interval()
  Duration busy_poll_{};                                      // see set_busy_poll()
  TimePoint last_event_{};                                    // when the poller last gave an event
  Runnable* ready_head_ = nullptr;
  Runnable* ready_tail_ = nullptr;
  BeforePollRunnable* before_poll_head_ = nullptr;
  BeforePollRunnable* before_poll_tail_ = nullptr;
  bool released_since_poll_ = false;  // the before-poll list had its turn since the last poll

  // Cross-thread inbox, woken through EpollPoller::wake().
  std::mutex inbox_mu_;
  std::vector<std::function<void()>> inbox_;
  bool wake_armed_ = false;
  bool closed_ = false;
};

}  // namespace curfew::rt
