// The deadline policy of a call, decided once, on arrival, in one place (like Envoy's router
// timeout policy): which deadline curfew enforces, why, and what is sent upstream.
//
//   effective deadline = arrival + the caller's grpc-timeout, capped by the route's max_timeout,
//                        or arrival + the route's timeout (else the listener's default_timeout)
//                        when the caller sent none;
//   upstream deadline  = effective deadline - the route's deadline_offset, so that curfew can
//                        answer DEADLINE_EXCEEDED itself before the caller gives up;
//   fast fail          = less than min_budget left (or nothing at all): DEADLINE_EXCEEDED at
//                        once, the upstream is never called.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "config/config.h"
#include "runtime/clock.h"

namespace curfew::sidecar {

struct CallDeadline {
  // Where the deadline came from.
  enum class Source {
    kCaller,           // the caller's grpc-timeout
    kCallerCapped,     // the caller's grpc-timeout, cut to the route's max_timeout
    kRoute,            // the route's timeout (the caller sent none)
    kListenerDefault,  // the listener's default_timeout (neither caller nor route set one)
  };

  rt::TimePoint arrival;
  rt::TimePoint deadline;           // when curfew answers DEADLINE_EXCEEDED
  rt::TimePoint upstream_deadline;  // what the upstream is told
  rt::Duration budget;              // deadline - arrival (may be <= 0: the caller was late)
  Source source;
  bool fast_fail;  // below min_budget: do not call the upstream

  // "250ms (route timeout)" — for status messages and logs.
  std::string describe() const;
};

// Decides the deadline of a call that arrived at `arrival` on `listener`, matched to `route`,
// with the caller's own timeout if it sent one.
CallDeadline decide_deadline(const config::Listener& listener, const config::Route& route,
                             std::optional<rt::Duration> caller_timeout, rt::TimePoint arrival);

// The caller's timeout as carried by a server context's deadline (system clock; max() when none).
std::optional<rt::Duration> caller_timeout_from(std::chrono::system_clock::time_point deadline,
                                                std::chrono::system_clock::time_point now);

// A steady-clock deadline as the system-clock time point gRPC's ClientContext wants.
std::chrono::system_clock::time_point to_system_deadline(rt::TimePoint deadline);

}  // namespace curfew::sidecar
