// curfew's deadline policy, end to end: real callers, a real curfew, a real backend on 127.0.0.1.
// Timing assertions are generous bounds only (benchmarks measure; tests check behaviour).
#include <chrono>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;

// gRPC computes the grpc-timeout it sends from a clock cached per event-loop turn.
constexpr auto kClockSlack = std::chrono::milliseconds(50);

class DeadlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
  }

  void start(const std::string& routes, const std::string& default_timeout = "1s") {
    sidecar_ = start_sidecar(R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    default_timeout: )" + default_timeout +
                             R"(
    routes:
)" + routes + R"(
upstreams:
  - {name: demo, endpoints: [127.0.0.1:)" +
                             std::to_string(backend_->port()) + "]}\n");
    ASSERT_NE(sidecar_, nullptr);
    stub_ = Demo::NewStub(channel_to(sidecar_->port("inbound")));
  }

  grpc::Status slow(int delay_ms, std::optional<std::chrono::milliseconds> caller_timeout,
                    std::chrono::steady_clock::duration* took = nullptr) {
    grpc::ClientContext ctx;
    if (caller_timeout) ctx.set_deadline(std::chrono::system_clock::now() + *caller_timeout);
    demo::SlowRequest request;
    request.set_delay_ms(delay_ms);
    demo::EchoReply reply;
    const auto start = std::chrono::steady_clock::now();
    grpc::Status status = stub_->Slow(&ctx, request, &reply);
    if (took) *took = std::chrono::steady_clock::now() - start;
    return status;
  }

  std::unique_ptr<DemoBackend> backend_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::unique_ptr<Demo::Stub> stub_;
};

TEST_F(DeadlineTest, CallerWithoutDeadlineOnHangingUpstreamGetsRouteDeadline) {
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: "
      "200ms}");
  std::chrono::steady_clock::duration took;
  grpc::Status status = slow(10'000, std::nullopt, &took);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("route 'slow'"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("200ms"), std::string::npos) << status.error_message();
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2s) << "a 200 ms route deadline must fire well before 2 s";
  EXPECT_TRUE(eventually([&] { return backend_->slow_calls_cancelled() == 1; }))
      << "the upstream call was not cancelled";
}

TEST_F(DeadlineTest, CallerDeadlineShorterThanRouteWins) {
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 5s}");
  std::chrono::steady_clock::duration took;
  grpc::Status status = slow(10'000, 150ms, &took);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(took, 2s);
  ASSERT_TRUE(backend_->last_seen_budget().has_value());
  EXPECT_LE(*backend_->last_seen_budget(), 150ms + kClockSlack);
  EXPECT_TRUE(eventually([&] { return backend_->slow_calls_cancelled() == 1; }));
}

TEST_F(DeadlineTest, MaxTimeoutCapsALongCallerDeadline) {
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: "
      "200ms, max_timeout: 300ms}");
  std::chrono::steady_clock::duration took;
  grpc::Status status = slow(10'000, 30s, &took);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("max_timeout"), std::string::npos)
      << status.error_message();
  EXPECT_LT(took, 5s) << "the 30 s caller deadline must have been capped to 300 ms";
  ASSERT_TRUE(backend_->last_seen_budget().has_value());
  EXPECT_LE(*backend_->last_seen_budget(), 300ms + kClockSlack);
}

TEST_F(DeadlineTest, MinBudgetFastFailNeverReachesTheUpstream) {
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 1s, "
      "min_budget: 500ms}");
  grpc::Status status = slow(10, 100ms);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("min_budget"), std::string::npos) << status.error_message();
  EXPECT_EQ(backend_->calls_started(), 0) << "the upstream must not be called";
  // With enough budget the same route does call the upstream.
  EXPECT_TRUE(slow(10, 5s).ok());
  EXPECT_EQ(backend_->calls_started(), 1);
}

TEST_F(DeadlineTest, UpstreamSeesThePropagatedBudget) {
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 3s}");
  EXPECT_TRUE(slow(1, std::nullopt).ok());
  ASSERT_TRUE(backend_->last_seen_budget().has_value()) << "no grpc-timeout reached the upstream";
  // gRPC encodes grpc-timeout from a clock it caches per event-loop turn, so the upstream can
  // see a few ms more than was left: allow 50 ms of slack above the route's 3 s.
  EXPECT_LE(*backend_->last_seen_budget(), 3s + kClockSlack);
  EXPECT_GT(*backend_->last_seen_budget(), 2s);
}

TEST_F(DeadlineTest, DeadlineOffsetIsKeptForCurfewsOwnReply) {
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 2s, "
      "deadline_offset: 500ms}");
  EXPECT_TRUE(slow(1, std::nullopt).ok());
  ASSERT_TRUE(backend_->last_seen_budget().has_value());
  EXPECT_LE(*backend_->last_seen_budget(), 1500ms + kClockSlack);
}

TEST_F(DeadlineTest, ListenerDefaultTimeoutAppliesToRoutesWithoutOne) {
  start("      - {name: all, match: {prefix: /}, upstream: demo}", "250ms");
  std::chrono::steady_clock::duration took;
  grpc::Status status = slow(10'000, std::nullopt, &took);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("default_timeout"), std::string::npos)
      << status.error_message();
  EXPECT_LT(took, 2s);
}

TEST_F(DeadlineTest, CallNoRouteMatchesGetsUnimplementedFromCurfew) {
  start("      - {name: only-echo, match: {method: /curfew.demo.Demo/Echo}, upstream: demo}");
  grpc::Status status = slow(1, 5s);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(status.error_message().find("curfew: no route"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(backend_->calls_started(), 0);
}

TEST_F(DeadlineTest, DeadlineCoversAWholeServerStream) {
  start("      - {name: all, match: {prefix: /}, upstream: demo, timeout: 300ms}");
  grpc::ClientContext ctx;
  demo::EchoRequest request;
  request.set_message("tick");
  request.set_count(100);
  request.set_interval_ms(50);
  auto reader = stub_->Stream(&ctx, request);
  demo::EchoReply reply;
  int received = 0;
  const auto start = std::chrono::steady_clock::now();
  while (reader->Read(&reply)) ++received;
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_GT(received, 0) << "messages before the deadline are delivered";
  EXPECT_LT(received, 100);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

}  // namespace
}  // namespace curfew::testing
