#include "sidecar/internal/proxy_call.h"

#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/grpc_client.h"
#include "runtime/loop.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "sidecar/internal/deadline_policy.h"
#include "sidecar/internal/fanout.h"
#include "sidecar/internal/message_pipe.h"
#include "sidecar/internal/metadata.h"
#include "sidecar/internal/report_on_exit.h"
#include "sidecar/internal/retry.h"
#include "sidecar/internal/shadow.h"
#include "sidecar/internal/unary_policy.h"
#include "sidecar/internal/upstream_call.h"
#include "sidecar/internal/worker_state.h"
#include "sidecar/log.h"

namespace curfew::sidecar {
namespace {

std::atomic<CallFaultHook> g_call_fault_hook{nullptr};

// The reader of a MessagePipe: `read(message)` is the read operation (the caller's or the
// upstream's). With `after`, reading starts once that event is set.
template <class Read>
rt::Task<void> fill(MessagePipe& pipe, Read read, rt::Event* after = nullptr) {
  if (after != nullptr && !after->is_set()) co_await after->wait();
  while (co_await pipe.wait_for_space()) {
    grpc::ByteBuffer message;
    const bool ok = co_await read(message);
    pipe.push(ok, std::move(message));
    if (!ok) co_return;
  }
}

class ProxyCall {
 public:
  ProxyCall(rt::ServerCall& call, ProxyContext& ctx) : call_(call), ctx_(ctx) {}

  rt::Task<void> run();

 private:
  rt::Task<void> serve();
  // The fault boundary's answer: INTERNAL to the caller, logged once, reported as a fault.
  rt::Task<void> fail_alone(std::exception_ptr fault);
  TimeoutCause timeout_cause() const {
    return deadline_.source == CallDeadline::Source::kCaller ? TimeoutCause::kCaller
                                                             : TimeoutCause::kRoute;
  }
  rt::Task<void> forward(const config::Route& route, Upstream& upstream);
  rt::Task<void> serve_unary(const config::Route& route);
  // Reads the one request message, runs the route's policy and sends its reply.
  rt::Task<void> read_call_and_reply(const config::Route& route);
  // After a read from the caller found no more messages: true for a half-close, false for a
  // caller gone (see the definition).
  rt::Task<bool> caller_half_closed();
  // After the call's deadline: DEADLINE_EXCEEDED to the caller unless a status already left; the
  // report says what the caller got.
  rt::Task<void> finish_after_deadline();
  rt::Task<UpstreamReply> unary_policy(const config::Route& route, const UnaryRequest& request);
  // Starts the route's shadow copy of this call (sidecar/internal/shadow.h), detached from it.
  void mirror(const config::Route& route, const grpc::ByteBuffer& request);
  rt::Task<void> send_reply(UpstreamReply reply);
  void record_cancellation(CancelCause cause);
  // Attempts that ended cancelled with no cause recorded yet were cancelled for `cause`.
  void mark_cancelled_attempts(CancelCause cause);
  // After an upstream answered DEADLINE_EXCEEDED: records the timeout's cause; true when it was
  // the budget curfew propagated running out (the route's or the caller's deadline), false for
  // the upstream's own deadline or a retry's per-try timeout.
  bool classify_upstream_deadline();
  // The two writers of a plain route's forwarding (sidecar/internal/message_pipe.h): each sends
  // what its pipe's reader read, merging the last message with the end of the stream.
  rt::Task<void> write_upstream(MessagePipe& p, rt::ClientCall& up, rt::Event& started);
  rt::Task<void> write_caller(MessagePipe& p, rt::ClientCall& up);
  rt::Task<void> reply_status(grpc::Status status);
  grpc::Status deadline_status() const;
  // True when an upstream's DEADLINE_EXCEEDED is the budget curfew propagated running out.
  bool upstream_deadline_was_ours() const;
  void send_upstream_initial_metadata(rt::ClientCall& up);

  // True when the attempt whose answer the caller gets ended by its per-try timeout (the last
  // attempt may be a mirror's: look for the one that won).
  bool answered_by_per_try_timeout() const {
    for (const UpstreamAttempt& a : report_.attempts) {
      if (a.won) return a.per_try_timeout;
    }
    return false;
  }

