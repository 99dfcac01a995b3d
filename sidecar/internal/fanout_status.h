// The one status a caller gets when a fan-out fails: which code, which message, which details.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "sidecar/internal/call_status.h"

namespace curfew::sidecar {

// How one child of a fan-out ended.
struct ChildResult {
  enum class Outcome { kSucceeded, kFailed, kCancelled, kNotStarted };
  std::string upstream;
  Outcome outcome = Outcome::kNotStarted;
  CallStatus status;          // the upstream's status (for kSucceeded / kFailed)
  std::string cancel_reason;  // for kCancelled: "sibling failed", "hedge lost", ...
  int finish_order = -1;      // 0 for the first child to finish, ...
};

// The aggregated status: code = the code of the first child to fail (DEADLINE_EXCEEDED when none
// failed before the deadline); message = "curfew: fan-out (MODE) on route 'R' failed: K of N
// upstreams failed: up-a: CODE: message; ..."; details = google.rpc.Status{code, message,
// details: one google.rpc.ErrorInfo per child, in configured order}.
CallStatus aggregate_failure(const config::Route& route, const char* mode,
                             const std::vector<ChildResult>& children);

const char* outcome_name(ChildResult::Outcome outcome) noexcept;

}  // namespace curfew::sidecar
