// FdWatch: a task waits for a non-blocking fd to become readable or writable, on an epoll loop.
//
//   rt::FdWatch watch(loop, fd);  // registers fd with the loop's epoll; deregisters when destroyed
//   for (;;) {
//     ssize_t n = ::read(fd, buf, sizeof buf);
//     if (n < 0 && errno == EAGAIN) { co_await watch.readable(); continue; }
//     ...
//   }
//
// Edge-triggered underneath: an edge that arrives while nobody waits is remembered, and a wait
// consumes it. So the protocol above never misses one; at worst a remembered edge costs one more
// read that says EAGAIN. Hang-up and error count as both readable and writable (the next read
// or write says what happened). Waiting is a cancellation point: a cancelled wait resumes with
// CancelledError and the fd stays registered. One waiter per direction at a time; the watch must
// outlive its waits, and the fd must stay open while the watch exists.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>

#include "runtime/detail/epoll_poller.h"
#include "runtime/detail/runnable.h"
#include "runtime/loop.h"
#include "runtime/task.h"
#include "runtime/task_state.h"

namespace curfew::rt {

class FdWatch final : private EpollPoller::Source {
 public:
  // Registers `fd` on `loop` (an epoll loop, on its thread). Throws std::system_error when epoll
  // refuses it.
  FdWatch(Loop& loop, int fd);
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;
  ~FdWatch();

  int fd() const noexcept { return fd_; }
  // The peer hung up or the socket has an error (EPOLLHUP, EPOLLERR or EPOLLRDHUP seen).
  bool hung_up() const noexcept { return hung_up_; }

  class Wait;
  // Waits until the fd is readable (or a remembered edge says it may be).
  Wait readable() noexcept;
  // Waits until the fd is writable (or a remembered edge says it may be).
  Wait writable() noexcept;

  class Wait final : private Runnable, private Suspension {
   public:
    Wait(FdWatch& watch, bool for_write) noexcept : watch_(watch), for_write_(for_write) {}
    Wait(const Wait&) = delete;
    Wait& operator=(const Wait&) = delete;

    bool await_ready() noexcept { return watch_.take_edge(for_write_); }
    template <RuntimePromise P>
    void await_suspend(std::coroutine_handle<P> caller) noexcept {
      waiter_ = caller;
      task_ = caller.promise().task_state();
      Wait*& slot = watch_.waiting(for_write_);
      assert(slot == nullptr && "two tasks wait for the same direction of one fd");
      slot = this;
      task_->suspend(*this);
    }
    void await_resume() {
      if (task_ != nullptr) task_->resume();
    }

   private:
    friend class FdWatch;
    // The edge arrived: resume on the next loop pass.
    // Idempotent: an edge and a cancellation may both arrive before the task runs.
    void wake() noexcept {
      if (Wait*& slot = watch_.waiting(for_write_); slot == this) slot = nullptr;
      task_->loop().post(*this);
    }
    // The cancel path: stop waiting (the fd stays registered) and resume with CancelledError.
    void cancel() noexcept override { wake(); }
    void run() override { waiter_.resume(); }

    FdWatch& watch_;
    bool for_write_;
    TaskState* task_ = nullptr;
    std::coroutine_handle<> waiter_;
  };

 private:
  void ready(uint32_t events) noexcept override;
  bool take_edge(bool for_write) noexcept;
  Wait*& waiting(bool for_write) noexcept { return for_write ? writer_ : reader_; }

  Loop& loop_;
  int fd_;
  bool readable_edge_ = false;
  bool writable_edge_ = false;
  bool hung_up_ = false;
  Wait* reader_ = nullptr;
  Wait* writer_ = nullptr;
};

inline FdWatch::Wait FdWatch::readable() noexcept { return Wait(*this, false); }
inline FdWatch::Wait FdWatch::writable() noexcept { return Wait(*this, true); }

}  // namespace curfew::rt
