// CallMetrics on synthetic CallReports: what each report field turns into, the label sets, the
// histograms, and exact totals under concurrent reporting threads and scrapes (run under TSan).
#include "metrics/call_metrics.h"

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "exposition.h"
#include "metrics/metric_families.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using metrics::CallMetrics;
using sidecar::CallReport;
using sidecar::CancelCause;
using sidecar::TimeoutCause;
using sidecar::UpstreamAttempt;
using Role = UpstreamAttempt::Role;
using Code = grpc::StatusCode;

// Names the reports point into (the proxy's point into its Routing).
const std::string kInbound = "inbound";
const std::string kOutbound = "outbound";
const std::string kSearch = "search";
const std::string kPricing = "pricing";
const std::string kInventory = "inventory";
const std::string kA = "a", kB = "b", kC = "c", kCanary = "canary";

CallReport report(const std::string* route, Code code = Code::OK,
                  rt::Duration duration = std::chrono::milliseconds(3)) {
  CallReport r;
  r.listener = &kInbound;
  r.route = route;
  r.code = code;
  r.duration = duration;
  return r;
}

UpstreamAttempt attempt(const std::string& upstream, Role role, Code code = Code::OK,
                        CancelCause cancelled = CancelCause::kNone, bool won = false) {
  UpstreamAttempt a;
  a.upstream = &upstream;
  a.role = role;
  a.code = code;
  a.cancelled = cancelled;
  a.won = won;
  return a;
}

void run(CallMetrics& m, const CallReport& r) {
  m.call_started(*r.listener, r.route);
  m.call_finished(r);
}

Exposition scrape(const CallMetrics& m) { return Exposition(expose(m)); }

Labels with_label(Labels labels, const std::string& key, const std::string& value) {
  labels[key] = value;
  return labels;
}

// The label names of one series, in order.
std::vector<std::string> label_names(const prometheus::ClientMetric& series) {
  std::vector<std::string> names;
  for (const auto& l : series.label) names.push_back(l.name);
  return names;
}

TEST(CallMetrics, FamiliesAreTheContract) {
  // Collect() returns exactly the families declared in metrics/metric_families.h, in the declared
  // order, with the declared name, help and type; every series carries the declared labels.
  CallMetrics m;
  // A hedge route with a failed, a retried, a mirrored and a rejected call: every family has a
  // series.
  CallReport hedge = report(&kSearch, Code::UNAVAILABLE);
  hedge.fanout_mode = sidecar::FanoutMode::kHedge;
  hedge.fanout_failed = true;
  hedge.budget_at_upstream_start = 10ms;
  hedge.retries = 1;
  hedge.attempts.push_back(attempt(kA, Role::kHedge, Code::UNAVAILABLE));
  hedge.attempts.push_back(attempt(kB, Role::kHedge, Code::UNAVAILABLE));
  run(m, hedge);
  CallReport rejected = report(&kSearch, Code::RESOURCE_EXHAUSTED);
  rejected.rejected = sidecar::Rejection::kRouteLimit;
  run(m, rejected);

  const std::vector<prometheus::MetricFamily> families = m.Collect();
  ASSERT_EQ(families.size(), std::size(metrics::kCallFamilies));
  std::set<std::string> names;
  for (size_t i = 0; i < families.size(); ++i) {
    const metrics::MetricFamilyDecl& declared = *metrics::kCallFamilies[i];
    const prometheus::MetricFamily& f = families[i];
    EXPECT_EQ(f.name, declared.name);
    EXPECT_EQ(f.help, declared.help) << f.name;
    EXPECT_EQ(f.type, declared.type) << f.name;
    const std::vector<std::string> declared_labels(declared.labels.begin(), declared.labels.end());
    EXPECT_FALSE(f.metric.empty()) << f.name << " has no series";
    for (const auto& series : f.metric) EXPECT_EQ(label_names(series), declared_labels) << f.name;
    names.insert(f.name);

    EXPECT_FALSE(f.help.empty()) << f.name;
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(f.name.ends_with("_total")) << f.name;
    } else {
      EXPECT_FALSE(f.name.ends_with("_total")) << f.name;
    }
    if (f.type == prometheus::MetricType::Histogram) {
      EXPECT_TRUE(f.name.ends_with("_seconds")) << f.name;
    }
  }
  EXPECT_EQ(names.size(), families.size()) << "family names are unique";
}

