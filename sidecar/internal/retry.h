// Retries of a unary call within its deadline, with full-jitter exponential backoff, server
// pushback (grpc-retry-pushback-ms) and a retry budget so that an outage cannot multiply load.
#pragma once

#include <random>

#include "config/config.h"
#include "runtime/clock.h"
#include "runtime/task.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/unary_caller.h"

namespace curfew::sidecar {

// Retries may be at most `ratio` of the calls (plus a small floor, so that a trickle of calls can
// still retry), counted over a window that decays with a 10 s time constant. Like Envoy's retry
// budget / gRFC A6 throttling, but per worker thread: no lock shared between threads.
class RetryBudget {
 public:
  explicit RetryBudget(double ratio) : ratio_(ratio) {}
  void set_ratio(double ratio) noexcept { ratio_ = ratio; }
  // A call that may retry started.
  void record_call(rt::TimePoint now) noexcept;
  // True (and counted) when one more retry fits in the budget.
  bool try_acquire(rt::TimePoint now) noexcept;

  static constexpr double kMinRetries = 3;

 private:
  void decay(rt::TimePoint now) noexcept;
  double ratio_;
  double calls_ = 0;
  double retries_ = 0;
  rt::TimePoint last_{};
};

// Calls `upstream` up to route.retry->attempts times. A try's deadline is min(per_try_timeout
// from its start, `deadline`); a new try only starts if it can, and only for the codes in
// `retry.on` (or a per-try timeout); the backoff before try n is uniform in [0, min(max, base *
// 2^n)], or the server's grpc-retry-pushback-ms (a negative or malformed value stops retrying).
// Each try is recorded in report.attempts.
rt::Task<UpstreamReply> call_with_retries(const config::Route& route, UnaryCaller& upstreams,
                                          const UnaryRequest& request, rt::TimePoint deadline,
                                          RetryBudget& budget, std::minstd_rand& random,
                                          CallReport& report);

}  // namespace curfew::sidecar
