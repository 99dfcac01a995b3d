#include "sidecar/internal/h2_proxy_call.h"

#include <limits>
#include <string>

#include "runtime/errors.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "sidecar/internal/deadline_policy.h"
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

using grpc::StatusCode;

// Request and response fields each hop sets for itself; everything else the application sent
// (grpc-encoding and grpc-accept-encoding too: bodies pass through as they are) is forwarded.
bool regenerated_per_hop(std::string_view name, std::string_view value) {
  if (!wire::is_forwardable_header(name, value)) return true;
  return name == "te" || name == "content-type" || name == "user-agent" || name == "host" ||
         name == "content-length" || name == "grpc-timeout" || name == "grpc-status" ||
         name == "grpc-message";
}

h2::Headers forwardable(const h2::Headers& from) {
  h2::Headers out;
  for (const h2::Header& h : from)
    if (!regenerated_per_hop(h.name, h.value)) out.push_back(h);
  return out;
}

// Message boundaries only: the bytes themselves are forwarded as they are.
class BoundarySink final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader) override { return absl::OkStatus(); }
  absl::Status on_message_data(std::string_view) override { return absl::OkStatus(); }
  absl::Status on_message_end() override { return absl::OkStatus(); }
};

class H2ProxyCall {
 public:
  H2ProxyCall(h2::Stream& caller, H2CallContext& ctx) : caller_(caller), ctx_(ctx) {}
  rt::Task<void> run();

 private:
  rt::Task<void> serve();
  rt::Task<void> forward(const config::Route& route);
  rt::Task<void> pump_requests(h2::Stream& up, std::optional<std::string> first);
  // Checks a request chunk against max_message_bytes; false (request_refused_ set) if over.
  bool request_chunk_allowed(std::string_view chunk);
  rt::Task<void> relay_response(const config::Route& route, h2::Stream& up);
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
};

