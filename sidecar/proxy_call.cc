#include "sidecar/proxy_call.h"

#include "runtime/errors.h"
#include "runtime/grpc_client.h"
#include "runtime/loop.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "sidecar/deadline_policy.h"
#include "sidecar/metadata.h"

namespace curfew::sidecar {
namespace {

class ProxyCall {
 public:
  ProxyCall(rt::ServerCall& call, ProxyContext& ctx) : call_(call), ctx_(ctx) {}

  rt::Task<void> run();

 private:
  rt::Task<void> forward(const config::Route& route, Upstream& upstream);
  rt::Task<void> pump_requests(rt::ClientCall& up);
  rt::Task<void> pump_responses(rt::ClientCall& up);
  rt::Task<void> reply(grpc::Status status);
  grpc::Status deadline_status() const;
  void send_upstream_initial_metadata(rt::ClientCall& up);

  // Records how the upstream attempt ended and how fast a cancellation reached it.
  void record_attempt_end(const rt::ClientCall& up, rt::TaskState& task, CancelCause cause);

  rt::ServerCall& call_;
  ProxyContext& ctx_;
  const config::Route* route_ = nullptr;
  CallDeadline deadline_{};
  CallReport report_;
  bool initial_metadata_forwarded_ = false;
};

grpc::Status ProxyCall::deadline_status() const {
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                      "curfew: deadline exceeded on route '" + route_->name + "' after " +
                          deadline_.describe());
}

rt::Task<void> ProxyCall::reply(grpc::Status status) {
  report_.code = status.error_code();
  co_await call_.finish(status);
}

void ProxyCall::send_upstream_initial_metadata(rt::ClientCall& up) {
  if (initial_metadata_forwarded_) return;
  initial_metadata_forwarded_ = true;
  forward_initial_metadata(up.context().GetServerInitialMetadata(), call_.context());
}

rt::Task<void> ProxyCall::pump_requests(rt::ClientCall& up) {
  grpc::ByteBuffer message;
  while (co_await call_.read(message)) {
    if (!co_await up.write(message)) co_return;  // upstream finished: its status tells why
  }
  co_await up.writes_done();
}

rt::Task<void> ProxyCall::pump_responses(rt::ClientCall& up) {
  grpc::ByteBuffer message;
  while (co_await up.read(message)) {
    send_upstream_initial_metadata(up);
    if (!co_await call_.write(message)) {
      // The caller is gone; the done notification cancels this task. Stop the upstream now.
      up.cancel();
      co_return;
    }
  }
  grpc::Status status = co_await up.finish();
  report_.upstream_code = status.error_code();
  report_.attempts.back().code = status.error_code();
  report_.attempts.back().won = true;
  send_upstream_initial_metadata(up);
  forward_trailing_metadata(up.context().GetServerTrailingMetadata(), call_.context());
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    if (rt::Clock::now() >= deadline_.upstream_deadline) {
      // The budget curfew propagated ran out: it is this route's deadline, say so.
      report_.timeout = deadline_.source == CallDeadline::Source::kCaller ? TimeoutCause::kCaller
                                                                          : TimeoutCause::kRoute;
      status = deadline_status();
    } else {
      report_.timeout = TimeoutCause::kUpstream;
    }
  }
  // Finishing the caller's call also ends a request pump still waiting for the caller.
  co_await reply(status);
}

rt::Task<void> ProxyCall::forward(const config::Route& route, Upstream& upstream) {
  rt::ClientCall up(upstream.next_stub(), call_.method(), *rt::Loop::current());
  forward_request_metadata(call_.context().client_metadata(), up.context());
  up.context().set_deadline(to_system_deadline(deadline_.upstream_deadline));
  report_.upstream = &upstream.name();
  report_.budget_at_upstream_start = deadline_.deadline - rt::Clock::now();
  report_.attempts.push_back({.upstream = &upstream.name(), .role = UpstreamAttempt::Role::kPrimary});
  rt::TaskState& task = co_await rt::this_task{};

  try {
    co_await up.start();  // a dead call shows up in the reads and the status below
    rt::TaskGroup pumps;
    co_await pumps.run([](ProxyCall& self, rt::TaskGroup& g, rt::ClientCall& up) -> rt::Task<void> {
      g.spawn(self.pump_requests(up), "requests");
      co_await self.pump_responses(up);
    }(*this, pumps, up));
  } catch (const rt::CancelledError&) {
    const bool deadline = rt::Clock::now() >= deadline_.deadline;
    record_attempt_end(up, task, deadline ? CancelCause::kDeadline : CancelCause::kCaller);
    throw;
  }
}

