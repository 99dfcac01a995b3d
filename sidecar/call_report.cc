#include "sidecar/call_report.h"

namespace curfew::sidecar {

const char* name(TimeoutCause cause) noexcept {
  switch (cause) {
    case TimeoutCause::kNone: return "none";
    case TimeoutCause::kRoute: return "route";
    case TimeoutCause::kCaller: return "caller";
    case TimeoutCause::kBudget: return "budget";
    case TimeoutCause::kPerTry: return "per_try";
    case TimeoutCause::kUpstream: return "upstream";
  }
  return "unknown";
}

const char* name(CancelCause cause) noexcept {
  switch (cause) {
    case CancelCause::kNone: return "none";
    case CancelCause::kCaller: return "caller";
    case CancelCause::kDeadline: return "deadline";
    case CancelCause::kShutdown: return "shutdown";
    case CancelCause::kSibling: return "sibling";
    case CancelCause::kHedgeLost: return "hedge_lost";
  }
  return "unknown";
}

}  // namespace curfew::sidecar
