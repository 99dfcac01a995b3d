// The demo backend behaves as demo.proto promises, and its counters tell the truth: proxy tests
// will read them to decide whether a deadline reached the backend.
#include "demo_backend.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "curfew/demo/demo.grpc.pb.h"

namespace curfew::testing {
namespace {

using curfew::demo::EchoReply;
using std::chrono::milliseconds;

// gRPC encodes grpc-timeout lossily and rounds *up* (a 5000 ms deadline has arrived as 5009 ms),
// so a backend can see slightly more budget than the client set. 2% covers it.
constexpr milliseconds kBudgetCeiling{5000 * 102 / 100};

class DemoBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    stub_ = curfew::demo::Demo::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(backend_->port()), grpc::InsecureChannelCredentials()));
  }

  static void SetTimeout(grpc::ClientContext& ctx, milliseconds timeout) {
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  }

  // Polls `condition` for up to two seconds; counters are updated by handlers a little after
  // the client sees its call end.
  template <typename Condition>
  static bool Eventually(Condition condition) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= give_up) return false;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return true;
  }

  std::unique_ptr<DemoBackend> backend_;
  std::unique_ptr<curfew::demo::Demo::Stub> stub_;
};

TEST_F(DemoBackendTest, EchoEchoesAndRecordsBudgetAndMetadata) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, milliseconds(5000));
  ctx.AddMetadata("x-curfew-test", "hello");
  curfew::demo::EchoRequest request;
  request.set_message("ping");
  EchoReply reply;
  ASSERT_TRUE(stub_->Echo(&ctx, request, &reply).ok());
  EXPECT_EQ(reply.message(), "ping");
  EXPECT_GT(reply.budget_ms(), 0);
  EXPECT_LE(milliseconds(reply.budget_ms()), kBudgetCeiling);

  const auto budget = backend_->last_seen_budget();
  ASSERT_TRUE(budget.has_value());
  EXPECT_GT(*budget, milliseconds(0));
  EXPECT_LE(*budget, kBudgetCeiling);
  const auto metadata = backend_->last_metadata();
  const auto it = metadata.find("x-curfew-test");
  ASSERT_NE(it, metadata.end());
  EXPECT_EQ(it->second, "hello");
  EXPECT_EQ(backend_->calls_started(), 1);
}

TEST_F(DemoBackendTest, CallWithoutDeadlineHasNoBudget) {
  grpc::ClientContext ctx;
  curfew::demo::EchoRequest request;
  EchoReply reply;
  ASSERT_TRUE(stub_->Echo(&ctx, request, &reply).ok());
  EXPECT_EQ(reply.budget_ms(), -1);
  EXPECT_FALSE(backend_->last_seen_budget().has_value());
}

TEST_F(DemoBackendTest, FailReturnsTheRequestedCodeAndMessage) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, milliseconds(5000));
  curfew::demo::FailRequest request;
  request.set_code(grpc::StatusCode::FAILED_PRECONDITION);
  request.set_message("not today");
  EchoReply reply;
  const grpc::Status status = stub_->Fail(&ctx, request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "not today");
}

TEST_F(DemoBackendTest, SlowNoticesItsDeadlineExpiring) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, milliseconds(100));
  curfew::demo::SlowRequest request;
  request.set_delay_ms(10'000);
  EchoReply reply;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stub_->Slow(&ctx, request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(Eventually([&] { return backend_->slow_calls_cancelled() == 1; }));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(backend_->slow_calls_completed(), 0);
}

TEST_F(DemoBackendTest, SlowCompletesWithinItsDeadline) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, milliseconds(5000));
  curfew::demo::SlowRequest request;
  request.set_message("eventually");
  request.set_delay_ms(20);
  EchoReply reply;
  ASSERT_TRUE(stub_->Slow(&ctx, request, &reply).ok());
  EXPECT_EQ(reply.message(), "eventually");
  EXPECT_FALSE(reply.cancelled());
  EXPECT_EQ(backend_->slow_calls_completed(), 1);
  EXPECT_EQ(backend_->slow_calls_cancelled(), 0);
}

TEST_F(DemoBackendTest, StreamSendsCountRepliesInOrder) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, milliseconds(5000));
  curfew::demo::EchoRequest request;
  request.set_message("tick");
  request.set_count(3);
  request.set_interval_ms(10);
  auto stream = stub_->Stream(&ctx, request);
  EchoReply reply;
  int expected_index = 0;
  while (stream->Read(&reply)) {
    EXPECT_EQ(reply.message(), "tick");
    EXPECT_EQ(reply.index(), expected_index++);
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(expected_index, 3);
}

// A Slow call in flight must not hold Shutdown hostage for its whole delay.
TEST_F(DemoBackendTest, ShutdownCancelsSlowCallsInFlight) {
  std::thread caller([&] {
    grpc::ClientContext ctx;
    SetTimeout(ctx, milliseconds(30'000));
    curfew::demo::SlowRequest request;
    request.set_delay_ms(30'000);
    EchoReply reply;
    EXPECT_FALSE(stub_->Slow(&ctx, request, &reply).ok());
  });
  ASSERT_TRUE(Eventually([&] { return backend_->calls_started() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  backend_->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  caller.join();
  EXPECT_EQ(backend_->slow_calls_cancelled(), 1);
}

}  // namespace
}  // namespace curfew::testing