TEST(CallMetrics, EnumLabelValuesComeFromTheOneTablePerEnum) {
  // Each cause, limit and mode is exposed under the label its table (sidecar/call_report.h) gives.
  CallMetrics m;
  for (const auto& [cause, label] : sidecar::kTimeoutCauseLabels) {
    CallReport r = report(&kSearch, Code::DEADLINE_EXCEEDED);
    r.timeout = cause;
    run(m, r);
  }
  for (const auto& [mode, label] : sidecar::kFanoutModeLabels) {
    CallReport r = report(&kPricing, Code::UNAVAILABLE);
    r.fanout_mode = mode;
    r.fanout_failed = true;
    run(m, r);
  }
  for (const auto& [limit, label] : sidecar::kRejectionLabels) {
    CallReport r = report(&kInventory, Code::RESOURCE_EXHAUSTED);
    r.rejected = limit;
    run(m, r);
  }
  Exposition e = scrape(m);
  for (const auto& [cause, label] : sidecar::kTimeoutCauseLabels) {
    EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "search"}, {"cause", label}}), 1)
        << label;
  }
  for (const auto& [cause, label] : sidecar::kCancelCauseLabels) {
    EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", label}}), 0)
        << label;
  }
  for (const auto& [mode, label] : sidecar::kFanoutModeLabels) {
    EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "pricing"}, {"mode", label}}), 1)
        << label;
  }
  for (const auto& [limit, label] : sidecar::kRejectionLabels) {
    EXPECT_EQ(e.value("curfew_rejected_total",
                      {{"listener", "inbound"}, {"route", "inventory"}, {"limit", label}}),
              1)
        << label;
  }
  EXPECT_STREQ(sidecar::label_of(sidecar::kCancelCauseLabels, CancelCause::kHedgeLost),
               "hedge_lost");
  EXPECT_EQ(sidecar::label_of(sidecar::kCancelCauseLabels, CancelCause::kNone), nullptr);
}

TEST(CallMetrics, NothingReportedExposesNoSeriesButTheUnlabelledHistogram) {
  CallMetrics m;
  Exposition e = scrape(m);
  EXPECT_EQ(e.count("curfew_requests_total"), 0u);
  EXPECT_EQ(e.count("curfew_inflight_requests"), 0u);
  EXPECT_EQ(e.value("curfew_cancel_propagation_seconds_count"), 0);
  EXPECT_EQ(e.type("curfew_cancel_propagation_seconds"), "histogram");
}

