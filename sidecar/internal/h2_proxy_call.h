// h2_proxy_call: forwards one caller stream to its route's upstream on curfew's own HTTP/2
// connections (the nghttp2 data path), under the route's deadline, with cancellation propagated
// both ways. The same decisions as proxy_call.h (routing, deadline policy, status messages,
// reports); only the transport differs:
//
//   - message bodies are forwarded cut-through, chunk by chunk as DATA frames arrive, never
//     assembled; flow control carries a slow reader's pace back to its writer;
//   - the caller's metadata crosses as header fields, grpc-encoding included (compressed bytes
//     pass through untouched), -bin values untouched;
//   - a caller's RST_STREAM cancels the task at once (h2::Session), which resets the upstream
//     stream (CANCEL); an upstream reset or lost connection becomes the caller's status
//     (wire/status_mapping.h); a request reaches the upstream as complete only when the caller
//     ended it with END_STREAM.
//
// Routes with a fan-out, retries or a mirror buffer the one request message and run the same
// policies as the gRPC path (fanout.h, retry.h, shadow.h) over H2UnaryCaller.
#pragma once

#include <atomic>
#include <memory>

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

// Serves `caller` to completion. Never throws except CancelledError; any other error fails that
// call alone with INTERNAL (CallReport::fault), as proxy_call does.
rt::Task<void> h2_proxy_call(std::shared_ptr<h2::Stream> caller, H2CallContext context);

}  // namespace curfew::sidecar