  // Records how the upstream attempt ended and how fast a cancellation reached it.
  void record_attempt_end(const rt::ClientCall& up, rt::TaskState& task, CancelCause cause);

  rt::ServerCall& call_;
  ProxyContext& ctx_;
  const config::Route* route_ = nullptr;
  rt::TimePoint arrival_{};
  CallDeadline deadline_{};
  CallReport report_;
  bool initial_metadata_forwarded_ = false;
};

grpc::Status ProxyCall::deadline_status() const {
  return grpc::Status(
      grpc::StatusCode::DEADLINE_EXCEEDED,
      "curfew: deadline exceeded on route '" + route_->name + "' after " + deadline_.describe());
}

bool ProxyCall::upstream_deadline_was_ours() const {
  // An upstream computes the deadline it enforces from grpc-timeout and its own clock reading
  // when the headers arrived, which under load can be stale: its DEADLINE_EXCEEDED may come a
  // little before the deadline curfew sent (measured: up to ~30 ms early in a deadline storm).
  const rt::Duration slack =
      std::max<rt::Duration>(std::chrono::milliseconds(50), deadline_.budget / 10);
  return rt::Clock::now() + slack >= deadline_.upstream_deadline;
}

rt::Task<void> ProxyCall::reply_status(grpc::Status status) {
  report_.code = status.error_code();
  co_await call_.finish(status);
}

void ProxyCall::send_upstream_initial_metadata(rt::ClientCall& up) {
  if (initial_metadata_forwarded_) return;
  initial_metadata_forwarded_ = true;
  forward_initial_metadata(up.context().GetServerInitialMetadata(), call_.context());
}

rt::Task<void> ProxyCall::write_upstream(MessagePipe& p, rt::ClientCall& up, rt::Event& started) {
  MessagePipe::Closer closer{p};
  // A unary or client-streaming caller has usually sent its first message (and half-closed)
  // with its headers: give it two loop passes to land. If it did, the upstream call's headers
  // leave with it in one write (corked start); if not (a server-speaks-first stream), the
  // headers leave now.
  co_await rt::yield_now();
  co_await rt::yield_now();
  if (p.has_next()) {
    up.start_corked();
  } else {
    co_await up.start();  // a dead call shows up in the reads and the status
  }
  started.set();
  for (;;) {
    MessagePipe::Item item = co_await p.pop();
    const bool last = !item || p.end_is_next();
    // A cancelled client stream must never reach the upstream as a complete one. The caller's
    // done notification cancels this task (and, through it, the upstream call) right after.
    if (last && !co_await caller_half_closed()) co_return;
    if (!item) {
      co_await up.writes_done();
      co_return;
    }
    if (last) {  // the caller half-closed right after this message: both in one write
      co_await up.write_last(*item);
      co_return;
    }
    if (!co_await up.write(*item)) co_return;  // upstream finished: its status tells why
  }
}

rt::Task<bool> ProxyCall::caller_half_closed() {
  // The transport says at the read itself whether the stream ended with END_STREAM or a reset:
  // exact for a caller's cancellation, the case that matters. gRPC may also fail a read above
  // the transport (a message over the size limit, one that does not decompress): it then
  // cancels the call itself, which the transport's flag does not show. The done notification
  // of such a call follows at once; one loop pass lets it land.
  if (!call_.caller_half_closed()) co_return false;
  co_await rt::yield_now();
  co_return !call_.caller_cancelled();
}

rt::Task<void> ProxyCall::write_caller(MessagePipe& p, rt::ClientCall& up) {
  MessagePipe::Closer closer{p};
  MessagePipe::Item last;  // a message held back to go out with the status
  for (;;) {
    MessagePipe::Item item = co_await p.pop();
    if (!item) break;
    send_upstream_initial_metadata(up);
    if (!p.has_next()) co_await rt::yield_now();  // is the upstream's end right behind it?
    if (p.end_is_next()) {
      last = std::move(item);
      p.drop_end();
      break;
    }
    if (!co_await call_.write(*item)) {
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
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && classify_upstream_deadline()) {
    status = deadline_status();  // the budget curfew propagated ran out: say whose deadline
  }
  // Finishing the caller's call also ends a request reader still waiting for the caller. A
  // message held back goes out with the status, in one operation (one HTTP/2 write). The
  // deadline firing meanwhile does not cut it short (rt::ServerCall lets a send in flight end).
  if (last) {
    report_.code = status.error_code();
    co_await call_.write_and_finish(*last, status);
    co_return;
  }
  co_await reply_status(status);
}

rt::Task<void> ProxyCall::forward(const config::Route& route, Upstream& upstream) {
  rt::ClientCall up(upstream.next_stub(), call_.method(), *rt::Loop::current());
  forward_request_metadata(call_.context().client_metadata(), up.context());
  up.context().set_deadline(to_system_deadline(deadline_.upstream_deadline));
  report_.upstream = &upstream.name();
  report_.budget_at_upstream_start = deadline_.deadline - rt::Clock::now();
  report_.attempts.push_back(
      {.upstream = &upstream.name(), .role = UpstreamAttempt::Role::kPrimary});
  rt::TaskState& task = co_await rt::this_task{};

  try {
    MessagePipe requests, responses;
    rt::Event started;  // the upstream call's headers are on their way: its replies can be read
    rt::TaskGroup pumps;
    co_await pumps.run([](ProxyCall& self, rt::TaskGroup& g, rt::ClientCall& up,
                          MessagePipe& requests, MessagePipe& responses,
                          rt::Event& started) -> rt::Task<void> {
      g.spawn(fill(requests, [&call = self.call_](grpc::ByteBuffer& m) { return call.read(m); }),
              "read-caller");
      g.spawn(self.write_upstream(requests, up, started), "write-upstream");
      g.spawn(fill(
                  responses, [&up](grpc::ByteBuffer& m) { return up.read(m); }, &started),
              "read-upstream");
      co_await self.write_caller(responses, up);
    }(*this, pumps, up, requests, responses, started));
  } catch (const rt::CancelledError&) {
    const bool deadline = rt::Clock::now() >= deadline_.deadline;
    record_attempt_end(up, task, deadline ? CancelCause::kDeadline : CancelCause::kCaller);
    throw;
  }
}

void ProxyCall::record_attempt_end(const rt::ClientCall& up, rt::TaskState& task,
                                   CancelCause cause) {
  UpstreamAttempt& attempt = report_.attempts.back();
  if (attempt.won) return;  // it answered (the cancellation came after its status was out)
  attempt.code = grpc::StatusCode::CANCELLED;
  attempt.cancelled = cause;
  if (auto at = up.cancelled_at()) report_.cancel_propagation = *at - task.last_cancel_at();
}

rt::Task<void> ProxyCall::run() {
  rt::TaskState& task = co_await rt::this_task{};
  call_.cancel_task_on_disconnect(task);
  const config::Listener& listener = *ctx_.listener;
  report_.listener = &listener.name;
  arrival_ = rt::Clock::now();

  route_ = listener.route_for(call_.method());
  // The report names the route from the start: call_started and call_finished count the same
  // series however the call ends (a cancellation may end it before serve() runs).
  if (route_ != nullptr) report_.route = &route_->name;
  if (ctx_.observer) ctx_.observer->call_started(listener.name, report_.route);
  ReportOnExit deliver(report_, call_, ctx_.observer);

  // The per-call fault boundary: whatever goes wrong inside one call (other than its
  // cancellation) fails that call alone, never its worker's other calls.
  std::exception_ptr fault;
  try {
    co_await serve();
    co_return;
  } catch (const rt::CancelledError&) {
    throw;
  } catch (const rt::FatalError&) {
    throw;  // meant to stop the process's structure, not one call (runtime/errors.h)
  } catch (...) {
    fault = std::current_exception();
  }
  co_await fail_alone(fault);
}

rt::Task<void> ProxyCall::fail_alone(std::exception_ptr fault) {
  const std::string route = route_ ? route_->name : std::string("(none)");
  log(LogLevel::kError, "curfew: internal error in a call on listener '" + ctx_.listener->name +
                            "' route '" + route + "' (" + call_.method() +
                            "); that call alone fails: " + rt::describe_error(fault));
  report_.fault = true;
  if (!call_.finished()) {
    co_await call_.finish(grpc::Status(grpc::StatusCode::INTERNAL,
                                       "curfew: internal error on route '" + route + "'"));
  }
  report_.code = call_.sent_code().value_or(grpc::StatusCode::INTERNAL);
}

rt::Task<void> ProxyCall::serve() {
  const config::Listener& listener = *ctx_.listener;
  if (CallFaultHook hook = g_call_fault_hook.load(std::memory_order_relaxed)) hook(call_.method());
  if (route_ == nullptr) {
    co_await reply_status(grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        "curfew: no route for " + call_.method() + " on listener '" + listener.name + "'"));
    co_return;
  }
  deadline_ = decide_deadline(
      listener, *route_,
      caller_timeout_from(call_.context().deadline(), std::chrono::system_clock::now()), arrival_);
  if (deadline_.fast_fail) {
    report_.timeout = TimeoutCause::kBudget;
    co_await reply_status(
        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                     "curfew: route '" + route_->name + "' has " + deadline_.describe() +
                         " left, below its min_budget; the upstream was not called"));
    co_return;
  }
  const bool unary_policy = route_->fanout || route_->retry || route_->mirror;
  Upstream* upstream = unary_policy ? nullptr : ctx_.routing->upstreams->find(route_->upstream);

