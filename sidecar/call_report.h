// CallReport: what happened to one call, as the proxy saw it. Filled in while the call runs and
// handed to a CallObserver (the metrics) when it ends.
#pragma once

#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "runtime/clock.h"

namespace curfew::sidecar {

// Why a call ended in DEADLINE_EXCEEDED.
enum class TimeoutCause { kNone, kRoute, kCaller, kBudget, kPerTry, kUpstream };
// Why a call's upstream work was cancelled.
enum class CancelCause { kNone, kCaller, kDeadline, kShutdown };

const char* name(TimeoutCause cause) noexcept;
const char* name(CancelCause cause) noexcept;

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
};

// Receives the reports; called on the loop thread of the call, so implementations must not
// block and should not share a lock between threads.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void call_started(const std::string& listener, const std::string* route) = 0;
  virtual void call_finished(const CallReport& report) = 0;
};

}  // namespace curfew::sidecar