TEST(CallMetrics, SuccessfulCall) {
  CallMetrics m;
  CallReport r = report(&kSearch);
  r.budget_at_upstream_start = 250ms;
  r.attempts.push_back(attempt(kA, Role::kPrimary, Code::OK, CancelCause::kNone, /*won=*/true));
  run(m, r);

  Exposition e = scrape(m);
  const Labels lr{{"listener", "inbound"}, {"route", "search"}};
  EXPECT_EQ(e.value("curfew_requests_total",
                    {{"listener", "inbound"}, {"route", "search"}, {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(e.count("curfew_requests_total"), 1u) << "codes never seen are not exposed";
  EXPECT_EQ(e.value("curfew_request_duration_seconds_count", lr), 1);
  EXPECT_EQ(e.value("curfew_inflight_requests", lr), 0);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "search"}, {"upstream", "a"}, {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(e.value("curfew_deadline_budget_seconds_count", {{"route", "search"}}), 1);
  EXPECT_DOUBLE_EQ(*e.value("curfew_deadline_budget_seconds_sum", {{"route", "search"}}), 0.25);
  // Every timeout and cancellation cause is exposed (at 0) once the route has been seen.
  EXPECT_EQ(e.count("curfew_timeouts_total", {{"route", "search"}}), 5u);
  EXPECT_EQ(e.sum("curfew_timeouts_total"), 0);
  EXPECT_EQ(e.count("curfew_cancellations_total", {{"route", "search"}}), 5u);
  EXPECT_EQ(e.sum("curfew_cancellations_total"), 0);
  EXPECT_EQ(e.value("curfew_retries_total", {{"route", "search"}}), 0);
  EXPECT_EQ(e.value("curfew_retry_budget_exhausted_total", {{"route", "search"}}), 0);
  // Not a fan-out route: no fan-out or hedge series.
  EXPECT_EQ(e.count("curfew_fanout_failures_total"), 0u);
  EXPECT_EQ(e.count("curfew_hedges_total"), 0u);
}

TEST(CallMetrics, UnmatchedCallsUseTheFixedRouteLabelAndNoRouteSeries) {
  CallMetrics m;
  run(m, report(nullptr, Code::UNIMPLEMENTED));
  run(m, report(nullptr, Code::UNIMPLEMENTED));
  Exposition e = scrape(m);
  EXPECT_EQ(
      e.value("curfew_requests_total",
              {{"listener", "inbound"}, {"route", "unmatched"}, {"grpc_code", "UNIMPLEMENTED"}}),
      2);
  EXPECT_EQ(e.value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "unmatched"}}),
            0);
  EXPECT_EQ(e.count("curfew_timeouts_total"), 0u);
  EXPECT_EQ(e.count("curfew_cancellations_total"), 0u);
  EXPECT_EQ(e.count("curfew_deadline_budget_seconds_count"), 0u);
}

TEST(CallMetrics, RejectionsByLimit) {
  CallMetrics m;
  for (int i = 0; i < 3; ++i) {
    CallReport r = report(&kSearch, Code::RESOURCE_EXHAUSTED);
    r.rejected = sidecar::Rejection::kRouteLimit;
    run(m, r);
  }
  CallReport listener_full = report(&kSearch, Code::RESOURCE_EXHAUSTED);
  listener_full.rejected = sidecar::Rejection::kListenerLimit;
  run(m, listener_full);
  CallReport unmatched = report(nullptr, Code::RESOURCE_EXHAUSTED);
  unmatched.rejected = sidecar::Rejection::kListenerLimit;
  run(m, unmatched);
  run(m, report(&kInventory));

  Exposition e = scrape(m);
  const Labels search{{"listener", "inbound"}, {"route", "search"}};
  EXPECT_EQ(e.value("curfew_rejected_total", with_label(search, "limit", "route")), 3);
  EXPECT_EQ(e.value("curfew_rejected_total", with_label(search, "limit", "listener")), 1);
  EXPECT_EQ(e.value("curfew_rejected_total",
                    {{"listener", "inbound"}, {"route", "unmatched"}, {"limit", "listener"}}),
            1);
  EXPECT_EQ(e.count("curfew_rejected_total", {{"route", "unmatched"}}), 1u)
      << "a call that matched no route never meets a route's limit";
  EXPECT_EQ(e.value("curfew_rejected_total",
                    {{"listener", "inbound"}, {"route", "inventory"}, {"limit", "route"}}),
            0)
      << "exposed at 0 for every route served";
  EXPECT_EQ(e.value("curfew_requests_total", with_label(search, "grpc_code", "RESOURCE_EXHAUSTED")),
            4)
      << "rejected calls are calls too";
  EXPECT_EQ(e.sum("curfew_upstream_requests_total"), 0);
}

TEST(CallMetrics, InflightFollowsStartAndFinishPerListenerAndRoute) {
  CallMetrics m;
  m.call_started(kInbound, &kSearch);
  m.call_started(kInbound, &kSearch);
  m.call_started(kOutbound, &kSearch);
  m.call_started(kInbound, nullptr);
  Exposition during = scrape(m);
  EXPECT_EQ(
      during.value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "search"}}), 2);
  EXPECT_EQ(
      during.value("curfew_inflight_requests", {{"listener", "outbound"}, {"route", "search"}}), 1);
  EXPECT_EQ(
      during.value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "unmatched"}}),
      1);
  m.call_finished(report(&kSearch));
  EXPECT_EQ(
      scrape(m).value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "search"}}),
      1);
}

