#include "sidecar/internal/deadline_policy.h"

#include <algorithm>

#include <string>

namespace curfew::sidecar {
namespace {

const char* source_name(CallDeadline::Source s) {
  switch (s) {
    case CallDeadline::Source::kCaller:
      return "caller's grpc-timeout";
    case CallDeadline::Source::kCallerCapped:
      return "caller's grpc-timeout capped by max_timeout";
    case CallDeadline::Source::kRoute:
      return "route timeout";
    case CallDeadline::Source::kListenerDefault:
      return "listener default_timeout";
  }
  return "?";
}

}  // namespace

std::string CallDeadline::describe() const {
  // Milliseconds: a caller's grpc-timeout rarely is a round number of anything finer.
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(budget).count();
  return std::to_string(ms) + "ms (" + source_name(source) + ")";
}

CallDeadline decide_deadline(const config::Listener& listener, const config::Route& route,
                             std::optional<rt::Duration> caller_timeout, rt::TimePoint arrival) {
  CallDeadline d;
  d.arrival = arrival;
  if (caller_timeout) {
    d.budget = *caller_timeout;
    d.source = CallDeadline::Source::kCaller;
    if (route.max_timeout && d.budget > *route.max_timeout) {
      d.budget = *route.max_timeout;
      d.source = CallDeadline::Source::kCallerCapped;
    }
  } else if (route.timeout) {
    d.budget = *route.timeout;
    d.source = CallDeadline::Source::kRoute;
  } else {
    d.budget = listener.default_timeout;
    d.source = CallDeadline::Source::kListenerDefault;
  }
  d.deadline = arrival + d.budget;
  d.upstream_deadline = d.deadline - route.deadline_offset;
  d.fast_fail = d.budget <= rt::Duration::zero() || d.budget < route.min_budget ||
                d.upstream_deadline <= arrival;
  return d;
}

std::optional<rt::Duration> caller_timeout_from(std::chrono::system_clock::time_point deadline,
                                                std::chrono::system_clock::time_point now) {
  // gRPC reports "no deadline" as the far future.
  if (deadline >= now + std::chrono::hours(24 * 365)) return std::nullopt;
  return std::chrono::duration_cast<rt::Duration>(deadline - now);
}

std::chrono::system_clock::time_point to_system_deadline(rt::TimePoint deadline) {
  const auto remaining = deadline - rt::Clock::now();
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(remaining);
}

}  // namespace curfew::sidecar
