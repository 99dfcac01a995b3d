#include "sidecar/internal/h2_proxy_call.h"

#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "runtime/errors.h"
#include "runtime/shield.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "sidecar/internal/deadline_policy.h"
#include "sidecar/internal/fanout.h"
#include "sidecar/internal/h2_unary_call.h"
#include "sidecar/internal/request_replay.h"
#include "sidecar/internal/retry.h"
#include "sidecar/internal/shadow.h"
#include "sidecar/internal/unary_policy.h"
#include "sidecar/internal/worker_state.h"
#include "sidecar/log.h"
#include "wire/content_type.h"
#include "wire/grpc_timeout.h"
#include "wire/h2_error.h"
#include "wire/message_reader.h"
#include "wire/metadata_rules.h"
#include "wire/percent_encoding.h"
#include "wire/status_mapping.h"

namespace curfew::sidecar {
namespace {

std::atomic<CallFaultHook> g_call_fault_hook{nullptr};

using grpc::StatusCode;

// Request and response fields each hop sets for itself; everything else the application sent
// (grpc-encoding and grpc-accept-encoding too: bodies pass through as they are) is forwarded.
bool regenerated_per_hop(std::string_view name, std::string_view value) {
  if (!wire::is_forwardable_header(name, value)) return true;
  return name == "te" || name == "content-type" || name == "user-agent" || name == "host" ||
         name == "content-length" || name == "grpc-timeout" || name == "grpc-status" ||
         name == "grpc-message";
}

void append_forwardable(const h2::Headers& from, h2::Headers& to) {
  for (const h2::Header& h : from)
    if (!regenerated_per_hop(h.name, h.value)) to.push_back(h);
}

h2::Headers forwardable(const h2::Headers& from) {
  h2::Headers out;
  out.reserve(0, from.byte_size());
  append_forwardable(from, out);
  return out;
}

// A message in flight when the call is interrupted goes out whole, if the caller takes it within
// this long (as rt::ServerCall's kStuckWriteLimit on the gRPC path): then the status follows.
constexpr rt::Duration kMessageInFlightLimit = std::chrono::seconds(1);
// A stream the upstream refused unprocessed is sent again once, as gRPC does (gRFC A6).
constexpr int kTransparentRetries = 1;

// Stops the reader where the message in progress ends (its stream_bytes() then says where).
class EndOfMessage final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader) override { return absl::OkStatus(); }
  absl::Status on_message_data(std::string_view) override { return absl::OkStatus(); }
  absl::Status on_message_end() override {
    ended = true;
    return absl::CancelledError("message complete");
  }
  bool ended = false;
};

// Message boundaries only: the bytes themselves are forwarded as they are.
class BoundarySink final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader) override { return absl::OkStatus(); }
  absl::Status on_message_data(std::string_view) override { return absl::OkStatus(); }
  absl::Status on_message_end() override { return absl::OkStatus(); }
};

// A unary request's one message, whole.
class CollectMessages final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader h) override {
    ++messages;
    compressed = h.compressed;
    return absl::OkStatus();
  }
  absl::Status on_message_data(std::string_view piece) override {
    if (messages == 1) payload.append(piece.data(), piece.size());
    return absl::OkStatus();
  }
  absl::Status on_message_end() override { return absl::OkStatus(); }
  int messages = 0;
  bool compressed = false;
  std::string payload;
};