TEST(CallMetrics, TimeoutsByCause) {
  CallMetrics m;
  const std::pair<TimeoutCause, const char*> causes[] = {{TimeoutCause::kRoute, "route"},
                                                         {TimeoutCause::kCaller, "caller"},
                                                         {TimeoutCause::kBudget, "budget"},
                                                         {TimeoutCause::kPerTry, "per_try"},
                                                         {TimeoutCause::kUpstream, "upstream"}};
  int n = 1;
  for (const auto& [cause, label] : causes) {
    for (int i = 0; i < n; ++i) {
      CallReport r = report(&kSearch, Code::DEADLINE_EXCEEDED);
      r.timeout = cause;
      run(m, r);
    }
    ++n;
  }
  Exposition e = scrape(m);
  n = 1;
  for (const auto& [cause, label] : causes) {
    EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "search"}, {"cause", label}}), n)
        << label;
    ++n;
  }
  EXPECT_EQ(e.sum("curfew_timeouts_total"),
            e.sum("curfew_requests_total", {{"grpc_code", "DEADLINE_EXCEEDED"}}));
}

TEST(CallMetrics, CallLevelCancellations) {
  CallMetrics m;
  for (CancelCause cause : {CancelCause::kCaller, CancelCause::kCaller, CancelCause::kShutdown}) {
    CallReport r = report(&kSearch, Code::CANCELLED);
    r.cancel = cause;
    // The attempts carry the call's cause too: counted once, per call.
    r.attempts.push_back(attempt(kA, Role::kPrimary, Code::CANCELLED, cause));
    run(m, r);
  }
  CallReport timed_out = report(&kSearch, Code::DEADLINE_EXCEEDED);
  timed_out.timeout = TimeoutCause::kRoute;
  timed_out.cancel = CancelCause::kDeadline;
  timed_out.cancel_propagation = std::chrono::microseconds(30);
  timed_out.attempts.push_back(
      attempt(kA, Role::kPrimary, Code::CANCELLED, CancelCause::kDeadline));
  run(m, timed_out);

  Exposition e = scrape(m);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", "caller"}}), 2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", "shutdown"}}), 1);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", "deadline"}}), 1);
  EXPECT_EQ(e.value("curfew_cancel_propagation_seconds_count"), 1);
  EXPECT_EQ(e.value("curfew_cancel_propagation_seconds_bucket", {{"le", "2.5e-05"}}), 0);
  EXPECT_EQ(e.value("curfew_cancel_propagation_seconds_bucket", {{"le", "5e-05"}}), 1);
}

TEST(CallMetrics, DeadlineThatEndedTheUpstreamCallIsACancellationWhicheverTimerFiredFirst) {
  // When curfew's deadline and the upstream call's own gRPC deadline (the same instant without a
  // deadline_offset) race, the proxy reports either a cancellation by the deadline or the
  // upstream's DEADLINE_EXCEEDED after the budget ran out: both are one deadline cancellation.
  CallMetrics m;
  CallReport grpc_deadline = report(&kSearch, Code::DEADLINE_EXCEEDED);
  grpc_deadline.timeout = TimeoutCause::kRoute;
  grpc_deadline.attempts.push_back(attempt(kA, Role::kPrimary, Code::DEADLINE_EXCEEDED));
  run(m, grpc_deadline);
  CallReport per_try = report(&kSearch, Code::DEADLINE_EXCEEDED);
  per_try.timeout = TimeoutCause::kPerTry;
  per_try.attempts.push_back(attempt(kA, Role::kPrimary, Code::DEADLINE_EXCEEDED));
  run(m, per_try);
  // Not cancellations: the upstream answered DEADLINE_EXCEEDED with time left, and a fast-fail
  // never called the upstream.
  CallReport upstream = report(&kSearch, Code::DEADLINE_EXCEEDED);
  upstream.timeout = TimeoutCause::kUpstream;
  upstream.attempts.push_back(attempt(kA, Role::kPrimary, Code::DEADLINE_EXCEEDED));
  run(m, upstream);
  CallReport fast_fail = report(&kSearch, Code::DEADLINE_EXCEEDED);
  fast_fail.timeout = TimeoutCause::kBudget;
  run(m, fast_fail);

  Exposition e = scrape(m);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", "deadline"}}), 2);
  EXPECT_EQ(e.sum("curfew_cancellations_total"), 2);
  EXPECT_EQ(e.sum("curfew_timeouts_total"), 4);
}

