#include "sidecar/internal/fanout.h"

#include <vector>

#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/task_group.h"
#include "sidecar/internal/fanout_status.h"

namespace curfew::sidecar {
namespace {

using Mode = config::Fanout::Mode;

// "all", "quorum", "hedge": the mode's name in the configuration and in the metrics.
const char* mode_name(Mode mode) { return label_of(kFanoutModeLabels, mode, "?"); }

// The state the children of one fan-out share, and the rule that decides the outcome.
class FanOut {
 public:
  FanOut(const config::Route& route, const config::Fanout& fanout, UnaryCaller& upstreams,
         const UnaryRequest& request, rt::TimePoint deadline, CallReport& report)
      : route_(route),
        fanout_(fanout),
        upstreams_(upstreams),
        request_(request),
        deadline_(deadline),
        report_(report),
        children_(fanout_.upstreams.size()) {
    for (size_t i = 0; i < children_.size(); ++i)
      children_[i].result.upstream = fanout_.upstreams[i];
    needed_ = fanout_.mode == Mode::kHedge ? 1 : fanout_.quorum;
  }

  rt::Task<UpstreamReply> run();

 private:
  struct Child {
    ChildResult result;
    std::optional<UpstreamReply> reply;
    size_t attempt = 0;  // index in report_.attempts
    rt::TaskHandle<void> handle;
  };

  rt::Task<void> start_children(rt::TaskGroup& group);
  rt::Task<void> child(size_t i);
  void on_child_finished(size_t i);
  void decide(bool success, std::optional<size_t> returned, CancelCause surplus_cause,
              const char* reason);
  UpstreamReply result();

