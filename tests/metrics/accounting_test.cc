// Exact accounting: a real curfew in front of a real backend, a scripted mix of calls (successes,
// errors, route timeouts, caller deadlines, caller cancels, min_budget fast-fails, unknown
// methods, shutdown), then every counter scraped from /metrics equals what the test caused.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "grpc/testing/test.grpc.pb.h"
#include "metrics_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;

std::string config_for(int backend_port, const std::string& drain_timeout = "10s") {
  const std::string backend = "127.0.0.1:" + std::to_string(backend_port);
  return R"(
drain_timeout: )" +
         drain_timeout + R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    default_timeout: 10s
    routes:
      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 200ms}
      - {name: demo, match: {service: curfew.demo.Demo}, upstream: demo}
  # Deterministic caller deadlines: with a deadline_offset the upstream's own deadline passes
  # well before the caller's, so curfew answers in time whatever the scheduling.
  - name: patient
    address: 127.0.0.1:0
    default_timeout: 30s
    routes:
      - {name: patient, match: {prefix: /}, upstream: demo, deadline_offset: 500ms, min_budget: 300ms}
upstreams:
  - {name: demo, endpoints: [)" +
         backend + "]}\n";
}

class Accounting : public MetricsFixture {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    start(config_for(backend_->port()));
    inbound_ = Demo::NewStub(channel_to(sidecar_->port("inbound")));
    patient_ = Demo::NewStub(channel_to(sidecar_->port("patient")));
  }

  grpc::Status echo() {
    grpc::ClientContext ctx;
    demo::EchoRequest request;
    request.set_message("hi");
    demo::EchoReply reply;
    return inbound_->Echo(&ctx, request, &reply);
  }
  grpc::Status fail(grpc::StatusCode code) {
    grpc::ClientContext ctx;
    demo::FailRequest request;
    request.set_code(code);
    demo::EchoReply reply;
    return inbound_->Fail(&ctx, request, &reply);
  }
  grpc::Status slow(Demo::Stub& stub, int delay_ms,
                    std::optional<std::chrono::milliseconds> deadline) {
    grpc::ClientContext ctx;
    if (deadline) ctx.set_deadline(std::chrono::system_clock::now() + *deadline);
    demo::SlowRequest request;
    request.set_delay_ms(delay_ms);
    demo::EchoReply reply;
    return stub.Slow(&ctx, request, &reply);
  }
  // A Slow call the caller cancels once the backend has it.
  grpc::Status cancelled_slow() {
    grpc::ClientContext ctx;
    demo::SlowRequest request;
    request.set_delay_ms(20'000);
    demo::EchoReply reply;
    const int before = backend_->calls_started();
    std::thread canceller([&] {
      eventually([&] { return backend_->calls_started() > before; });
      ctx.TryCancel();
    });
    grpc::Status status = patient_->Slow(&ctx, request, &reply);
    canceller.join();
    return status;
  }
  grpc::Status unknown_method() {
    auto stub = grpc::testing::TestService::NewStub(channel_to(sidecar_->port("inbound")));
    grpc::ClientContext ctx;
    grpc::testing::Empty request, reply;
    return stub->EmptyCall(&ctx, request, &reply);
  }

  std::unique_ptr<DemoBackend> backend_;
  std::unique_ptr<Demo::Stub> inbound_;
  std::unique_ptr<Demo::Stub> patient_;
};

const Labels kInboundDemo{{"listener", "inbound"}, {"route", "demo"}};
const Labels kInboundSlow{{"listener", "inbound"}, {"route", "slow"}};
const Labels kInboundUnmatched{{"listener", "inbound"}, {"route", "unmatched"}};
const Labels kPatient{{"listener", "patient"}, {"route", "patient"}};

Labels with(Labels labels, const std::string& key, const std::string& value) {
  labels[key] = value;
  return labels;
}