TEST(CallMetrics, FanoutAllFailure) {
  CallMetrics m;
  CallReport r = report(&kSearch, Code::UNAVAILABLE);
  r.fanout_mode = sidecar::FanoutMode::kAll;
  r.fanout_failed = true;
  r.attempts.push_back(attempt(kA, Role::kFanoutChild, Code::UNAVAILABLE));
  r.attempts.push_back(attempt(kB, Role::kFanoutChild, Code::CANCELLED, CancelCause::kSibling));
  r.attempts.push_back(attempt(kC, Role::kFanoutChild, Code::CANCELLED, CancelCause::kSibling));
  run(m, r);
  CallReport ok = report(&kSearch);
  ok.fanout_mode = sidecar::FanoutMode::kAll;
  for (const auto* u : {&kA, &kB, &kC}) ok.attempts.push_back(attempt(*u, Role::kFanoutChild));
  run(m, ok);

  Exposition e = scrape(m);
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "search"}, {"mode", "all"}}), 1);
  EXPECT_EQ(e.count("curfew_fanout_failures_total"), 1u) << "only the route's own mode";
  EXPECT_EQ(e.value("curfew_fanout_child_failures_total",
                    {{"route", "search"}, {"upstream", "a"}, {"grpc_code", "UNAVAILABLE"}}),
            1);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 1)
      << "siblings cancelled are not failures";
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", "sibling"}}), 2);
  EXPECT_EQ(e.sum("curfew_upstream_requests_total"), 6);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "search"}, {"upstream", "b"}, {"grpc_code", "CANCELLED"}}),
            1);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "search"}, {"upstream", "b"}, {"grpc_code", "OK"}}),
            1);
}

TEST(CallMetrics, AnAttemptThatFinishedWithItsOwnAnswerIsNotACancellation) {
  // A cause recorded for an attempt that then ended with an answer of its own (the child whose
  // result decided the group, the hedge that won) does not make it a cancelled attempt.
  CallMetrics m;
  CallReport r = report(&kSearch, Code::UNAVAILABLE);
  r.fanout_mode = sidecar::FanoutMode::kAll;
  r.fanout_failed = true;
  r.attempts.push_back(attempt(kA, Role::kFanoutChild, Code::CANCELLED, CancelCause::kSibling));
  r.attempts.push_back(attempt(kB, Role::kFanoutChild, Code::UNAVAILABLE, CancelCause::kSibling));
  run(m, r);
  CallReport h = report(&kPricing);
  h.fanout_mode = sidecar::FanoutMode::kHedge;
  h.attempts.push_back(attempt(kA, Role::kHedge, Code::UNAVAILABLE));
  h.attempts.push_back(attempt(kB, Role::kHedge, Code::OK, CancelCause::kHedgeLost, /*won=*/true));
  run(m, h);
  Exposition e = scrape(m);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "search"}, {"cause", "sibling"}}), 1);
  EXPECT_EQ(e.value("curfew_fanout_child_failures_total",
                    {{"route", "search"}, {"upstream", "b"}, {"grpc_code", "UNAVAILABLE"}}),
            1);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "pricing"}, {"cause", "hedge_lost"}}),
            0);
  EXPECT_EQ(e.value("curfew_hedges_total", {{"route", "pricing"}, {"outcome", "won"}}), 1);
}

TEST(CallMetrics, FanoutRouteWithoutFailuresExposesZero) {
  CallMetrics m;
  CallReport r = report(&kSearch);
  r.fanout_mode = sidecar::FanoutMode::kQuorum;
  r.attempts.push_back(attempt(kA, Role::kFanoutChild));
  r.attempts.push_back(attempt(kB, Role::kFanoutChild));
  r.attempts.push_back(attempt(kC, Role::kFanoutChild, Code::CANCELLED, CancelCause::kSibling));
  run(m, r);
  Exposition e = scrape(m);
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "search"}, {"mode", "quorum"}}), 0);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 0);
}

