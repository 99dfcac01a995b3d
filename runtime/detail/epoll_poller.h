// EpollPoller: a loop's wait on epoll. Sources register non-blocking fds edge-triggered and are
// told of readiness on the loop thread; an eventfd carries the wake-up for cross-thread posts.
// Timeouts have nanosecond resolution (epoll_pwait2; before Linux 5.11 epoll_wait's
// milliseconds, rounded up), so a timer is not rounded up to 1 ms.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include "runtime/clock.h"

namespace curfew::rt {

// The handler the poller runs on the loop thread after wake().
using WakeHandler = std::function<void()>;

class EpollPoller {
 public:
  // Something registered for readiness events of one fd.
  class Source {
   public:
    // On the loop thread, with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP,
    // EPOLLRDHUP) seen since the last call. Must not remove any Source (its own included): an
    // event for it may still be waiting in the same batch. Post work instead.
    virtual void ready(uint32_t events) noexcept = 0;

   protected:
    ~Source() = default;
  };

  explicit EpollPoller(WakeHandler on_wake);
  EpollPoller(const EpollPoller&) = delete;
  EpollPoller& operator=(const EpollPoller&) = delete;
  ~EpollPoller();

  // Registers `fd` edge-triggered for input, output and hang-up; returns an errno value (0 on
  // success). Loop thread, or another thread before the source can be ready (a listener bound
  // at start: epoll_ctl itself is thread-safe, hence the atomic count).
  int add(int fd, Source& source) noexcept;
  // Deregisters `fd`; call before closing it or destroying its Source. Loop thread only.
  void remove(int fd) noexcept;
  // How many fds are registered (for tests: every watch was removed).
  long sources() const noexcept { return sources_.load(std::memory_order_relaxed); }

  // Waits at most `timeout` (nullopt: until an event; zero: not at all) and dispatches up to
  // `max_events` events on the calling (loop) thread. Returns how many it dispatched.
  int wait(std::optional<Duration> timeout, int max_events);
  // Makes the loop thread's wait() return soon and run the wake handler. Any thread; the Loop
  // calls it at most once until the handler ran.
  void wake();
  // Closes the epoll and wake fds once the loop has finished. Returns how many fds were still
  // registered (0 unless a bug left a watch behind).
  size_t close();

 private:
  void drain_wake() noexcept;

  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd
  WakeHandler on_wake_;
  std::atomic<long> sources_{0};
  bool no_pwait2_ = false;  // the kernel has no epoll_pwait2 (before 5.11)
};

}  // namespace curfew::rt