void H2ProxyCall::reply(StatusCode code, const std::string& message, h2::Headers extra) {
  if (replied_) return;
  replied_ = true;
  report_.code = code;
  h2::Headers h;
  if (!response_started_) {
    h.push_back({":status", "200"});
    h.push_back({"content-type", "application/grpc"});
  }
  h.push_back({"grpc-status", std::to_string(static_cast<int>(code))});
  if (!message.empty()) h.push_back({"grpc-message", wire::encode_grpc_message(message)});
  for (h2::Header& x : extra) h.push_back(std::move(x));
  if (response_started_ && !response_cut_at_boundary_ &&
      !response_messages_.at_message_boundary()) {
    // Part of a message went out and the rest never will: a status now would read as a broken
    // message. A reset says the call ended without one.
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
  // As proxy_call.cc: an upstream's clock reading may make its DEADLINE_EXCEEDED a little early.
  const rt::Duration slack =
      std::max<rt::Duration>(std::chrono::milliseconds(50), deadline_.budget / 10);
  return rt::Clock::now() + slack >= deadline_.upstream_deadline;
}

void H2ProxyCall::record_cancellation(CancelCause cause) {
  report_.cancel = cause;
  report_.code = StatusCode::CANCELLED;
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
  if (const std::string* path = h2::find_header(caller_.headers(), ":path")) method_ = *path;
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

rt::Task<void> H2ProxyCall::serve() {
  const config::Listener& listener = *ctx_.listener;
  const std::string* content_type = h2::find_header(caller_.headers(), "content-type");
  if (content_type == nullptr || !wire::is_grpc_content_type(*content_type)) {
    replied_ = true;
    report_.code = StatusCode::INTERNAL;
    caller_.send_trailers_only(
        {{":status", "415"},
         {"grpc-status", std::to_string(static_cast<int>(StatusCode::INTERNAL))},
         {"grpc-message", "curfew: not a gRPC request (content-type)"}});
    co_return;
  }
  if (route_ == nullptr) {
    reply(StatusCode::UNIMPLEMENTED,
          "curfew: no route for " + method_ + " on listener '" + listener.name + "'");
    co_return;
  }
  std::optional<rt::Duration> caller_timeout;
  if (const std::string* t = h2::find_header(caller_.headers(), "grpc-timeout")) {
    if (auto parsed = wire::parse_grpc_timeout(*t)) caller_timeout = *parsed;
  }
  deadline_ = decide_deadline(listener, *route_, caller_timeout, arrival_);
  if (deadline_.fast_fail) {
    report_.timeout = TimeoutCause::kBudget;
    reply(StatusCode::DEADLINE_EXCEEDED, "curfew: route '" + route_->name + "' has " +
                                             deadline_.describe() +
                                             " left, below its min_budget; the upstream was not "
                                             "called");
    co_return;
  }
  if (route_->fanout || route_->retry || route_->mirror) {
    reply(StatusCode::UNIMPLEMENTED, "curfew: route '" + route_->name +
                                         "' (fan-out, retry or mirror) is not served by the "
                                         "nghttp2 data path yet");
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
  if (replied_) {
    co_return;  // the upstream's status was already on its way
  }
  report_.code = StatusCode::OK;
  reply_deadline_exceeded();
}

rt::Task<void> H2ProxyCall::forward(const config::Route& route) {
  const config::Upstream* upstream = ctx_.routing->config.find_upstream(route.upstream);
  static thread_local unsigned next_endpoint = 0;  // loop thread: round robin over endpoints
  const std::string& endpoint = upstream->endpoints[next_endpoint++ % upstream->endpoints.size()];
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

  std::shared_ptr<h2::Session> session;
  std::string unavailable;
  try {
    session = co_await ctx_.pool->session(endpoint, upstream->connect_timeout);
  } catch (const UpstreamUnavailable& e) {
    unavailable = e.what();
  }
  std::shared_ptr<h2::Stream> up;
  if (session) {
    h2::Headers headers = {{":method", "POST"},
                           {":scheme", "http"},
                           {":path", method_},
                           {":authority", ctx_.pool->authority(endpoint)},
                           {"te", "trailers"},
                           {"content-type", *h2::find_header(caller_.headers(), "content-type")},
                           {"user-agent", "curfew/" CURFEW_VERSION},
                           {"grpc-timeout", wire::format_grpc_timeout(deadline_.upstream_deadline -
                                                                      rt::Clock::now())}};
    for (h2::Header& h : forwardable(caller_.headers())) headers.push_back(std::move(h));
    up = session->open_stream(headers);
    if (!up) unavailable = "upstream endpoint \"" + endpoint + "\" refused a new stream";
  }
  if (!up) {
    report_.attempts.back().code = StatusCode::UNAVAILABLE;
    report_.upstream_code = StatusCode::UNAVAILABLE;
    reply(StatusCode::UNAVAILABLE,
          "curfew: upstream '" + route.upstream + "' unavailable: " + unavailable);
    co_return;
  }
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
  } reset_on_exit{*up, co_await rt::this_task{}, report_};

  rt::TaskGroup pumps;
  co_await pumps.run([](H2ProxyCall& self, rt::TaskGroup& g, const config::Route& route,
                        h2::Stream& up, std::optional<std::string> first) -> rt::Task<void> {
    auto requests = g.spawn(self.pump_requests(up, std::move(first)), "requests");
    co_await self.relay_response(route, up);
    requests.cancel("the upstream answered");  // a caller still streaming is not read further
  }(*this, pumps, route, *up, std::move(first)));
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

rt::Task<void> H2ProxyCall::pump_requests(h2::Stream& up, std::optional<std::string> first) {
  if (first && !co_await up.write(std::move(*first))) co_return;
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
    if (!co_await up.write(std::move(*chunk)))
      co_return;  // the upstream is gone: its status says why
  }
  // Only a caller that ended with END_STREAM makes a complete request upstream; a reset one
  // cancels this task (h2::Session) and ResetOnExit resets the upstream stream.
  if (caller_.ended_cleanly()) up.end();
}

rt::Task<void> H2ProxyCall::relay_response(const config::Route& route, h2::Stream& up) {
  UpstreamAttempt& attempt = report_.attempts.back();  // no attempt is added after this one
  const bool got_headers = co_await up.wait_headers();
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
    reply(code, message);
  };
  if (!got_headers) {
    fail_from_stream();
    co_return;
  }
  const std::string* status = h2::find_header(up.headers(), ":status");
  const int http_status = status != nullptr ? std::atoi(status->c_str()) : 0;
  if (http_status != 200 && h2::find_header(up.headers(), "grpc-status") == nullptr) {
    const auto code = static_cast<StatusCode>(wire::grpc_code_from_http_status(http_status));
    attempt.code = code;
    attempt.won = true;
    report_.upstream_code = code;
    reply(code,
          "curfew: upstream '" + route.upstream + "' answered HTTP " + std::to_string(http_status));
    co_return;
  }
  const h2::Headers* trailers = &up.headers();  // a trailers-only response
  if (!up.headers_only()) {
    // The caller's response headers go with the first DATA (or the trailers): a first message
    // over the limit can still be answered trailers-only, and nothing is lost for the caller
    // (gRPC servers send their headers with the first message too).
    auto start_response = [&] {
      if (response_started_) return;
      h2::Headers response = {{":status", "200"}};
      const std::string* ct = h2::find_header(up.headers(), "content-type");
      response.push_back({"content-type", ct != nullptr ? *ct : "application/grpc"});
      for (h2::Header& h : forwardable(up.headers())) response.push_back(std::move(h));
      caller_.send_headers(response);
      response_started_ = true;
    };
    response_messages_ =
        wire::MessageReader(static_cast<uint32_t>(ctx_.listener->limits.max_message_bytes));
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
            if (!co_await caller_.write(chunk->substr(0, static_cast<size_t>(start)))) co_return;
          }
        }
        const bool too_large = st.code() == absl::StatusCode::kResourceExhausted;
        const StatusCode code = too_large ? StatusCode::RESOURCE_EXHAUSTED : StatusCode::INTERNAL;
        attempt.code = code;
        attempt.won = true;
        report_.upstream_code = code;
        reply(code,
              too_large
                  ? "curfew: a response message from upstream '" + route.upstream +
                        "' is over listener '" + ctx_.listener->name +
                        "''s limits.max_message_bytes (" + std::string(st.message()) + ")"
                  : "curfew: upstream '" + route.upstream + "' sent " + std::string(st.message()));
        co_return;
      }
      start_response();
      if (!co_await caller_.write(std::move(*chunk))) co_return;  // the caller is gone
    }
    if (!up.ended_cleanly()) {
      fail_from_stream();
      co_return;
    }
    start_response();  // headers and trailers both go out, even with no message between
    trailers = &up.trailers();
  }
  StatusCode code = StatusCode::UNKNOWN;
  std::string message;
  if (const std::string* s = h2::find_header(*trailers, "grpc-status")) {
    auto parsed = wire::parse_grpc_status(*s);
    code = parsed.ok() ? static_cast<StatusCode>(*parsed) : StatusCode::UNKNOWN;
  }
  if (const std::string* m = h2::find_header(*trailers, "grpc-message"))
    message = wire::decode_grpc_message(*m);
  attempt.code = code;
  attempt.won = true;
  report_.upstream_code = code;
  if (code == StatusCode::DEADLINE_EXCEEDED) {
    if (upstream_deadline_was_ours()) {
      report_.timeout = timeout_cause();
      message = deadline_message();
    } else {
      report_.timeout = TimeoutCause::kUpstream;
    }
  }
  reply(code, message, forwardable(*trailers));
}

}  // namespace

rt::Task<void> h2_proxy_call(std::shared_ptr<h2::Stream> caller, H2CallContext context) {
  H2ProxyCall call(*caller, context);
  co_await call.run();
}

}  // namespace curfew::sidecar
