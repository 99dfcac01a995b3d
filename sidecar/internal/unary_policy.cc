#include "sidecar/internal/unary_policy.h"

#include <memory>

#include "sidecar/internal/fanout.h"
#include "sidecar/internal/retry.h"
#include "sidecar/internal/worker_state.h"

namespace curfew::sidecar {

rt::Task<UpstreamReply> run_unary_policy(const config::Route& route, UnaryCaller& caller,
                                         const UnaryRequest& request, rt::TimePoint deadline,
                                         rt::TimePoint upstream_deadline, WorkerState& worker,
                                         CallReport& report) {
  report.budget_at_upstream_start = deadline - rt::Clock::now();
  if (route.fanout) {
    co_return co_await fan_out(route, caller, request, upstream_deadline, report);
  }
  report.upstream = &route.upstream;
  if (route.hedge) {
    co_return co_await fan_out(route, route.hedge->as_fanout, caller, request, upstream_deadline,
                               report);
  }
  if (route.retry) {
    // Owned here for the whole call: the worker's map may rehash or be pruned meanwhile.
    const std::shared_ptr<RetryBudget> budget =
        worker.retry_budget(route.name, route.retry->budget_ratio);
    co_return co_await call_with_retries(route, caller, request, upstream_deadline, *budget,
                                         worker.random, report);
  }
  report.attempts.push_back({.upstream = &route.upstream, .role = UpstreamAttempt::Role::kPrimary});
  const size_t index = report.attempts.size() - 1;
  UpstreamReply reply = co_await caller.call(route.upstream, request, upstream_deadline);
  report.attempts[index].code = reply.status.code();
  report.attempts[index].won = true;
  co_return reply;
}

}  // namespace curfew::sidecar
