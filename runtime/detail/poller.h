// Poller: what a Loop waits in between two passes. Two kinds, chosen per Runtime:
//
//   - CqPoller: a gRPC CompletionQueue (the gRPC awaitables: grpc_client.h, grpc_server.h).
//   - EpollPoller: epoll on the loop's own fds (fd_watch.h), for the data path curfew owns.
//
// One thread cannot block on a completion queue and on epoll at once, so a loop has exactly one;
// the runtime's semantics (tasks, groups, timeouts, cancellation) do not depend on which, and
// the conformance suite runs on both.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>

#include "runtime/clock.h"

namespace curfew::rt {

enum class PollerKind { kCompletionQueue, kEpoll };

class Poller {
 public:
  virtual ~Poller() = default;

  // Waits at most `timeout` (nullopt: until an event; zero: not at all) and dispatches up to
  // `max_events` events on the calling (loop) thread. Returns how many it dispatched.
  virtual int wait(std::optional<Duration> timeout, int max_events) = 0;

  // Makes the loop thread's wait() return soon and run the wake handler given at construction.
  // Any thread; the Loop calls it at most once until the handler ran.
  virtual void wake() = 0;

  // Operations handed to gRPC or the kernel that have not come back: the loop does not finish
  // while any is pending, so shutdown leaves none behind.
  virtual long in_flight() const noexcept = 0;

  // Stops the poller once its loop has finished. Returns how many operations were still pending
  // (0 unless a bug left one behind).
  virtual size_t close() = 0;
};

// The handler a poller runs on the loop thread after wake().
using WakeHandler = std::function<void()>;

}  // namespace curfew::rt