void ProxyCall::record_attempt_end(const rt::ClientCall& up, rt::TaskState& task,
                                   CancelCause cause) {
  UpstreamAttempt& attempt = report_.attempts.back();
  attempt.code = grpc::StatusCode::CANCELLED;
  attempt.cancelled = cause;
  if (auto at = up.cancelled_at()) report_.cancel_propagation = *at - task.last_cancel_at();
}

rt::Task<void> ProxyCall::run() {
  rt::TaskState& task = co_await rt::this_task{};
  call_.cancel_task_on_disconnect(task);
  const config::Listener& listener = *ctx_.listener;
  report_.listener = &listener.name;
  const rt::TimePoint arrival = rt::Clock::now();

  route_ = listener.route_for(call_.method());
  if (ctx_.observer) ctx_.observer->call_started(listener.name, route_ ? &route_->name : nullptr);
  struct Report {  // delivers the report however the call ends
    ProxyCall& self;
    rt::TimePoint arrival;
    ~Report() {
      self.report_.duration = rt::Clock::now() - arrival;
      if (self.ctx_.observer) self.ctx_.observer->call_finished(self.report_);
    }
  } deliver{*this, arrival};

  if (route_ == nullptr) {
    co_await reply(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                "curfew: no route for " + call_.method() + " on listener '" +
                                    listener.name + "'"));
    co_return;
  }
  report_.route = &route_->name;
  deadline_ = decide_deadline(
      listener, *route_,
      caller_timeout_from(call_.context().deadline(), std::chrono::system_clock::now()), arrival);
  if (deadline_.fast_fail) {
    report_.timeout = TimeoutCause::kBudget;
    co_await reply(grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        "curfew: route '" + route_->name + "' has " + deadline_.describe() +
            " left, below its min_budget; the upstream was not called"));
    co_return;
  }
  Upstream* upstream = ctx_.routing->upstreams->find(route_->upstream);
  if (upstream == nullptr) {  // a fan-out route: served by the fan-out engine, not here
    co_await reply(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                "curfew: route '" + route_->name + "' has no single upstream"));
    co_return;
  }

  // A cancellation that interrupts a pending step answers the caller properly.
  call_.set_interrupt_status([this] {
    if (rt::Clock::now() >= deadline_.deadline) return deadline_status();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "curfew: shutting down");
  });

  try {
    co_await rt::deadline(deadline_.deadline, forward(*route_, *upstream));
    co_return;
  } catch (const rt::TimeoutError&) {
    report_.timeout = deadline_.source == CallDeadline::Source::kCaller ? TimeoutCause::kCaller
                                                                        : TimeoutCause::kRoute;
    report_.cancel = CancelCause::kDeadline;
    report_.code = grpc::StatusCode::DEADLINE_EXCEEDED;
  } catch (const rt::CancelledError&) {
    const bool shutdown = ctx_.shutting_down && ctx_.shutting_down->load(std::memory_order_relaxed);
    report_.cancel = shutdown ? CancelCause::kShutdown : CancelCause::kCaller;
    report_.code = grpc::StatusCode::CANCELLED;
    throw;
  }
  // Here only after the deadline: the status may already be out (sent when the deadline
  // interrupted a read from the caller).
  if (!call_.finished()) co_await call_.finish(deadline_status());
}

}  // namespace

rt::Task<void> proxy_call(rt::ServerCallPtr call, ProxyContext context) {
  ProxyCall proxy(*call, context);
  co_await proxy.run();
}

}  // namespace curfew::sidecar