  // A cancellation that interrupts a pending step answers the caller properly.
  call_.set_interrupt_status([this] {
    if (rt::Clock::now() >= deadline_.deadline) return deadline_status();
    if (ctx_.shutting_down && ctx_.shutting_down->load(std::memory_order_relaxed)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "curfew: shutting down");
    }
    // The caller went away (its done notification cancelled the task): what it "got" is its own
    // cancellation, and the report must say so, not blame curfew.
    if (call_.caller_cancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "curfew: the caller cancelled");
    }
    // None of these: the call's own work failed.
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "curfew: internal error on route '" + route_->name + "'");
  });

  try {
    if (unary_policy) {
      co_await serve_unary(*route_);  // enforces the deadline itself
    } else {
      co_await rt::deadline(deadline_.deadline, forward(*route_, *upstream));
    }
    co_return;
  } catch (const rt::TimeoutError&) {
    // Handled below: no co_await inside a handler.
  } catch (const rt::CancelledError&) {
    const bool shutdown = ctx_.shutting_down && ctx_.shutting_down->load(std::memory_order_relaxed);
    record_cancellation(shutdown ? CancelCause::kShutdown : CancelCause::kCaller);
    throw;
  }
  co_await finish_after_deadline();
}

void ProxyCall::record_cancellation(CancelCause cause) {
  report_.cancel = cause;
  report_.code = grpc::StatusCode::CANCELLED;
  mark_cancelled_attempts(cause);
}

