// Fan-out: one unary call sent to several upstreams inside one task group, under the call's
// deadline.
//
//   all     scatter-gather: every upstream must succeed; the first failure cancels every sibling
//           (each upstream sees RST_STREAM CANCEL) and the caller gets one aggregated status.
//   quorum  succeeds as soon as `quorum` children succeeded (the rest are cancelled); fails as
//           soon as success became impossible.
//   hedge   starts on the first upstream and, each `delay` without an answer (or at once after a
//           retryable failure), on the next; the first success wins and the others are
//           cancelled; a non-retryable failure stops hedging and is returned as it is.
//
// On success the responses are merged: `concat` concatenates the successful responses in the
// configured upstream order (protobuf wire concatenation = message merge); `first` returns the
// earliest. Initial metadata and trailers come from the response returned (for concat: the
// first upstream in configured order).
//
// The aggregated failure status (see fanout_status.h): code = the first failure's code; message
// lists each failed child; grpc-status-details-bin holds a google.rpc.Status with one
// google.rpc.ErrorInfo per child (succeeded, failed, cancelled or not started).
#pragma once

#include "config/config.h"
#include "runtime/task.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/unary_caller.h"

namespace curfew::sidecar {

// Status codes after which a hedge tries the next upstream at once instead of giving up.
bool hedge_retryable(grpc::StatusCode code) noexcept;

// Runs the fan-out of `route` for `request`; children are bounded by `upstream_deadline`. Records
// every child in `report.attempts`. Cancellation of the caller's task cancels every child.
rt::Task<UpstreamReply> fan_out(const config::Route& route, UnaryCaller& upstreams,
                                const UnaryRequest& request, rt::TimePoint upstream_deadline,
                                CallReport& report);
// The same with `fanout` (in the call's Routing) instead of the route's own: a route's hedge
// within its upstream (config::Hedge::as_fanout), whose children go to different endpoints of
// the set because one UnaryCaller remembers the endpoints a call tried.
rt::Task<UpstreamReply> fan_out(const config::Route& route, const config::Fanout& fanout,
                                UnaryCaller& upstreams, const UnaryRequest& request,
                                rt::TimePoint upstream_deadline, CallReport& report);

}  // namespace curfew::sidecar
