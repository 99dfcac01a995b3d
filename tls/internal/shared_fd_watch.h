// SharedFdWatch: lets the reader and the writer of one TLS connection both wait for either
// direction of its fd.
//
// rt::FdWatch takes one waiter per direction. A plain socket's reader only ever waits to read
// and its writer to write; over TLS either side may need the other direction (SSL_read wants to
// write a KeyUpdate, SSL_write wants to read the rest of a post-handshake message), so two tasks
// may want the same direction at once. The first holds the FdWatch wait; a second waits until
// the holder stops waiting, for whatever reason (an edge, or its cancellation), and both then
// retry their SSL call. A wake that carries no edge costs one SSL call that asks again.
#pragma once

#include <array>

#include "runtime/event.h"
#include "runtime/fd_watch.h"
#include "runtime/task.h"

namespace curfew::tls::internal {

class SharedFdWatch {
 public:
  enum class Direction { kIn = 0, kOut = 1 };

  // `watch` must outlive this and its waits.
  explicit SharedFdWatch(rt::FdWatch& watch) noexcept : watch_(watch) {}
  SharedFdWatch(const SharedFdWatch&) = delete;
  SharedFdWatch& operator=(const SharedFdWatch&) = delete;

  // Waits for the next edge in `direction` (or one the FdWatch remembered), or until the task
  // holding the FdWatch's wait for it stops waiting. A cancellation point.
  rt::Task<void> wait(Direction direction);

 private:
  struct Slot {
    bool held = false;  // a task awaits the FdWatch in this direction
    rt::Event passed;   // set (and cleared) when that wait ends: wakes the tasks behind it
  };

  rt::FdWatch& watch_;
  std::array<Slot, 2> slots_;
};

}  // namespace curfew::tls::internal