  const config::Route& route_;
  const config::Fanout& fanout_;
  UnaryCaller& upstreams_;
  const UnaryRequest& request_;
  rt::TimePoint deadline_;
  CallReport& report_;
  std::vector<Child> children_;
  int needed_ = 1;
  int started_ = 0, succeeded_ = 0, failed_ = 0, finished_ = 0;
  bool decided_ = false;
  bool success_ = false;
  std::optional<size_t> returned_;  // the child whose reply (or status) is the answer
  rt::Event progress_;              // a child finished (wakes the hedging loop)
};

rt::Task<void> FanOut::child(size_t i) {
  Child& c = children_[i];
  try {
    UpstreamReply reply = co_await upstreams_.call(c.result.upstream, request_, deadline_);
    c.result.status = reply.status;
    c.result.outcome =
        reply.status.ok() ? ChildResult::Outcome::kSucceeded : ChildResult::Outcome::kFailed;
    report_.attempts[c.attempt].code = reply.status.code();
    c.reply = std::move(reply);
  } catch (const rt::CancelledError& e) {
    c.result.outcome = ChildResult::Outcome::kCancelled;
    c.result.cancel_reason = e.reason();
    // decide() set the cause for surplus children; otherwise the caller's call is being
    // cancelled and ProxyCall records why.
    report_.attempts[c.attempt].code = grpc::StatusCode::CANCELLED;
    throw;
  }
  on_child_finished(i);
}

void FanOut::on_child_finished(size_t i) {
  Child& c = children_[i];
  c.result.finish_order = finished_++;
  if (decided_) return;  // finished although already surplus
  const grpc::StatusCode code = c.result.status.code();
  if (c.result.outcome == ChildResult::Outcome::kSucceeded) {
    ++succeeded_;
    if (succeeded_ >= needed_) {
      decide(true, i,
             fanout_.mode == Mode::kHedge ? CancelCause::kHedgeLost : CancelCause::kSibling,
             fanout_.mode == Mode::kHedge ? "hedge lost" : "quorum reached");
    }
  } else {
    ++failed_;
    const int n = static_cast<int>(children_.size());
    if (fanout_.mode == Mode::kHedge) {
      if (!hedge_retryable(code)) {
        decide(false, i, CancelCause::kSibling, "hedging stopped by a non-retryable failure");
      } else if (failed_ == n) {
        decide(false, std::nullopt, CancelCause::kSibling, "every hedge failed");
      }
    } else if (failed_ > n - needed_) {
      decide(false, std::nullopt, CancelCause::kSibling, "sibling failed");
    }
  }
  progress_.set();
}

void FanOut::decide(bool success, std::optional<size_t> returned, CancelCause surplus_cause,
                    const char* reason) {
  decided_ = true;
  success_ = success;
  returned_ = returned;
  for (Child& other : children_) {
    // Not started, finished, or finishing right now (the child whose result decided).
    if (!other.handle.valid() || other.handle.done() || other.result.finish_order >= 0) continue;
    report_.attempts[other.attempt].cancelled = surplus_cause;
    other.handle.cancel(reason);
  }
}

rt::Task<void> FanOut::start_children(rt::TaskGroup& group) {
  for (size_t i = 0; i < children_.size() && !decided_; ++i) {
    Child& c = children_[i];
    c.attempt = report_.attempts.size();
    report_.attempts.push_back(
        {.upstream = &fanout_.upstreams[i],  // lives in the call's Routing, unlike this object
         .role = fanout_.mode == Mode::kHedge ? UpstreamAttempt::Role::kHedge
                                              : UpstreamAttempt::Role::kFanoutChild});
    c.handle = group.spawn(child(i), c.result.upstream);
    ++started_;
    if (fanout_.mode != Mode::kHedge || i + 1 == children_.size()) continue;
    // Hedging: wait for the delay, or less if a child finished (a retryable failure starts the
    // next hedge at once; a success or a final failure ends the loop).
    const rt::TimePoint next = rt::Clock::now() + fanout_.delay;
    progress_.clear();
    while (!decided_) {
      if (failed_ == started_) break;  // every hedge so far failed retryably: next one now
      if (!co_await progress_.wait_until(next)) break;  // the delay passed
      progress_.clear();
    }
  }
}

UpstreamReply FanOut::result() {
  std::vector<ChildResult> results;
  for (const Child& c : children_) results.push_back(c.result);
  if (!success_) {
    report_.fanout_failed = true;
    if (returned_ && fanout_.mode == Mode::kHedge) {
      // A non-retryable failure: the upstream's own answer, as it is.
      report_.attempts[children_[*returned_].attempt].won = true;
      return std::move(*children_[*returned_].reply);
    }
    UpstreamReply failure;
    failure.status = aggregate_failure(route_, mode_name(fanout_.mode), results);
    return failure;
  }
  if (fanout_.merge == config::Fanout::kFirst || fanout_.mode == Mode::kHedge) {
    Child& winner = children_[*returned_];
    report_.attempts[winner.attempt].won = true;
    return std::move(*winner.reply);
  }
  // concat, in configured order, of every child that succeeded before the decision.
  UpstreamReply merged;
  bool first = true;
  for (Child& c : children_) {
    if (c.result.outcome != ChildResult::Outcome::kSucceeded || !c.reply) continue;
    report_.attempts[c.attempt].won = true;
    if (first) {
      merged.status = c.reply->status;
      merged.initial_metadata = c.reply->initial_metadata;
      merged.trailing_metadata = c.reply->trailing_metadata;
      first = false;
    }
    merged.response += c.reply->response;
  }
  return merged;
}

rt::Task<UpstreamReply> FanOut::run() {
  report_.fanout_mode = fanout_.mode;
  rt::TaskGroup group;
  co_await group.run(start_children(group));
  if (!decided_) {
    // Every child finished without the rule deciding (cannot happen with a valid config); treat
    // as failure rather than guess.
    decide(false, std::nullopt, CancelCause::kSibling, "undecided");
  }
  co_return result();
}

}  // namespace

bool hedge_retryable(grpc::StatusCode code) noexcept {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::ABORTED;
}

rt::Task<UpstreamReply> fan_out(const config::Route& route, UnaryCaller& upstreams,
                                const UnaryRequest& request, rt::TimePoint upstream_deadline,
                                CallReport& report) {
  FanOut fan_out(route, *route.fanout, upstreams, request, upstream_deadline, report);
  co_return co_await fan_out.run();
}

rt::Task<UpstreamReply> fan_out(const config::Route& route, const config::Fanout& fanout,
                                UnaryCaller& upstreams, const UnaryRequest& request,
                                rt::TimePoint upstream_deadline, CallReport& report) {
  FanOut fan_out(route, fanout, upstreams, request, upstream_deadline, report);
  co_return co_await fan_out.run();
}

}  // namespace curfew::sidecar