TEST(CallMetrics, FanoutChildrenCutByTheDeadlineAreFailuresButNotWhenTheCallerLeft) {
  CallMetrics m;
  CallReport deadline = report(&kSearch, Code::DEADLINE_EXCEEDED);
  deadline.fanout_mode = sidecar::FanoutMode::kAll;
  deadline.fanout_failed = true;
  deadline.timeout = TimeoutCause::kRoute;
  deadline.cancel = CancelCause::kDeadline;
  deadline.attempts.push_back(attempt(kA, Role::kFanoutChild));
  deadline.attempts.push_back(
      attempt(kB, Role::kFanoutChild, Code::CANCELLED, CancelCause::kDeadline));
  run(m, deadline);
  CallReport caller = report(&kSearch, Code::CANCELLED);
  caller.fanout_mode = sidecar::FanoutMode::kAll;
  caller.cancel = CancelCause::kCaller;
  caller.attempts.push_back(attempt(kA, Role::kFanoutChild, Code::CANCELLED, CancelCause::kCaller));
  caller.attempts.push_back(attempt(kB, Role::kFanoutChild, Code::CANCELLED, CancelCause::kCaller));
  run(m, caller);
  Exposition e = scrape(m);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 1);
  EXPECT_EQ(e.value("curfew_fanout_child_failures_total",
                    {{"route", "search"}, {"upstream", "b"}, {"grpc_code", "DEADLINE_EXCEEDED"}}),
            1)
      << "a child cut by the deadline did not answer in time, whichever timer fired first";
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "search"}, {"mode", "all"}}), 1);
}

TEST(CallMetrics, HedgeOutcomes) {
  CallMetrics m;
  // The hedge won; the first try lost.
  CallReport hedge_won = report(&kPricing);
  hedge_won.fanout_mode = sidecar::FanoutMode::kHedge;
  hedge_won.attempts.push_back(attempt(kA, Role::kHedge, Code::CANCELLED, CancelCause::kHedgeLost));
  hedge_won.attempts.push_back(attempt(kB, Role::kHedge, Code::OK, CancelCause::kNone, true));
  run(m, hedge_won);
  // The first try won; the hedge lost.
  CallReport first_won = report(&kPricing);
  first_won.fanout_mode = sidecar::FanoutMode::kHedge;
  first_won.attempts.push_back(attempt(kA, Role::kHedge, Code::OK, CancelCause::kNone, true));
  first_won.attempts.push_back(attempt(kB, Role::kHedge, Code::CANCELLED, CancelCause::kHedgeLost));
  run(m, first_won);
  // The hedge failed (a child failure); the first try then won.
  CallReport hedge_failed = report(&kPricing);
  hedge_failed.fanout_mode = sidecar::FanoutMode::kHedge;
  hedge_failed.attempts.push_back(attempt(kA, Role::kHedge, Code::OK, CancelCause::kNone, true));
  hedge_failed.attempts.push_back(attempt(kB, Role::kHedge, Code::UNAVAILABLE));
  run(m, hedge_failed);
  // No hedge needed.
  CallReport single = report(&kPricing);
  single.fanout_mode = sidecar::FanoutMode::kHedge;
  single.attempts.push_back(attempt(kA, Role::kHedge, Code::OK, CancelCause::kNone, true));
  run(m, single);
  // The caller left while both tries ran.
  CallReport gone = report(&kPricing, Code::CANCELLED);
  gone.fanout_mode = sidecar::FanoutMode::kHedge;
  gone.cancel = CancelCause::kCaller;
  gone.attempts.push_back(attempt(kA, Role::kHedge, Code::CANCELLED, CancelCause::kCaller));
  gone.attempts.push_back(attempt(kB, Role::kHedge, Code::CANCELLED, CancelCause::kCaller));
  run(m, gone);

  Exposition e = scrape(m);
  auto hedges = [&](const char* outcome) {
    return e.value("curfew_hedges_total", {{"route", "pricing"}, {"outcome", outcome}});
  };
  EXPECT_EQ(hedges("won"), 1);
  EXPECT_EQ(hedges("lost"), 1);
  EXPECT_EQ(hedges("failed"), 1);
  EXPECT_EQ(hedges("cancelled"), 1);
  EXPECT_EQ(e.sum("curfew_hedges_total"), 4) << "the first try of each call is not a hedge";
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "pricing"}, {"cause", "hedge_lost"}}),
            2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "pricing"}, {"cause", "caller"}}), 1);
  EXPECT_EQ(e.value("curfew_fanout_child_failures_total",
                    {{"route", "pricing"}, {"upstream", "b"}, {"grpc_code", "UNAVAILABLE"}}),
            1);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 1);
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "pricing"}, {"mode", "hedge"}}), 0);
}

