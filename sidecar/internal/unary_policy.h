// The unary policy of a fan-out, retry or mirror route, in one function: the fan-out, the
// retries under the worker's budget, or a single call, over a UnaryCaller. Records the attempts and
// the budget at the upstream start in `report`.
#pragma once

#include "config/config.h"
#include "runtime/clock.h"
#include "runtime/task.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/unary_caller.h"

namespace curfew::sidecar {

class WorkerState;

rt::Task<UpstreamReply> run_unary_policy(const config::Route& route, UnaryCaller& caller,
                                         const UnaryRequest& request, rt::TimePoint deadline,
                                         rt::TimePoint upstream_deadline, WorkerState& worker,
                                         CallReport& report);

}  // namespace curfew::sidecar