void ProxyCall::mark_cancelled_attempts(CancelCause cause) {
  for (UpstreamAttempt& a : report_.attempts) {
    if (a.code == grpc::StatusCode::CANCELLED && a.cancelled == CancelCause::kNone)
      a.cancelled = cause;
  }
}

bool ProxyCall::classify_upstream_deadline() {
  if (upstream_deadline_was_ours()) {
    report_.timeout = timeout_cause();
    return true;
  }
  report_.timeout = answered_by_per_try_timeout() ? TimeoutCause::kPerTry : TimeoutCause::kUpstream;
  return false;
}

rt::Task<void> ProxyCall::serve_unary(const config::Route& route) {
  bool timed_out = false;
  try {
    // The reply too is under the deadline: a caller that stops reading cannot hold the call past
    // it (a reply on its way when the deadline fires still goes out whole: rt::ServerCall).
    co_await rt::deadline(deadline_.deadline, read_call_and_reply(route));
  } catch (const rt::TimeoutError&) {
    timed_out = true;
  }
  if (timed_out) {
    mark_cancelled_attempts(CancelCause::kDeadline);
    co_await finish_after_deadline();
  }
}

rt::Task<void> ProxyCall::read_call_and_reply(const config::Route& route) {
  grpc::ByteBuffer request;
  if (!co_await call_.read(request)) {
    if (!co_await caller_half_closed()) {  // the caller went away before sending anything
      record_cancellation(CancelCause::kCaller);
      co_return;
    }
    co_await reply_status(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       "curfew: route '" + route.name +
                                           "' (fan-out, retry or mirror) serves unary calls; the "
                                           "caller half-closed without a request message"));
    co_return;
  }
  grpc::ByteBuffer extra;
  if (co_await call_.read(extra)) {
    co_await reply_status(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        "curfew: route '" + route.name +
            "' (fan-out, retry or mirror) serves unary calls only; got a second request message"));
    co_return;
  }
  if (!co_await caller_half_closed()) {
    // Reset after its message: a request the caller abandoned is never sent as a complete one.
    record_cancellation(CancelCause::kCaller);
    co_return;
  }
  if (route.mirror &&
      std::uniform_real_distribution<double>(0, 100)(ctx_.worker->random) < route.mirror->percent) {
    mirror(route, request);
  }
  UnaryRequest unary{call_.method(), request, call_.context().client_metadata()};
  co_await send_reply(co_await unary_policy(route, unary));
}

