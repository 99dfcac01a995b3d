// CallReport: what happened to one call, as the proxy saw it. Filled in while the call runs and
// handed to a CallObserver (the metrics) when it ends.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/container/inlined_vector.h"

#include <grpcpp/support/status_code_enum.h>

#include "config/config.h"
#include "runtime/clock.h"

namespace curfew::sidecar {

// Why a call ended in DEADLINE_EXCEEDED.
enum class TimeoutCause { kNone, kRoute, kCaller, kBudget, kPerTry, kUpstream };
// Why a call's (or one upstream attempt's) upstream work was cancelled.
enum class CancelCause { kNone, kCaller, kDeadline, kShutdown, kSibling, kHedgeLost };

// Why curfew refused a call at once, without calling any upstream (the caller got
// RESOURCE_EXHAUSTED): one of its concurrency limits was reached (admission.h).
enum class Rejection { kNone, kListenerLimit, kRouteLimit };

// How a fan-out route calls its upstreams: all, quorum or hedge (config.h).
using FanoutMode = config::Fanout::Mode;

// ---- label values -----------------------------------------------------------------------------
//
// The one table of names for each enum above: the values of the metrics' labels (metrics/, listed
// in docs/metrics.md), in the order the metrics expose their series, and the names the sidecar
// uses (fanout.cc: the mode in a fan-out's error message). kNone has no label: nothing is counted.

template <typename E>
struct EnumLabel {
  E value;
  const char* label;
};

// curfew_timeouts_total{cause}
inline constexpr EnumLabel<TimeoutCause> kTimeoutCauseLabels[] = {
    {TimeoutCause::kRoute, "route"},       {TimeoutCause::kCaller, "caller"},
    {TimeoutCause::kBudget, "budget"},     {TimeoutCause::kPerTry, "per_try"},
    {TimeoutCause::kUpstream, "upstream"},
};
// curfew_cancellations_total{cause}
inline constexpr EnumLabel<CancelCause> kCancelCauseLabels[] = {
    {CancelCause::kCaller, "caller"},     {CancelCause::kDeadline, "deadline"},
    {CancelCause::kSibling, "sibling"},   {CancelCause::kHedgeLost, "hedge_lost"},
    {CancelCause::kShutdown, "shutdown"},
};
// curfew_rejected_total{limit}
inline constexpr EnumLabel<Rejection> kRejectionLabels[] = {
    {Rejection::kListenerLimit, "listener"},
    {Rejection::kRouteLimit, "route"},
};
// curfew_fanout_failures_total{mode}; the `mode` of a fan-out route in the configuration.
inline constexpr EnumLabel<FanoutMode> kFanoutModeLabels[] = {
    {FanoutMode::kAll, "all"},
    {FanoutMode::kQuorum, "quorum"},
    {FanoutMode::kHedge, "hedge"},
};

// The label of `value` in `table`; `otherwise` if the table does not list it (kNone).
template <typename E, size_t N>
constexpr const char* label_of(const EnumLabel<E> (&table)[N], E value,
                               const char* otherwise = nullptr) noexcept {
  for (const EnumLabel<E>& e : table) {
    if (e.value == value) return e.label;
  }
  return otherwise;
}

// One call made to an upstream on behalf of the caller.
struct UpstreamAttempt {
  enum class Role {
    kPrimary,      // the single upstream call of a plain route (its first try)
    kRetry,        // a retry of it
    kFanoutChild,  // one child of an `all` / `quorum` fan-out
    kHedge,        // one try of a `hedge` fan-out (the first one included)
    kMirror,       // the shadow copy; never affects the reply
  };
  const std::string* upstream = nullptr;
  Role role = Role::kPrimary;
  grpc::StatusCode code = grpc::StatusCode::OK;  // what it ended with (CANCELLED if cancelled)
  CancelCause cancelled = CancelCause::kNone;    // set when curfew cancelled it, and why
  bool per_try_timeout = false;                  // its per-try deadline ended it
  bool won = false;                              // its response is the one the caller got
};

struct CallReport {
  const std::string* listener = nullptr;
  const std::string* route = nullptr;     // null when no route matched
  const std::string* upstream = nullptr;  // null when no upstream was called
  grpc::StatusCode code = grpc::StatusCode::OK;
  grpc::StatusCode upstream_code = grpc::StatusCode::OK;
  rt::Duration duration{};
  TimeoutCause timeout = TimeoutCause::kNone;
  CancelCause cancel = CancelCause::kNone;
  std::optional<rt::Duration> budget_at_upstream_start;
  std::optional<rt::Duration> cancel_propagation;  // from the cause to the upstream cancel

  absl::InlinedVector<UpstreamAttempt, 2> attempts;  // every upstream call, in start order
  std::optional<FanoutMode> fanout_mode;  // set for a fan-out route; unset for a plain route
  bool fanout_failed = false;             // the fan-out group as a whole failed
  int retries = 0;                        // retries made (attempts beyond the first)
  // The upstream refused the call's stream unprocessed (REFUSED_STREAM, or above a GOAWAY's
  // last stream id) and curfew sent it again on another stream: not a retry, no attempt added.
  int transparent_retries = 0;
  bool retry_budget_exhausted = false;  // a retry was wanted but the retry budget refused it

  // Overload: set when curfew refused the call at once because the listener's
  // limits.max_concurrent_calls or the route's max_concurrent_calls was reached. Then code is
  // RESOURCE_EXHAUSTED, no upstream was called (attempts is empty, upstream is null), `route` is
  // the route the call matched (null if none) and duration is the time to refuse it. For the
  // metrics, e.g. curfew_rejected_total{listener, route, limit="listener"|"route"}; such calls
  // are also ordinary calls (call_started / call_finished are both delivered).
  Rejection rejected = Rejection::kNone;

  // The per-call fault boundary failed this call (an internal error; the caller got INTERNAL).
  bool fault = false;

  // The route mirrors this call, but its worker already had kMaxShadowsInFlight shadows (or was
  // shutting down): no copy was sent.
  bool shadow_skipped = false;
};

// Receives the reports; called on the loop thread of the call, so implementations must not
// block and should not share a lock between threads.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void call_started(const std::string& listener, const std::string* route) = 0;
  virtual void call_finished(const CallReport& report) = 0;
  // A mirror's shadow copy ended (sidecar/internal/shadow.h): it runs detached from its call, so it
  // is reported on its own, after the call's report. `attempt.role` is kMirror.
  virtual void shadow_finished(const std::string& listener, const std::string& route,
                               const UpstreamAttempt& attempt) {}
};

}  // namespace curfew::sidecar
