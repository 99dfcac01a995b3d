// Runs every interop case straight against the in-process InteropServer. These must pass before
// the same cases say anything about the proxy: a failure here is a bug in the cases or the server.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "grpc/testing/test.grpc.pb.h"
#include "interop_client.h"
#include "interop_server.h"

namespace curfew::testing {
namespace {

static_assert(InteropServer::kMaxMessageBytes >= kInteropMaxMessageBytes,
              "the server must accept every message the interop cases send");

std::unique_ptr<InteropServer> StartServer() {
  auto server = InteropServer::Start("127.0.0.1:0");
  EXPECT_NE(server, nullptr);
  return server;
}

std::shared_ptr<grpc::Channel> ChannelTo(const InteropServer& server) {
  return CreateInteropChannel("127.0.0.1:" + std::to_string(server.port()));
}

// One server and channel for the whole suite, as the cases would share them behind a proxy.
class InteropDirectTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    server_ = StartServer();
    if (server_) channel_ = ChannelTo(*server_);
  }
  static void TearDownTestSuite() {
    channel_.reset();
    server_.reset();
  }

  static inline std::unique_ptr<InteropServer> server_;
  static inline std::shared_ptr<grpc::Channel> channel_;
};

TEST_P(InteropDirectTest, Passes) {
  ASSERT_NE(server_, nullptr);
  const InteropResult result = RunInteropCase(GetParam(), channel_);
  EXPECT_EQ(result.name, GetParam());
  EXPECT_TRUE(result.passed) << result.detail;
}

INSTANTIATE_TEST_SUITE_P(AllCases, InteropDirectTest, ::testing::ValuesIn(InteropCaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(InteropClientTest, UnknownCaseFailsWithoutThrowing) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const InteropResult result = RunInteropCase("no_such_case", ChannelTo(*server));
  EXPECT_FALSE(result.passed);
  EXPECT_NE(result.detail.find("no_such_case"), std::string::npos);
}

// The proxy's cancellation tests rely on this counter, so check it counts.
TEST(InteropServerTest, CountsCancellationsTheServerObserved) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const InteropResult result = RunInteropCase("cancel_after_first_response", ChannelTo(*server));
  ASSERT_TRUE(result.passed) << result.detail;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (server->cancellations_observed() < 1 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(server->cancellations_observed(), 1);
  EXPECT_GE(server->calls_started(), 1);
}

// HalfDuplexCall and interval_us are server features no standard case exercises.
TEST(InteropServerTest, HalfDuplexAnswersAfterHalfCloseInOrder) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto stub = grpc::testing::TestService::NewStub(ChannelTo(*server));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->HalfDuplexCall(&ctx);
  for (const int size : {3, 1, 2}) {
    grpc::testing::StreamingOutputCallRequest request;
    request.add_response_parameters()->set_size(size);
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  grpc::testing::StreamingOutputCallResponse response;
  for (const size_t size : {3u, 1u, 2u}) {
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.payload().body().size(), size);
  }
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(InteropServerTest, StreamingOutputObservesIntervalUs) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto stub = grpc::testing::TestService::NewStub(ChannelTo(*server));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::testing::StreamingOutputCallRequest request;
  for (int i = 0; i < 2; ++i) {
    auto* params = request.add_response_parameters();
    params->set_size(1);
    params->set_interval_us(50'000);
  }
  const auto start = std::chrono::steady_clock::now();
  auto stream = stub->StreamingOutputCall(&ctx, request);
  grpc::testing::StreamingOutputCallResponse response;
  int count = 0;
  while (stream->Read(&response)) ++count;
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(count, 2);
  // Intervals accumulate: two 50 ms pauses before the last response.
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace curfew::testing
