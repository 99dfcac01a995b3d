// h2_proxy_call: forwards one caller stream to its route's upstream on curfew's own HTTP/2
// connections, under the route's deadline, with cancellation propagated both ways.
//
// The flow of one call (see docs/architecture.md):
//   1. match the method to a route (none: UNIMPLEMENTED from curfew);
//   2. decide the deadline (deadline_policy.h); below min_budget: DEADLINE_EXCEEDED at once;
//   3. under a deadline scope, open the upstream stream with the caller's metadata and the
//      remaining budget as grpc-timeout, then relay both directions in one task group;
//   4. the upstream's status, message, details and trailers go back to the caller.
//
//   - message bodies are forwarded cut-through, chunk by chunk as DATA frames arrive, never
//     assembled; flow control carries a slow reader's pace back to its writer;
//   - the caller's metadata crosses as header fields, grpc-encoding included (compressed bytes
//     pass through untouched), -bin values untouched;
//   - a caller's RST_STREAM cancels the task at once (h2::Session), which resets the upstream
//     stream (CANCEL); an upstream reset or lost connection becomes the caller's status
//     (wire/status_mapping.h); a request reaches the upstream as complete only when the caller
//     ended it with END_STREAM; the deadline passing resets the upstream stream and the caller
//     gets DEADLINE_EXCEEDED naming the route and its budget.
//
// Routes with a fan-out, retries or a mirror buffer the one request message (a second one is
// refused with INVALID_ARGUMENT) and run the unary policies (fanout.h, retry.h, shadow.h) over
// H2UnaryCaller.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "h2/stream.h"
#include "runtime/task.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/routing.h"
#include "sidecar/internal/upstream_pool.h"

namespace curfew::sidecar {

class WorkerState;

struct H2CallContext {
  std::shared_ptr<const Routing> routing;  // the routing this call keeps for its whole life
  const config::Listener* listener;        // inside `routing`
  UpstreamPool* pool;                      // the loop's connections; outlives the call
  WorkerState* worker;  // the loop's retry budgets, random source and shadows; outlives the call
  CallObserver* observer = nullptr;  // may be null
  const std::atomic<bool>* shutting_down = nullptr;
};

// Serves `caller` to completion. Never throws except CancelledError: any other error inside the
// call (a bug, an allocation failure) fails that call alone with INTERNAL, is logged once with
// its route and is reported (CallReport::fault); the loop's other calls go on.
rt::Task<void> h2_proxy_call(std::shared_ptr<h2::Stream> caller, H2CallContext context);

// Test hook: called with the method at the start of every call, before routing; what it throws
// is that call's fault. Null (the default) in production.
using CallFaultHook = void (*)(const std::string& method);
void set_call_fault_hook_for_testing(CallFaultHook hook);

}  // namespace curfew::sidecar