TEST(CallMetrics, RetriesBudgetAndMirror) {
  CallMetrics m;
  CallReport r = report(&kInventory);
  r.retries = 2;
  r.attempts.push_back(attempt(kA, Role::kPrimary, Code::UNAVAILABLE));
  r.attempts.push_back(attempt(kA, Role::kRetry, Code::UNAVAILABLE));
  r.attempts.push_back(attempt(kA, Role::kRetry, Code::OK, CancelCause::kNone, true));
  r.attempts.push_back(attempt(kCanary, Role::kMirror, Code::INTERNAL));
  run(m, r);
  CallReport refused = report(&kInventory, Code::UNAVAILABLE);
  refused.retry_budget_exhausted = true;
  refused.attempts.push_back(attempt(kA, Role::kPrimary, Code::UNAVAILABLE));
  run(m, refused);

  Exposition e = scrape(m);
  EXPECT_EQ(e.value("curfew_retries_total", {{"route", "inventory"}}), 2);
  EXPECT_EQ(e.value("curfew_retry_budget_exhausted_total", {{"route", "inventory"}}), 1);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "inventory"}, {"upstream", "a"}, {"grpc_code", "UNAVAILABLE"}}),
            3);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "inventory"}, {"upstream", "canary"}, {"grpc_code", "INTERNAL"}}),
            1);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 0) << "retries and mirrors are no fan-out";
}

TEST(CallMetrics, HistogramBucketsAreCumulativeAndCountMatchesInf) {
  CallMetrics m;
  for (auto d : {std::chrono::microseconds(100), std::chrono::microseconds(3000),
                 std::chrono::microseconds(5000), std::chrono::microseconds(120'000'000)}) {
    run(m, report(&kSearch, Code::OK, d));
  }
  CallReport late = report(&kSearch);
  late.budget_at_upstream_start = -5ms;  // the caller arrived late: counted as 0
  run(m, late);

  Exposition e = scrape(m);
  auto bucket = [&](const char* le) {
    return e.value("curfew_request_duration_seconds_bucket",
                   {{"listener", "inbound"}, {"route", "search"}, {"le", le}});
  };
  EXPECT_EQ(bucket("0.0005"), 1);
  EXPECT_EQ(bucket("0.0025"), 1);
  EXPECT_EQ(bucket("0.005"), 4) << "3ms, 3ms (late) and 5ms are <= 0.005";
  EXPECT_EQ(bucket("60"), 4);
  EXPECT_EQ(bucket("+Inf"), 5);
  EXPECT_EQ(e.value("curfew_request_duration_seconds_count",
                    {{"listener", "inbound"}, {"route", "search"}}),
            5);
  EXPECT_NEAR(*e.value("curfew_request_duration_seconds_sum",
                       {{"listener", "inbound"}, {"route", "search"}}),
              0.0001 + 0.003 + 0.005 + 120 + 0.003, 1e-9);
  EXPECT_EQ(
      e.value("curfew_deadline_budget_seconds_bucket", {{"route", "search"}, {"le", "0.001"}}), 1);
  EXPECT_EQ(e.value("curfew_deadline_budget_seconds_sum", {{"route", "search"}}), 0);
  EXPECT_EQ(e.count("curfew_request_duration_seconds_bucket",
                    {{"listener", "inbound"}, {"route", "search"}}),
            std::size(metrics::kLatencyBuckets) + 1);
}