rt::Task<void> ProxyCall::finish_after_deadline() {
  if (!call_.finished()) {
    report_.timeout = timeout_cause();
    report_.cancel = CancelCause::kDeadline;
    report_.code = grpc::StatusCode::DEADLINE_EXCEEDED;
    co_await call_.finish(deadline_status());
    co_return;
  }
  // A status left before this point: sent when the deadline interrupted a read from the caller
  // (this deadline's status), or an answer on its way when the deadline came (rt::ServerCall lets
  // it finish). The report says what the caller got.
  report_.code = call_.sent_code().value_or(grpc::StatusCode::DEADLINE_EXCEEDED);
  if (report_.code != grpc::StatusCode::DEADLINE_EXCEEDED) {
    report_.timeout = TimeoutCause::kNone;
    report_.cancel = CancelCause::kNone;
  } else if (report_.timeout == TimeoutCause::kNone) {  // not the upstream's own, already set
    report_.timeout = timeout_cause();
    report_.cancel = CancelCause::kDeadline;
  }
}

rt::Task<UpstreamReply> ProxyCall::unary_policy(const config::Route& route,
                                                const UnaryRequest& request) {
  GrpcUnaryCaller caller(*ctx_.routing->upstreams);
  co_return co_await run_unary_policy(route, caller, request, deadline_.deadline,
                                      deadline_.upstream_deadline, *ctx_.worker, report_);
}

void ProxyCall::mirror(const config::Route& route, const grpc::ByteBuffer& request) {
  ShadowCopy copy{.routing = ctx_.routing,
                  .listener = &ctx_.listener->name,
                  .route = &route.name,
                  .upstream = &route.mirror->upstream,
                  .method = call_.method(),
                  .message = request,
                  .deadline = deadline_.upstream_deadline};
  for (const auto& [k, v] : call_.context().client_metadata()) {
    copy.metadata.emplace_back(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  report_.shadow_skipped = !start_shadow(*ctx_.worker, std::move(copy), ctx_.observer);
}

rt::Task<void> ProxyCall::send_reply(UpstreamReply reply) {
  report_.upstream_code = reply.status.error_code();
  for (auto& [k, v] : reply.initial_metadata) call_.context().AddInitialMetadata(k, v);
  for (auto& [k, v] : reply.trailing_metadata) call_.context().AddTrailingMetadata(k, v);
  grpc::Status status = reply.status;
  // A fan-out keeps its aggregated status (per-child details); a single call says whose deadline
  // it was.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && classify_upstream_deadline() &&
      !report_.fanout_mode) {
    status = deadline_status();
  }
  if (status.ok()) {  // the response and the status in one operation: one HTTP/2 write
    report_.code = status.error_code();
    co_await call_.write_and_finish(reply.response, status);
    co_return;
  }
  co_await reply_status(status);
}

}  // namespace

CallFaultHook call_fault_hook() noexcept {
  return g_call_fault_hook.load(std::memory_order_relaxed);
}

void set_call_fault_hook_for_testing(CallFaultHook hook) {
  g_call_fault_hook.store(hook, std::memory_order_relaxed);
}

rt::Task<void> proxy_call(rt::ServerCallPtr call, ProxyContext context) {
  ProxyCall proxy(*call, context);
  co_await proxy.run();
}

}  // namespace curfew::sidecar
