// ProxyCall: forwards one accepted call to its route's upstream, byte for byte, under the
// route's deadline, with cancellation propagated both ways.
//
// The flow of one call (see docs/architecture.md):
//   1. match the method to a route (none: UNIMPLEMENTED from curfew);
//   2. decide the deadline (deadline_policy.h); below min_budget: DEADLINE_EXCEEDED at once;
//   3. under a deadline scope, start the upstream call with the caller's metadata and the
//      remaining budget, then pump requests (caller -> upstream, a child task) and responses
//      (upstream -> caller, the body) in one task group;
//   4. the upstream's status, message, details and trailers go back to the caller.
// Routes with a fan-out, retries or a mirror buffer the request: they serve unary calls (a second
// request message is refused with INVALID_ARGUMENT), see serve_unary().
// The caller going away cancels the task, which cancels the upstream call (RST_STREAM CANCEL);
// the deadline passing does the same and the caller gets DEADLINE_EXCEEDED naming the route and
// its budget.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "runtime/grpc_server.h"
#include "runtime/task.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/routing.h"

namespace curfew::sidecar {

class WorkerState;

struct ProxyContext {
  std::shared_ptr<const Routing> routing;  // the routing this call keeps for its whole life
  const config::Listener* listener;        // inside `routing`
  WorkerState* worker;  // the loop thread's retry budgets and random source; outlives the call
  CallObserver* observer = nullptr;  // may be null
  const std::atomic<bool>* shutting_down = nullptr;
};

// Serves `call` to completion. Never throws except CancelledError: any other error inside the
// call (a bug, an allocation failure) fails that call alone with INTERNAL, is logged once with
// its route and is reported (CallReport::fault); the worker's other calls go on.
rt::Task<void> proxy_call(rt::ServerCallPtr call, ProxyContext context);

// Test hook: called with the method at the start of every call, before routing; what it throws
// is that call's fault. Null (the default) in production.
using CallFaultHook = void (*)(const std::string& method);
void set_call_fault_hook_for_testing(CallFaultHook hook);
// The hook set (null in production); both data paths call it.
CallFaultHook call_fault_hook() noexcept;

}  // namespace curfew::sidecar