TEST(CallMetrics, CodesOutsideTheProtocolCountAsUnknown) {
  CallMetrics m;
  // 20: inside the enum's range (no UB), outside the protocol's codes 0..16.
  run(m, report(&kSearch, static_cast<Code>(20)));
  EXPECT_EQ(
      scrape(m).value("curfew_requests_total",
                      {{"listener", "inbound"}, {"route", "search"}, {"grpc_code", "UNKNOWN"}}),
      1);
}

TEST(CallMetrics, OneShardPerReportingThreadAndPerInstance) {
  CallMetrics m, other;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) run(m, report(&kSearch));
      run(other, report(&kSearch));
      run(m, report(&kSearch));  // back to the first instance: same shard
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(m.shard_count(), 4u);
  EXPECT_EQ(other.shard_count(), 4u);
  EXPECT_EQ(scrape(m).sum("curfew_requests_total"), 44);
  EXPECT_EQ(scrape(other).sum("curfew_requests_total"), 4);
}

TEST(CallMetrics, ALaterInstanceOnTheSameThreadNeverSeesAnEarlierOnesShard) {
  for (int round = 0; round < 20; ++round) {
    CallMetrics m;
    run(m, report(&kSearch));
    EXPECT_EQ(m.shard_count(), 1u);
    EXPECT_EQ(scrape(m).sum("curfew_requests_total"), 1);
  }
}

TEST(CallMetrics, ConcurrentReportersAndScrapersAreExactAndMonotonic) {
  CallMetrics m;
  constexpr int kThreads = 4;
  constexpr int kCalls = 3000;
  const std::string routes[] = {"r0", "r1", "r2", "r3", "r4"};
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    double last_requests = 0, last_upstream = 0;
    while (!done.load()) {
      Exposition e = scrape(m);
      const double requests = e.sum("curfew_requests_total");
      const double upstream = e.sum("curfew_upstream_requests_total");
      EXPECT_GE(requests, last_requests);
      EXPECT_GE(upstream, last_upstream);
      const double inflight = e.sum("curfew_inflight_requests");
      EXPECT_GE(inflight, 0);
      EXPECT_LE(inflight, kThreads);
      last_requests = requests;
      last_upstream = upstream;
      scrapes.fetch_add(1);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Make sure scrapes do run while the reporters report (bounded waits).
      auto wait_for_scrapes = [&](int n) {
        const auto until = std::chrono::steady_clock::now() + 5s;
        while (scrapes.load() < n && std::chrono::steady_clock::now() < until)
          std::this_thread::yield();
      };
      const std::string listener = "l" + std::to_string(t % 2);
      wait_for_scrapes(1);
      for (int i = 0; i < kCalls; ++i) {
        if (i == kCalls / 2) wait_for_scrapes(3);
        const std::string& route = routes[(i + t) % 5];
        CallReport r;
        r.listener = &listener;
        r.route = &route;
        r.code = i % 3 == 0 ? Code::DEADLINE_EXCEEDED : Code::OK;
        r.timeout = i % 3 == 0 ? TimeoutCause::kRoute : TimeoutCause::kNone;
        r.duration = std::chrono::microseconds(i);
        r.attempts.push_back(attempt(i % 2 ? kA : kB, Role::kPrimary, r.code));
        m.call_started(listener, &route);
        m.call_finished(r);
      }
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();
  EXPECT_GE(scrapes.load(), 3);

  Exposition e = scrape(m);
  EXPECT_EQ(e.sum("curfew_requests_total"), kThreads * kCalls);
  EXPECT_EQ(e.sum("curfew_upstream_requests_total"), kThreads * kCalls);
  EXPECT_EQ(e.sum("curfew_request_duration_seconds_count"), kThreads * kCalls);
  EXPECT_EQ(e.sum("curfew_inflight_requests"), 0);
  EXPECT_EQ(e.sum("curfew_timeouts_total", {{"cause", "route"}}), kThreads * (kCalls / 3));
  EXPECT_EQ(e.sum("curfew_requests_total", {{"route", "r0"}}), kThreads * kCalls / 5);
  EXPECT_EQ(e.sum("curfew_requests_total", {{"listener", "l0"}}), kThreads * kCalls / 2);
  EXPECT_EQ(m.shard_count(), static_cast<size_t>(kThreads));
}

}  // namespace
}  // namespace curfew::testing