TEST_F(Accounting, ScriptedMixIsCountedExactly) {
  int calls = 0;
  auto expect_code = [&](grpc::Status status, grpc::StatusCode code) {
    ++calls;
    EXPECT_EQ(status.error_code(), code) << status.error_message();
  };
  for (int i = 0; i < 5; ++i) expect_code(echo(), grpc::StatusCode::OK);
  for (int i = 0; i < 2; ++i)
    expect_code(fail(grpc::StatusCode::NOT_FOUND), grpc::StatusCode::NOT_FOUND);
  // The upstream answers DEADLINE_EXCEEDED itself, with time left: an upstream timeout.
  expect_code(fail(grpc::StatusCode::DEADLINE_EXCEEDED), grpc::StatusCode::DEADLINE_EXCEEDED);
  // curfew's route deadline (200 ms) cuts a 10 s call.
  for (int i = 0; i < 2; ++i)
    expect_code(slow(*inbound_, 10'000, std::nullopt), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The caller's deadline (1.5 s, minus the 500 ms offset sent upstream) cuts a 20 s call.
  for (int i = 0; i < 2; ++i)
    expect_code(slow(*patient_, 20'000, 1500ms), grpc::StatusCode::DEADLINE_EXCEEDED);
  // 200 ms left is below the route's 300 ms min_budget: fast-fail, no upstream call.
  for (int i = 0; i < 3; ++i)
    expect_code(slow(*patient_, 10, 200ms), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The caller cancels.
  for (int i = 0; i < 2; ++i) expect_code(cancelled_slow(), grpc::StatusCode::CANCELLED);
  // No route for the method.
  for (int i = 0; i < 3; ++i) expect_code(unknown_method(), grpc::StatusCode::UNIMPLEMENTED);
  ASSERT_EQ(calls, 20);

  ASSERT_TRUE(all_reported(calls));
  Exposition e = scrape();

  // requests_total: summed over codes (and everything), the calls made.
  EXPECT_EQ(e.sum("curfew_requests_total"), calls);
  EXPECT_EQ(e.counter("curfew_requests_total", with(kInboundDemo, "grpc_code", "OK")), 5);
  EXPECT_EQ(e.counter("curfew_requests_total", with(kInboundDemo, "grpc_code", "NOT_FOUND")), 2);
  EXPECT_EQ(
      e.counter("curfew_requests_total", with(kInboundDemo, "grpc_code", "DEADLINE_EXCEEDED")), 1);
  EXPECT_EQ(e.sum("curfew_requests_total", kInboundDemo), 8);
  EXPECT_EQ(
      e.counter("curfew_requests_total", with(kInboundSlow, "grpc_code", "DEADLINE_EXCEEDED")), 2);
  EXPECT_EQ(e.sum("curfew_requests_total", kInboundSlow), 2);
  EXPECT_EQ(e.counter("curfew_requests_total", with(kPatient, "grpc_code", "DEADLINE_EXCEEDED")),
            5);
  EXPECT_EQ(e.counter("curfew_requests_total", with(kPatient, "grpc_code", "CANCELLED")), 2);
  EXPECT_EQ(e.sum("curfew_requests_total", kPatient), 7);
  EXPECT_EQ(
      e.counter("curfew_requests_total", with(kInboundUnmatched, "grpc_code", "UNIMPLEMENTED")), 3);
  EXPECT_EQ(e.sum("curfew_requests_total", kInboundUnmatched), 3);

  // Durations: one observation per call.
  EXPECT_EQ(e.sum("curfew_request_duration_seconds_count"), calls);
  EXPECT_EQ(e.value("curfew_request_duration_seconds_count", kInboundDemo), 8);
  EXPECT_EQ(e.value("curfew_request_duration_seconds_count", kPatient), 7);
  EXPECT_EQ(
      e.value("curfew_request_duration_seconds_bucket", with(kInboundUnmatched, "le", "+Inf")), 3);

  // Nothing in flight any more.
  EXPECT_EQ(e.sum("curfew_inflight_requests"), 0);
  EXPECT_EQ(e.count("curfew_inflight_requests"), 4u);

  // Timeouts, by cause; each one is a DEADLINE_EXCEEDED answered on a route.
  EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "demo"}, {"cause", "upstream"}}), 1);
  EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "slow"}, {"cause", "route"}}), 2);
  EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "patient"}, {"cause", "caller"}}), 2);
  EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "patient"}, {"cause", "budget"}}), 3);
  EXPECT_EQ(e.sum("curfew_timeouts_total"), 8);
  EXPECT_EQ(e.sum("curfew_timeouts_total"),
            e.sum("curfew_requests_total", {{"grpc_code", "DEADLINE_EXCEEDED"}}));
  EXPECT_EQ(e.sum("curfew_timeouts_total", {{"cause", "per_try"}}), 0);

  // Cancellations: the caller's two; the deadline cut four upstream calls (two route, two
  // caller deadlines); the upstream's own DEADLINE_EXCEEDED and the fast-fails cancel nothing.
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "patient"}, {"cause", "caller"}}), 2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "patient"}, {"cause", "deadline"}}),
            2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "slow"}, {"cause", "deadline"}}), 2);
  EXPECT_EQ(e.sum("curfew_cancellations_total"), 6);
  // curfew issued the upstream cancel itself at least for the caller's cancels.
  EXPECT_GE(*e.value("curfew_cancel_propagation_seconds_count"), 2);
  EXPECT_LE(*e.value("curfew_cancel_propagation_seconds_count"), 6);

  // Upstream calls: one per call that reached the upstream (not the fast-fails, not unmatched).
  EXPECT_EQ(e.sum("curfew_upstream_requests_total"), calls - 3 - 3);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "demo"}, {"upstream", "demo"}, {"grpc_code", "OK"}}),
            5);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "demo"}, {"upstream", "demo"}, {"grpc_code", "NOT_FOUND"}}),
            2);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "demo"}, {"upstream", "demo"}, {"grpc_code", "DEADLINE_EXCEEDED"}}),
            1);
  EXPECT_EQ(e.sum("curfew_upstream_requests_total", {{"route", "slow"}}), 2);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "patient"}, {"upstream", "demo"}, {"grpc_code", "CANCELLED"}}),
            2);
  EXPECT_EQ(
      e.value("curfew_upstream_requests_total",
              {{"route", "patient"}, {"upstream", "demo"}, {"grpc_code", "DEADLINE_EXCEEDED"}}),
      2);
  EXPECT_EQ(backend_->calls_started(), calls - 3 - 3);

  // The budget when the upstream call started: one observation per upstream call.
  EXPECT_EQ(e.sum("curfew_deadline_budget_seconds_count"), calls - 3 - 3);
  EXPECT_EQ(e.value("curfew_deadline_budget_seconds_count", {{"route", "slow"}}), 2);
  // Route "slow" has 200 ms: every observation is in the 0.25 s bucket, none in the 0.1 s one.
  EXPECT_EQ(e.value("curfew_deadline_budget_seconds_bucket", {{"route", "slow"}, {"le", "0.1"}}),
            0);
  EXPECT_EQ(e.value("curfew_deadline_budget_seconds_bucket", {{"route", "slow"}, {"le", "0.25"}}),
            2);

  // No retries, no fan-out on these routes.
  EXPECT_EQ(e.sum("curfew_retries_total"), 0);
  EXPECT_EQ(e.sum("curfew_retry_budget_exhausted_total"), 0);
  EXPECT_EQ(e.count("curfew_fanout_failures_total"), 0u);
  EXPECT_EQ(e.count("curfew_hedges_total"), 0u);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 0);
}

