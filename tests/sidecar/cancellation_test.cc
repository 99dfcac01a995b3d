// Cancellation through curfew, observed by the upstream server: the caller cancelling, the
// caller's deadline passing, for unary and each streaming kind.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "grpc/testing/test.grpc.pb.h"
#include "interop_server.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

std::string config_for(int port) {
  return R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    default_timeout: 30s
    routes:
      - {name: all, match: {prefix: /}, upstream: backend}
upstreams:
  - {name: backend, endpoints: [127.0.0.1:)" +
         std::to_string(port) + "]}\n";
}

TEST(Cancellation, CallerCancelsUnaryCallAndUpstreamObservesIt) {
  auto backend = DemoBackend::Start("127.0.0.1:0");
  auto sidecar = start_sidecar(config_for(backend->port()));
  auto stub = demo::Demo::NewStub(channel_to(sidecar->port("inbound")));
  grpc::ClientContext ctx;
  demo::SlowRequest request;
  request.set_delay_ms(20'000);
  demo::EchoReply reply;
  std::thread canceller([&] {
    eventually([&] { return backend->calls_started() == 1; });
    ctx.TryCancel();
  });
  grpc::Status status = stub->Slow(&ctx, request, &reply);
  canceller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(eventually([&] { return backend->slow_calls_cancelled() == 1; }, 3s))
      << "curfew did not cancel the upstream call";
}

class StreamingCancellation : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = InteropServer::Start("127.0.0.1:0");
    sidecar_ = start_sidecar(config_for(server_->port()));
    stub_ = grpc::testing::TestService::NewStub(channel_to(sidecar_->port("inbound")));
  }
  bool upstream_saw_cancellation() {
    return eventually([&] { return server_->cancellations_observed() >= 1; }, 3s);
  }
  std::unique_ptr<InteropServer> server_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::unique_ptr<grpc::testing::TestService::Stub> stub_;
};

TEST_F(StreamingCancellation, ServerStreamingCallerCancels) {
  grpc::ClientContext ctx;
  grpc::testing::StreamingOutputCallRequest request;
  for (int i = 0; i < 50; ++i) request.add_response_parameters()->set_interval_us(100'000);
  auto reader = stub_->StreamingOutputCall(&ctx, request);
  grpc::testing::StreamingOutputCallResponse response;
  ASSERT_TRUE(reader->Read(&response));
  ctx.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(upstream_saw_cancellation());
}

TEST_F(StreamingCancellation, ClientStreamingCallerCancels) {
  grpc::ClientContext ctx;
  grpc::testing::StreamingInputCallResponse response;
  auto writer = stub_->StreamingInputCall(&ctx, &response);
  grpc::testing::StreamingInputCallRequest request;
  request.mutable_payload()->set_body(std::string(100, 'x'));
  ASSERT_TRUE(writer->Write(request));
  EXPECT_TRUE(eventually([&] { return server_->calls_started() == 1; }));
  ctx.TryCancel();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(upstream_saw_cancellation());
}

TEST_F(StreamingCancellation, BidiStreamingCallerCancels) {
  grpc::ClientContext ctx;
  auto stream = stub_->FullDuplexCall(&ctx);
  grpc::testing::StreamingOutputCallRequest request;
  request.add_response_parameters()->set_size(10);
  ASSERT_TRUE(stream->Write(request));
  grpc::testing::StreamingOutputCallResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ctx.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(upstream_saw_cancellation());
}

TEST_F(StreamingCancellation, BidiStreamingCallerDeadlinePasses) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 300ms);
  auto stream = stub_->FullDuplexCall(&ctx);
  grpc::testing::StreamingOutputCallRequest request;
  request.add_response_parameters()->set_size(10);
  ASSERT_TRUE(stream->Write(request));
  grpc::testing::StreamingOutputCallResponse response;
  ASSERT_TRUE(stream->Read(&response));
  // Now idle: the caller neither writes nor closes; the deadline must end it everywhere.
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(upstream_saw_cancellation());
}

TEST_F(StreamingCancellation, RouteDeadlineOnIdleBidiStreamAnswersDeadlineExceeded) {
  // The deadline fires while curfew waits for the caller's next message: the caller must get
  // DEADLINE_EXCEEDED from curfew (not CANCELLED or UNAVAILABLE).
  sidecar_.reset();
  sidecar_ = start_sidecar(R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    routes:
      - {name: duplex, match: {prefix: /}, upstream: backend, timeout: 200ms}
upstreams:
  - {name: backend, endpoints: [127.0.0.1:)" +
                           std::to_string(server_->port()) + "]}\n");
  stub_ = grpc::testing::TestService::NewStub(channel_to(sidecar_->port("inbound")));
  grpc::ClientContext ctx;
  auto stream = stub_->FullDuplexCall(&ctx);
  grpc::testing::StreamingOutputCallResponse response;
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_NE(status.error_message().find("route 'duplex'"), std::string::npos)
      << status.error_message();
}

TEST_F(StreamingCancellation, RouteDeadlineAfterResponsesWereWrittenStillAnswersDeadlineExceeded) {
  // As above, but curfew has already written a response to the caller: the deadline must still
  // reach the caller as DEADLINE_EXCEEDED, not as a reset.
  sidecar_.reset();
  sidecar_ = start_sidecar(R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    routes:
      - {name: duplex, match: {prefix: /}, upstream: backend, timeout: 300ms}
upstreams:
  - {name: backend, endpoints: [127.0.0.1:)" +
                           std::to_string(server_->port()) + "]}\n");
  stub_ = grpc::testing::TestService::NewStub(channel_to(sidecar_->port("inbound")));
  grpc::ClientContext ctx;
  auto stream = stub_->FullDuplexCall(&ctx);
  grpc::testing::StreamingOutputCallRequest request;
  request.add_response_parameters()->set_size(10);
  ASSERT_TRUE(stream->Write(request));
  grpc::testing::StreamingOutputCallResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_FALSE(stream->Read(&response));  // idle until the route deadline
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_NE(status.error_message().find("route 'duplex'"), std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace curfew::testing