std::string base64_unpadded(std::string_view bytes) {
  std::string out = absl::Base64Escape(absl::string_view(bytes.data(), bytes.size()));
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

class H2ProxyCall {
 public:
  H2ProxyCall(h2::Stream& caller, H2CallContext& ctx) : caller_(caller), ctx_(ctx) {}
  rt::Task<void> run();

 private:
  rt::Task<void> serve();
  // Answers the call when it never needs an upstream (not gRPC, no route, deadline budget below
  // min_budget) and returns true; otherwise sets deadline_ and returns false.
  bool answered_before_upstream();
  rt::Task<void> forward(const config::Route& route);
  // Fan-out, retry and mirror routes: the one request message buffered, the policy, the reply.
  rt::Task<void> serve_unary(const config::Route& route);
  rt::Task<void> read_call_and_reply(const config::Route& route);
  rt::Task<UpstreamReply> unary_policy(const config::Route& route, const UnaryRequest& request);
  rt::Task<void> send_reply(UpstreamReply reply);
  bool answered_by_per_try_timeout() const {
    for (const UpstreamAttempt& a : report_.attempts)
      if (a.won) return a.per_try_timeout;
    return false;
  }
  // Opens the call's stream to an endpoint of the route's upstream (lease_); null after
  // answering the caller UNAVAILABLE.
  rt::Task<std::shared_ptr<h2::Stream>> open_upstream(const config::Route& route);
  // What the endpoint's answer teaches the balancer: UNAVAILABLE is the endpoint's failure.
  void judge_endpoint(StatusCode code, const std::string& message);
  // One upstream stream: the request pumped up, the response relayed down. True when the
  // upstream refused the stream unprocessed and `may_retry`: nothing was answered yet.
  rt::Task<bool> exchange(const config::Route& route, h2::Stream& up,
                          std::optional<std::string> first, bool replaying, RequestReplay& replay,
                          bool may_retry);
  // The request when all of it is here already: queued on `up`, ended (no pump task).
  void queue_whole_request(h2::Stream& up, std::optional<std::string> first, RequestReplay& replay);
  rt::Task<void> pump_requests(h2::Stream& up, std::optional<std::string> first, bool replaying,
                               RequestReplay& replay);
  // Checks a request chunk against max_message_bytes; false (request_refused_ set) if over.
  bool request_chunk_allowed(std::string_view chunk);
  rt::Task<bool> relay_response(const config::Route& route, h2::Stream& up, RequestReplay& replay,
                                bool may_retry);
  // Plain functions for relay_response's synchronous steps (their temporaries stay out of its
  // frame, which lives as long as the call). An HTTP status other than 200 without grpc-status:
  // answered with the mapped code, true.
  bool answered_http_error(const config::Route& route, const h2::Headers& headers,
                           UpstreamAttempt& attempt);
  // Relays the upstream's status (grpc-status, grpc-message, forwardable trailers).
  void reply_upstream_status(const h2::Headers& trailers, UpstreamAttempt& attempt);
  // Forwards the rest of the response message in progress, up to its end.
  rt::Task<void> finish_message_in_flight(h2::Stream& up);
  // Answers the caller: trailers-only before any response headers, trailers after.
  void reply(StatusCode code, const std::string& message, h2::Headers extra = {});
  void reply_deadline_exceeded();
  bool upstream_deadline_was_ours() const;
  TimeoutCause timeout_cause() const {
    return deadline_.source == CallDeadline::Source::kCaller ? TimeoutCause::kCaller
                                                             : TimeoutCause::kRoute;
  }
  std::string deadline_message() const {
    return "curfew: deadline exceeded on route '" + route_->name + "' after " +
           deadline_.describe();
  }
  void record_cancellation(CancelCause cause);

  h2::Stream& caller_;  // owned by h2_proxy_call's frame for the whole call
  H2CallContext& ctx_;
  std::string method_;
  const config::Route* route_ = nullptr;
  rt::TimePoint arrival_{};
  CallDeadline deadline_{};
  CallReport report_;
  bool response_started_ = false;
  bool replied_ = false;
  // Where the response stream's messages begin and end: a status must not follow a message cut
  // short (the caller would report a broken message, not the status).
  wire::MessageReader response_messages_{std::numeric_limits<uint32_t>::max()};
  // Set when a request message is over the listener's max_message_bytes.
  std::string request_refused_;
  // The request stream's messages, checked against max_message_bytes as they pass.
  std::optional<wire::MessageReader> request_messages_;
  // The response was cut at a message boundary (a message over the limit was not forwarded):
  // the status may follow although the reader stopped mid-message.
  bool response_cut_at_boundary_ = false;
  // The endpoint the current upstream stream is on, and those this call tried (a transparent
  // retry goes to another one when the set has it).
  EndpointLease lease_;
  TriedEndpoints tried_;
};

void H2ProxyCall::reply(StatusCode code, const std::string& message, h2::Headers extra) {
  if (replied_) return;
  replied_ = true;
  report_.code = code;
  h2::Headers h;
  h.reserve(4, 64 + message.size() + extra.byte_size());
  if (!response_started_) {
    h.push_back({":status", "200"});
    h.push_back({"content-type", "application/grpc"});
  }
  h.push_back({"grpc-status", std::to_string(static_cast<int>(code))});
  if (!message.empty()) h.push_back({"grpc-message", wire::encode_grpc_message(message)});
  for (const h2::Header x : extra) h.push_back(x);
  if (response_started_ && !response_cut_at_boundary_ &&
      !response_messages_.at_message_boundary()) {
    // Part of a message went out and the rest never will: a status now would read as a broken
    // message. A reset says the call ended without one: the caller reads CANCELLED.
    report_.code = StatusCode::CANCELLED;
    caller_.reset(static_cast<uint32_t>(wire::H2Error::kCancel));
  } else if (response_started_) {
    caller_.end(std::move(h));
  } else {
    caller_.send_trailers_only(h);
  }
}

void H2ProxyCall::reply_deadline_exceeded() {
  report_.timeout = timeout_cause();
  report_.cancel = CancelCause::kDeadline;
  reply(StatusCode::DEADLINE_EXCEEDED, deadline_message());
}

bool H2ProxyCall::upstream_deadline_was_ours() const {
  // An upstream's clock reading may make its DEADLINE_EXCEEDED a little early.
  const rt::Duration slack =
      std::max<rt::Duration>(std::chrono::milliseconds(50), deadline_.budget / 10);
  return rt::Clock::now() + slack >= deadline_.upstream_deadline;
}

void H2ProxyCall::record_cancellation(CancelCause cause) {
  // A deadline that comes while the call unwinds after its status was queued (the upstream
  // answered as the deadline came) does not take that status back: it still goes out, and is
  // what is counted; the deadline only cuts what is still open upstream. A caller's reset does
  // take it back: the session cancels a call only while its end is unsent, and drops it.
  if (!replied_ || cause != CancelCause::kDeadline) {
    report_.cancel = cause;
    report_.code = StatusCode::CANCELLED;
  }
  for (UpstreamAttempt& a : report_.attempts) {
    if (!a.won && a.cancelled == CancelCause::kNone) {
      a.code = StatusCode::CANCELLED;
      a.cancelled = cause;
    }
  }
}

rt::Task<void> H2ProxyCall::run() {
  const config::Listener& listener = *ctx_.listener;
  report_.listener = &listener.name;
  arrival_ = rt::Clock::now();
  if (auto path = h2::find_header(caller_.headers(), ":path")) method_ = *path;
  route_ = listener.route_for(method_);
  if (route_ != nullptr) report_.route = &route_->name;
  if (ctx_.observer) ctx_.observer->call_started(listener.name, report_.route);
  // However the task ends, the report goes out once; a call that sent nothing was cancelled.
  struct Deliver {
    H2ProxyCall& self;
    ~Deliver() {
      if (!self.replied_ && self.report_.code == StatusCode::OK)
        self.report_.code = StatusCode::CANCELLED;
      self.report_.duration = rt::Clock::now() - self.arrival_;
      if (self.ctx_.observer) self.ctx_.observer->call_finished(self.report_);
    }
  } deliver{*this};
  std::exception_ptr fault;
  try {
    co_await serve();
    co_return;
  } catch (const rt::CancelledError&) {
    throw;
  } catch (const rt::FatalError&) {
    throw;
  } catch (...) {
    fault = std::current_exception();
  }
  const std::string route = route_ ? route_->name : std::string("(none)");
  log(LogLevel::kError, "curfew: internal error in a call on listener '" + listener.name +
                            "' route '" + route + "' (" + method_ +
                            "); that call alone fails: " + rt::describe_error(fault));
  report_.fault = true;
  reply(StatusCode::INTERNAL, "curfew: internal error on route '" + route + "'");
}

bool H2ProxyCall::answered_before_upstream() {
  const config::Listener& listener = *ctx_.listener;
  const auto content_type = h2::find_header(caller_.headers(), "content-type");
  if (!content_type || !wire::is_grpc_content_type(*content_type)) {
    replied_ = true;
    report_.code = StatusCode::INTERNAL;
    caller_.send_trailers_only(
        {{":status", "415"},
         {"grpc-status", std::to_string(static_cast<int>(StatusCode::INTERNAL))},
         {"grpc-message", "curfew: not a gRPC request (content-type)"}});
    return true;
  }
  if (route_ == nullptr) {
    reply(StatusCode::UNIMPLEMENTED,
          "curfew: no route for " + method_ + " on listener '" + listener.name + "'");
    return true;
  }
  std::optional<rt::Duration> caller_timeout;
  if (auto t = h2::find_header(caller_.headers(), "grpc-timeout")) {
    if (auto parsed = wire::parse_grpc_timeout(*t)) caller_timeout = *parsed;
  }
  deadline_ = decide_deadline(listener, *route_, caller_timeout, arrival_);
  if (deadline_.fast_fail) {
    report_.timeout = TimeoutCause::kBudget;
    reply(StatusCode::DEADLINE_EXCEEDED, "curfew: route '" + route_->name + "' has " +
                                             deadline_.describe() +
                                             " left, below its min_budget; the upstream was not "
                                             "called");
    return true;
  }
  return false;
}

rt::Task<void> H2ProxyCall::serve() {
  if (CallFaultHook hook = g_call_fault_hook.load(std::memory_order_relaxed)) hook(method_);
  // The checks before any upstream work are a plain function: their temporaries stay out of this
  // coroutine's frame, which lives as long as the call does (an idle stream's memory).
  if (answered_before_upstream()) co_return;
  if (route_->fanout || route_->retry || route_->hedge || route_->mirror) {
    try {
      co_await serve_unary(*route_);
    } catch (const rt::CancelledError&) {
      const bool shutdown =
          ctx_.shutting_down && ctx_.shutting_down->load(std::memory_order_relaxed);
      record_cancellation(shutdown ? CancelCause::kShutdown : CancelCause::kCaller);
      throw;
    }
    co_return;
  }
  try {
    co_await rt::deadline(deadline_.deadline, forward(*route_));
    co_return;
  } catch (const rt::TimeoutError&) {
    // Below: no co_await inside a handler.
  } catch (const rt::CancelledError&) {
    const bool shutdown = ctx_.shutting_down && ctx_.shutting_down->load(std::memory_order_relaxed);
    record_cancellation(shutdown ? CancelCause::kShutdown : CancelCause::kCaller);
    if (shutdown) reply(StatusCode::UNAVAILABLE, "curfew: shutting down");
    throw;
  }
  record_cancellation(CancelCause::kDeadline);
  if (replied_) co_return;  // the upstream's status was already on its way: it stands
  reply_deadline_exceeded();
}

rt::Task<void> H2ProxyCall::forward(const config::Route& route) {
  report_.upstream = &route.upstream;
  report_.budget_at_upstream_start = deadline_.deadline - rt::Clock::now();
  report_.attempts.push_back(
      {.upstream = &route.upstream, .role = UpstreamAttempt::Role::kPrimary});

  // The first request chunk is looked at before the upstream is called, so a message over
  // max_message_bytes never reaches it. A unary or client-streaming caller's first DATA came
  // with its HEADERS (already here) or within two loop passes; a caller that sends nothing first
  // (server-speaks-first streams) is not waited for longer.
  request_messages_.emplace(static_cast<uint32_t>(ctx_.listener->limits.max_message_bytes));
  for (int pass = 0; pass < 2 && !caller_.readable_now(); ++pass) co_await rt::yield_now();
  std::optional<std::string> first;
  if (caller_.readable_now()) {
    first = co_await caller_.read();
    if (first && !request_chunk_allowed(*first)) {
      report_.attempts.back().code = StatusCode::CANCELLED;
      report_.attempts.back().cancelled = CancelCause::kCaller;
      reply(StatusCode::RESOURCE_EXHAUSTED, request_refused_);
      co_return;
    }
  }

  RequestReplay replay;
  for (int attempt = 0;; ++attempt) {  // bounded: kTransparentRetries
    std::shared_ptr<h2::Stream> up = co_await open_upstream(route);
    if (!up) co_return;  // answered UNAVAILABLE
    const bool may_retry = attempt < kTransparentRetries;
    const bool refused = co_await exchange(route, *up, std::exchange(first, std::nullopt),
                                           attempt > 0, replay, may_retry);
    lease_ = EndpointLease();  // the stream is over: its endpoint has one call less
    if (!refused) co_return;
    ++report_.transparent_retries;
  }
}

rt::Task<std::shared_ptr<h2::Stream>> H2ProxyCall::open_upstream(const config::Route& route) {
  const config::Upstream* upstream = ctx_.routing->config.find_upstream(route.upstream);
  const UpstreamTls* tls = ctx_.routing->tls_for(route.upstream);  // in the call's Routing
  std::string unavailable;
  // Twice at most: a connection that stopped taking streams (GOAWAY) between the pick and
  // open_stream is replaced on the second turn (by another endpoint when the set has one).
  for (int turn = 0; turn < 2; ++turn) {
    try {
      lease_ = EndpointLease();  // the previous stream's endpoint is not in use any more
      if (!ctx_.pool->pick_connected(*upstream, tls, tried_, lease_))
        lease_ = co_await ctx_.pool->pick(*upstream, tls, tried_);
    } catch (const UpstreamUnavailable& e) {
      unavailable = e.why();  // the reply names the upstream
      break;
    }
    // One buffer for the whole block: what curfew sets, then what the caller sent.
    h2::Headers headers;
    headers.reserve(
        8, 128 + method_.size() + lease_.authority().size() + caller_.headers().byte_size());
    headers.push_back({":method", "POST"});
    headers.push_back({":scheme", tls != nullptr ? "https" : "http"});
    headers.push_back({":path", method_});
    headers.push_back({":authority", lease_.authority()});
    headers.push_back({"te", "trailers"});
    headers.push_back({"content-type", *h2::find_header(caller_.headers(), "content-type")});
    headers.push_back({"user-agent", "curfew/" CURFEW_VERSION});
    headers.push_back({"grpc-timeout",
                       wire::format_grpc_timeout(deadline_.upstream_deadline - rt::Clock::now())});
    append_forwardable(caller_.headers(), headers);
    if (auto up = lease_.session().open_stream(headers)) co_return up;
    unavailable = "endpoint " + lease_.endpoint().address_text + " refused a new stream";
  }
  report_.attempts.back().code = StatusCode::UNAVAILABLE;
  report_.upstream_code = StatusCode::UNAVAILABLE;
  reply(StatusCode::UNAVAILABLE,
        "curfew: upstream '" + route.upstream + "' unavailable: " + unavailable);
  co_return nullptr;
}

void H2ProxyCall::judge_endpoint(StatusCode code, const std::string& message) {
  if (code == StatusCode::UNAVAILABLE) {
    lease_.failed(message, rt::Clock::now());
  } else if (code != StatusCode::DEADLINE_EXCEEDED && code != StatusCode::CANCELLED) {
    // An answer shows the endpoint serving. A deadline or a cancellation says nothing either
    // way (an overloaded pod answering DEADLINE_EXCEEDED must not clear its failures).
    lease_.succeeded(rt::Clock::now());
  }
}

rt::Task<bool> H2ProxyCall::exchange(const config::Route& route, h2::Stream& up,
                                     std::optional<std::string> first, bool replaying,
                                     RequestReplay& replay, bool may_retry) {
  // However this ends (deadline, caller gone, done), an upstream stream still open is reset:
  // the upstream stops working for a caller that no longer waits.
  // A cancellation (the caller's, the deadline's) is measured from its request to this reset.
  struct ResetOnExit {
    h2::Stream& up;
    rt::TaskState& task;
    CallReport& report;
    ~ResetOnExit() {
      if (up.closed()) return;
      up.reset(static_cast<uint32_t>(wire::H2Error::kCancel));
      if (task.cancelling() > 0)
        report.cancel_propagation = rt::Clock::now() - task.last_cancel_at();
    }
  } reset_on_exit{up, co_await rt::this_task{}, report_};

  bool refused = false;
  // The whole request came before the upstream was called (a unary caller's usual case: its
  // END_STREAM came with its message): it is queued here, bounded (one DATA chunk), and no pump
  // task runs beside the relay. relay_response keeps a single call site: with a second one,
  // here, a frame that lives as long as the call grew by 0.8 KiB (the pumps' lambda, 336 ->
  // 1,136 B, measured with a uprobe on rt::detail::allocate_frame).
  const bool request_here = !replaying && caller_.body_read_to_end();
  if (request_here) queue_whole_request(up, std::exchange(first, std::nullopt), replay);
  rt::TaskGroup pumps;
  co_await pumps.run([](H2ProxyCall& self, rt::TaskGroup& g, const config::Route& route,
                        h2::Stream& up, std::optional<std::string> first, bool replaying,
                        RequestReplay& replay, bool may_retry, bool request_here,
                        bool& refused) -> rt::Task<void> {
    rt::TaskHandle<void> requests;
    if (!request_here)
      requests = g.spawn(self.pump_requests(up, std::move(first), replaying, replay), "requests");
    refused = co_await self.relay_response(route, up, replay, may_retry);
    // A caller still streaming is not read further; after a refusal, what the pump took from
    // the caller is in `replay` (recorded before each write), for the next stream.
    if (requests.valid())
      requests.cancel(refused ? "the upstream refused the stream" : "the upstream answered");
  }(*this, pumps, route, up, std::move(first), replaying, replay, may_retry, request_here,
                                       refused));
  co_return refused;
}

void H2ProxyCall::queue_whole_request(h2::Stream& up, std::optional<std::string> first,
                                      RequestReplay& replay) {
  if (first) {
    replay.record(*first);
    up.write_now(std::move(*first));
  }
  up.end();
}

bool H2ProxyCall::request_chunk_allowed(std::string_view chunk) {
  BoundarySink boundaries;
  absl::Status s = request_messages_->feed(chunk, boundaries);
  if (s.ok()) return true;
  request_refused_ = s.code() == absl::StatusCode::kResourceExhausted
                         ? "curfew: a request message is over listener '" + ctx_.listener->name +
                               "''s limits.max_message_bytes (" + std::string(s.message()) + ")"
                         : "curfew: " + std::string(s.message());
  return false;
}

rt::Task<void> H2ProxyCall::pump_requests(h2::Stream& up, std::optional<std::string> first,
                                          bool replaying, RequestReplay& replay) {
  if (replaying) {
    // A copy, not a reference held across the writes' waits: the relay may clear `replay`
    // meanwhile (the response began), and `replay` keeps its own chunks in case this stream is
    // refused too.
    std::vector<std::string> again = replay.chunks();
    for (std::string& chunk : again) {
      if (!co_await up.write(std::move(chunk))) co_return;
    }
  }
  if (first) {
    replay.record(*first);
    if (!co_await up.write(std::move(*first))) co_return;
  }
  // Bounded by the caller's stream: each turn takes one DATA chunk (or ends).
  for (;;) {
    std::optional<std::string> chunk = co_await caller_.read();
    if (!chunk) break;
    if (!request_chunk_allowed(*chunk)) {
      // Over max_message_bytes: none of that message goes upstream; the upstream stream is
      // reset and the relay answers RESOURCE_EXHAUSTED.
      up.reset(static_cast<uint32_t>(wire::H2Error::kCancel));
      co_return;
    }
    replay.record(*chunk);  // before the write's wait: a cancel there loses nothing
    if (!co_await up.write(std::move(*chunk)))
      co_return;  // the upstream is gone: its status says why
  }
  // Only a caller that ended with END_STREAM makes a complete request upstream; a reset one
  // cancels this task (h2::Session) and ResetOnExit resets the upstream stream.
  if (caller_.ended_cleanly()) up.end();
}

rt::Task<bool> H2ProxyCall::relay_response(const config::Route& route, h2::Stream& up,
                                           RequestReplay& replay, bool may_retry) {
  UpstreamAttempt& attempt = report_.attempts.back();  // no attempt is added after this one
  const bool got_headers = co_await up.wait_headers();
  // A stream's latency, for the balancer: to the response headers (a unary call's end).
  if (got_headers) lease_.first_response(rt::Clock::now());
  if (!got_headers && may_retry && replay.available() && request_refused_.empty() &&
      up.reset_by_peer() && up.reset_code() == static_cast<uint32_t>(wire::H2Error::kRefusedStream))
    co_return true;  // never processed upstream (RFC 9113 §8.7): the call goes on another stream
  replay.stop();
  auto fail_from_stream = [&]() {
    if (!request_refused_.empty()) {
      attempt.code = StatusCode::CANCELLED;
      attempt.cancelled = CancelCause::kCaller;
      reply(StatusCode::RESOURCE_EXHAUSTED, request_refused_);
      return;
    }
    StatusCode code = StatusCode::UNAVAILABLE;
    std::string message = "curfew: upstream '" + route.upstream + "' connection lost";
    if (up.reset_by_peer()) {
      code = static_cast<StatusCode>(wire::grpc_code_from_h2_error(up.reset_code()));
      message = "curfew: upstream '" + route.upstream + "' reset the stream (HTTP/2 error " +
                std::to_string(up.reset_code()) + ")";
    }
    attempt.code = code;
    attempt.won = true;
    report_.upstream_code = code;
    judge_endpoint(code, message);
    reply(code, message);
  };
  if (!got_headers) {
    fail_from_stream();
    co_return false;
  }
  if (answered_http_error(route, up.headers(), attempt)) co_return false;
  const h2::Headers* trailers = &up.headers();  // a trailers-only response
  if (!up.headers_only()) {
    // The caller's response headers go with the first DATA (or the trailers): a first message
    // over the limit can still be answered trailers-only, and nothing is lost for the caller
    // (gRPC servers send their headers with the first message too).
    auto start_response = [&] {
      if (response_started_) return;
      h2::Headers response;
      response.reserve(2, 48 + up.headers().byte_size());
      response.push_back({":status", "200"});
      const auto ct = h2::find_header(up.headers(), "content-type");
      response.push_back({"content-type", ct ? *ct : "application/grpc"});
      append_forwardable(up.headers(), response);
      caller_.send_headers(response);
      response_started_ = true;
      // Neither header block is read again (the request cannot be sent again once a response
      // began): a long-lived stream (a watch, a bidi session) does not keep them (~0.8 KiB).
      up.release_headers();
      caller_.release_headers();
    };
    response_messages_ =
        wire::MessageReader(static_cast<uint32_t>(ctx_.listener->limits.max_message_bytes));
    std::exception_ptr interrupted;
    try {
      for (;;) {  // bounded by the upstream's stream: one DATA chunk per turn
        std::optional<std::string> chunk = co_await up.read();
        if (!chunk) break;
        BoundarySink boundaries;
        const uint64_t before = response_messages_.stream_bytes();
        if (absl::Status st = response_messages_.feed(*chunk, boundaries); !st.ok()) {
          // The failing message's 5-byte prefix ends where the reader stopped. If it began in this
          // chunk, what precedes it is whole messages: they go out, then the status.
          const auto consumed = static_cast<int64_t>(response_messages_.stream_bytes() - before);
          const int64_t start = consumed - static_cast<int64_t>(wire::kMessagePrefixBytes);
          if (start >= 0) {
            response_cut_at_boundary_ = true;
            if (start > 0) {
              start_response();
              if (!co_await caller_.write(chunk->substr(0, static_cast<size_t>(start))))
                co_return false;
            }
          }
          const bool too_large = st.code() == absl::StatusCode::kResourceExhausted;
          const StatusCode code = too_large ? StatusCode::RESOURCE_EXHAUSTED : StatusCode::INTERNAL;
          attempt.code = code;
          attempt.won = true;
          report_.upstream_code = code;
          reply(code, too_large
                          ? "curfew: a response message from upstream '" + route.upstream +
                                "' is over listener '" + ctx_.listener->name +
                                "''s limits.max_message_bytes (" + std::string(st.message()) + ")"
                          : "curfew: upstream '" + route.upstream + "' sent " +
                                std::string(st.message()));
          co_return false;
        }
        start_response();
        if (!co_await caller_.write(std::move(*chunk))) co_return false;  // the caller is gone
      }

    } catch (const rt::CancelledError&) {
      // Interrupted (deadline, shutdown) with a message partly sent: it goes out whole first.
      if (!response_started_ || response_messages_.at_message_boundary()) throw;
      interrupted = std::current_exception();
    }
    if (interrupted) {
      try {
        co_await rt::shield(finish_message_in_flight(up), kMessageInFlightLimit,
                            "message in flight");
      } catch (const rt::TimeoutError&) {
        // The caller did not take it in time: reply() resets the stream instead of a status.
      }
      std::rethrow_exception(interrupted);
    }
    if (!up.ended_cleanly()) {
      fail_from_stream();
      co_return false;
    }
    start_response();  // headers and trailers both go out, even with no message between
    trailers = &up.trailers();
  }
  reply_upstream_status(*trailers, attempt);
  co_return false;
}

bool H2ProxyCall::answered_http_error(const config::Route& route, const h2::Headers& headers,
                                      UpstreamAttempt& attempt) {
  const int http_status = wire::http_status_of(h2::find_header(headers, ":status"));
  if (http_status == 200 || h2::find_header(headers, "grpc-status")) return false;
  const auto code = static_cast<StatusCode>(wire::grpc_code_from_http_status(http_status));
  attempt.code = code;
  attempt.won = true;
  report_.upstream_code = code;
  judge_endpoint(code, "answered HTTP " + std::to_string(http_status));
  reply(code,
        "curfew: upstream '" + route.upstream + "' answered HTTP " + std::to_string(http_status));
  return true;
}

void H2ProxyCall::reply_upstream_status(const h2::Headers& trailers, UpstreamAttempt& attempt) {
  StatusCode code = StatusCode::UNKNOWN;
  std::string message;
  if (auto s = h2::find_header(trailers, "grpc-status")) {
    auto parsed = wire::parse_grpc_status(*s);
    code = parsed.ok() ? static_cast<StatusCode>(*parsed) : StatusCode::UNKNOWN;
  }
  if (auto m = h2::find_header(trailers, "grpc-message")) message = wire::decode_grpc_message(*m);
  attempt.code = code;
  attempt.won = true;
  report_.upstream_code = code;
  judge_endpoint(code, message);
  if (code == StatusCode::DEADLINE_EXCEEDED) {
    if (upstream_deadline_was_ours()) {
      report_.timeout = timeout_cause();
      message = deadline_message();
    } else {
      report_.timeout = TimeoutCause::kUpstream;
    }
  }
  reply(code, message, forwardable(trailers));
}

rt::Task<void> H2ProxyCall::finish_message_in_flight(h2::Stream& up) {
  for (int turn = 0; turn < 1'000'000 && !response_messages_.at_message_boundary(); ++turn) {
    std::optional<std::string> chunk = co_await up.read();
    if (!chunk) co_return;
    EndOfMessage end;
    const uint64_t before = response_messages_.stream_bytes();
    (void)response_messages_.feed(*chunk, end);
    if (end.ended) {
      response_cut_at_boundary_ = true;  // the reader stopped exactly there
      const auto upto = static_cast<size_t>(response_messages_.stream_bytes() - before);
      co_await caller_.write(chunk->substr(0, upto));
      co_return;
    }
    if (!co_await caller_.write(std::move(*chunk))) co_return;
  }
}

rt::Task<void> H2ProxyCall::serve_unary(const config::Route& route) {
  bool timed_out = false;
  try {
    co_await rt::deadline(deadline_.deadline, read_call_and_reply(route));
  } catch (const rt::TimeoutError&) {
    timed_out = true;
  }
  if (!timed_out) co_return;
  for (UpstreamAttempt& a : report_.attempts) {
    if (!a.won && a.cancelled == CancelCause::kNone && a.code == StatusCode::CANCELLED)
      a.cancelled = CancelCause::kDeadline;
  }
  if (!replied_) {
    reply_deadline_exceeded();
  } else if (report_.code != StatusCode::DEADLINE_EXCEEDED) {
    report_.timeout = TimeoutCause::kNone;  // an answer was on its way when the deadline came
  }
}

rt::Task<void> H2ProxyCall::read_call_and_reply(const config::Route& route) {
  wire::MessageReader reader(static_cast<uint32_t>(ctx_.listener->limits.max_message_bytes));
  CollectMessages collect;
  for (;;) {  // bounded by the caller's stream: one DATA chunk per turn
    std::optional<std::string> chunk = co_await caller_.read();
    if (!chunk) break;
    if (absl::Status s = reader.feed(*chunk, collect); !s.ok()) {
      reply(s.code() == absl::StatusCode::kResourceExhausted ? StatusCode::RESOURCE_EXHAUSTED
                                                             : StatusCode::INTERNAL,
            "curfew: " + std::string(s.message()));
      co_return;
    }
    if (collect.messages > 1) {
      reply(StatusCode::INVALID_ARGUMENT,
            "curfew: route '" + route.name +
                "' (fan-out, retry or mirror) serves unary calls only; got a second request "
                "message");
      co_return;
    }
  }
  if (!caller_.ended_cleanly()) {
    // Reset before the end of its request: an abandoned request is never sent as complete.
    record_cancellation(CancelCause::kCaller);
    co_return;
  }
  if (collect.messages == 0 || !reader.at_message_boundary()) {
    reply(StatusCode::INVALID_ARGUMENT,
          "curfew: route '" + route.name +
              "' (fan-out, retry or mirror) serves unary calls; the caller half-closed without a "
              "request message");
    co_return;
  }
  // The caller's metadata as the policies take it (values as they travel). `metadata` and
  // `collect` live in this frame until the policy is done with the request.
  Metadata metadata;
  for (const h2::Header& h : caller_.headers()) {
    if (!wire::is_pseudo_header(h.name)) metadata.emplace_back(h.name, h.value);
  }
  const UnaryRequest request{method_, collect.payload, metadata, collect.compressed};
  if (route.mirror &&
      std::uniform_real_distribution<double>(0, 100)(ctx_.worker->random) < route.mirror->percent) {
    ShadowCopy copy{.routing = ctx_.routing,
                    .listener = &ctx_.listener->name,
                    .route = &route.name,
                    .upstream = &route.mirror->upstream,
                    .method = method_,
                    .message = collect.payload,
                    .deadline = deadline_.upstream_deadline,
                    .compressed = collect.compressed,
                    .pool = ctx_.pool};
    copy.metadata = metadata;
    report_.shadow_skipped = !start_shadow(*ctx_.worker, std::move(copy), ctx_.observer);
  }
  co_await send_reply(co_await unary_policy(route, request));
}

rt::Task<UpstreamReply> H2ProxyCall::unary_policy(const config::Route& route,
                                                  const UnaryRequest& request) {
  // Timeouts count against an endpoint only when a deadline shorter than the caller's ran out.
  H2UnaryCaller caller(*ctx_.pool, *ctx_.routing,
                       deadline_.source == CallDeadline::Source::kCaller
                           ? deadline_.upstream_deadline
                           : rt::TimePoint::max());
  co_return co_await run_unary_policy(route, caller, request, deadline_.deadline,
                                      deadline_.upstream_deadline, *ctx_.worker, report_);
}

rt::Task<void> H2ProxyCall::send_reply(UpstreamReply r) {
  report_.upstream_code = r.status.code();
  StatusCode code = r.status.code();
  std::string message = r.status.message();
  if (code == StatusCode::DEADLINE_EXCEEDED) {
    if (upstream_deadline_was_ours()) {
      report_.timeout = timeout_cause();
      // A fan-out keeps its aggregated status (per-child details); a single call says whose
      // deadline it was.
      if (!report_.fanout_mode) message = deadline_message();
    } else {
      report_.timeout =
          answered_by_per_try_timeout() ? TimeoutCause::kPerTry : TimeoutCause::kUpstream;
    }
  }
  h2::Headers trailers;
  for (auto& [k, v] : r.trailing_metadata) trailers.push_back({k, v});
  if (!r.status.details().empty())
    trailers.push_back({"grpc-status-details-bin", base64_unpadded(r.status.details())});
  if (code == StatusCode::OK || !r.initial_metadata.empty()) {
    h2::Headers headers = {{":status", "200"}, {"content-type", "application/grpc"}};
    for (auto& [k, v] : r.initial_metadata) headers.push_back({k, v});
    caller_.send_headers(headers);
    response_started_ = true;
  }
  if (code == StatusCode::OK) {
    std::string body;
    wire::append_message_prefix(body, false, static_cast<uint32_t>(r.response.size()));
    body += r.response;
    // The whole message (response_messages_ never sees it, so a deadline meanwhile still sends
    // a status after it), then the trailers.
    if (!co_await caller_.write(std::move(body))) co_return;  // the caller is gone
  }
  reply(code, message, std::move(trailers));
}

}  // namespace

rt::Task<void> h2_proxy_call(std::shared_ptr<h2::Stream> caller, H2CallContext context) {
  H2ProxyCall call(*caller, context);
  co_await call.run();
}

void set_call_fault_hook_for_testing(CallFaultHook hook) {
  g_call_fault_hook.store(hook, std::memory_order_relaxed);
}

}  // namespace curfew::sidecar