TEST_F(Accounting, InflightCountsCallsInProgress) {
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back(
        [&] { EXPECT_EQ(cancelled_slow().error_code(), grpc::StatusCode::CANCELLED); });
    // One at a time, so that each canceller sees its own call start.
    ASSERT_TRUE(eventually([&] { return backend_->calls_started() == i + 1; }));
  }
  for (auto& t : callers) t.join();
  ASSERT_TRUE(all_reported(3));
  EXPECT_EQ(scrape().value("curfew_inflight_requests", kPatient), 0);

  // Now hold three calls in flight until the test lets them go.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (int i = 0; i < 3; ++i) contexts.push_back(std::make_unique<grpc::ClientContext>());
  for (int i = 0; i < 3; ++i) {
    callers[i] = std::thread([&, i] {
      demo::SlowRequest request;
      request.set_delay_ms(20'000);
      demo::EchoReply reply;
      patient_->Slow(contexts[i].get(), request, &reply);
    });
  }
  EXPECT_TRUE(
      eventually([&] { return scrape().value("curfew_inflight_requests", kPatient) == 3; }));
  for (auto& ctx : contexts) ctx->TryCancel();
  for (auto& t : callers) t.join();
  EXPECT_TRUE(
      eventually([&] { return scrape().value("curfew_inflight_requests", kPatient) == 0; }));
}

TEST_F(Accounting, SeriesSurviveAReload) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(echo().ok());
  // A new Routing: the old one (and the strings the reports pointed into) goes away.
  auto config = config::load_config_string(config_for(backend_->port()), "test.yaml");
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(sidecar_->reload(*std::move(config)).ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(echo().ok());
  ASSERT_TRUE(all_reported(5));
  Exposition e = scrape();
  EXPECT_EQ(e.value("curfew_requests_total", with(kInboundDemo, "grpc_code", "OK")), 5);
  EXPECT_EQ(e.count("curfew_requests_total"), 1u);
}

TEST_F(Accounting, ReadyzFollowsTheSidecar) {
  EXPECT_EQ(http_status("/readyz"), 200);
  EXPECT_EQ(http_status("/healthz"), 200);
  EXPECT_EQ(scrape().value("curfew_ready"), 1);
  sidecar_->drain();
  EXPECT_EQ(http_status("/readyz"), 503);
  EXPECT_EQ(http_status("/healthz"), 200);
  EXPECT_EQ(scrape().value("curfew_ready"), 0);
}

class ShutdownAccounting : public Accounting {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    start(config_for(backend_->port(), "300ms"));
    patient_ = Demo::NewStub(channel_to(sidecar_->port("patient")));
  }
};

TEST_F(ShutdownAccounting, CallsCutByTheDrainDeadlineAreShutdownCancellations) {
  std::thread caller([&] { slow(*patient_, 20'000, std::nullopt); });
  ASSERT_TRUE(eventually([&] { return backend_->calls_started() == 1; }));
  EXPECT_EQ(http_status("/readyz"), 200);
  sidecar_->drain();  // waits 300 ms, then cancels the call
  caller.join();
  ASSERT_TRUE(all_reported(1));
  Exposition e = scrape();
  EXPECT_EQ(e.sum("curfew_requests_total"), 1);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "patient"}, {"cause", "shutdown"}}),
            1);
  EXPECT_EQ(e.sum("curfew_cancellations_total"), 1);
  EXPECT_EQ(e.sum("curfew_inflight_requests"), 0);
  EXPECT_TRUE(eventually([&] { return backend_->slow_calls_cancelled() == 1; }));
}

}  // namespace
}  // namespace curfew::testing
