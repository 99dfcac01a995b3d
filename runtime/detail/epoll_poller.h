// EpollPoller: a loop's wait on epoll. Sources register non-blocking fds edge-triggered and are
// told of readiness on the loop thread; an eventfd carries the wake-up for cross-thread posts.
// Timeouts have nanosecond resolution (epoll_pwait2; before Linux 5.11 epoll_wait's
// milliseconds, rounded up), so a timer is not rounded up to 1 ms.
#pragma once

#include <atomic>

#include <cstdint>

#include "runtime/detail/poller.h"

namespace curfew::rt {

class EpollPoller final : public Poller {
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
  ~EpollPoller() override;

  // Registers `fd` edge-triggered for input, output and hang-up; returns an errno value (0 on
  // success). Loop thread, or another thread before the source can be ready (a listener bound
  // at start: epoll_ctl itself is thread-safe, hence the atomic count).
  int add(int fd, Source& source) noexcept;
  // Deregisters `fd`; call before closing it or destroying its Source. Loop thread only.
  void remove(int fd) noexcept;
  // How many fds are registered (for tests: every watch was removed).
  long sources() const noexcept { return sources_.load(std::memory_order_relaxed); }

  int wait(std::optional<Duration> timeout, int max_events) override;
  void wake() override;
  // Fd readiness is not an operation in flight: a task waiting on an fd keeps its loop running
  // by itself. Nothing is ever pending here.
  long in_flight() const noexcept override { return 0; }
  size_t close() override;

 private:
  void drain_wake() noexcept;

  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd
  WakeHandler on_wake_;
  std::atomic<long> sources_{0};
  bool no_pwait2_ = false;  // the kernel has no epoll_pwait2 (before 5.11)
};

}  // namespace curfew::rt
