// Overload: calls refused at once because the listener's or the route's concurrency limit was
// reached are counted by limit (curfew_rejected_total) and as RESOURCE_EXHAUSTED calls.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "metrics_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;

class RejectionAccounting : public MetricsFixture {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    start(R"(
listeners:
  - name: limited
    address: 127.0.0.1:0
    limits: {max_concurrent_calls: 2}
    routes:
      - {name: single, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 30s, max_concurrent_calls: 1}
      - {name: rest, match: {prefix: /}, upstream: demo, timeout: 30s}
upstreams:
  - {name: demo, endpoints: [127.0.0.1:)" +
          std::to_string(backend_->port()) + "]}\n");
    stub_ = Demo::NewStub(channel_to(sidecar_->port("limited")));
  }

  std::unique_ptr<DemoBackend> backend_;
  std::unique_ptr<Demo::Stub> stub_;
};

TEST_F(RejectionAccounting, RefusalsAreCountedByLimit) {
  // Hold the route's only slot (and one of the listener's two) with a slow call.
  grpc::ClientContext slow_ctx;
  std::thread slow([&] {
    demo::SlowRequest request;
    request.set_delay_ms(20'000);
    demo::EchoReply reply;
    stub_->Slow(&slow_ctx, request, &reply);
  });
  ASSERT_TRUE(eventually([&] { return backend_->calls_started() == 1; }));

  // The route is full.
  {
    grpc::ClientContext ctx;
    demo::SlowRequest request;
    demo::EchoReply reply;
    EXPECT_EQ(stub_->Slow(&ctx, request, &reply).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // Hold the listener's second slot with a stream that waits before its second message.
  grpc::ClientContext stream_ctx;
  demo::EchoRequest stream_request;
  stream_request.set_count(2);
  stream_request.set_interval_ms(20'000);
  auto stream = stub_->Stream(&stream_ctx, stream_request);
  demo::EchoReply first;
  ASSERT_TRUE(stream->Read(&first));
  // The listener is full.
  {
    grpc::ClientContext ctx;
    demo::EchoRequest request;
    demo::EchoReply reply;
    EXPECT_EQ(stub_->Echo(&ctx, request, &reply).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_TRUE(eventually([&] { return scrape().sum("curfew_rejected_total") == 2; }));

  Exposition during = scrape();
  EXPECT_EQ(during.value("curfew_rejected_total",
                         {{"listener", "limited"}, {"route", "single"}, {"limit", "route"}}),
            1);
  EXPECT_EQ(during.value("curfew_rejected_total",
                         {{"listener", "limited"}, {"route", "rest"}, {"limit", "listener"}}),
            1);
  EXPECT_EQ(during.sum("curfew_requests_total", {{"grpc_code", "RESOURCE_EXHAUSTED"}}), 2);
  EXPECT_EQ(during.sum("curfew_inflight_requests"), 2) << "the two calls holding the slots";

  slow_ctx.TryCancel();
  stream_ctx.TryCancel();
  slow.join();
  stream->Finish();
  ASSERT_TRUE(all_reported(4));
  Exposition e = scrape();
  EXPECT_EQ(e.sum("curfew_requests_total"), 4);
  EXPECT_EQ(e.sum("curfew_rejected_total"), 2);
  EXPECT_EQ(e.sum("curfew_inflight_requests"), 0);
  EXPECT_EQ(e.sum("curfew_upstream_requests_total"), 2) << "refused calls never reach the upstream";
  EXPECT_EQ(backend_->calls_started(), 2);
}

}  // namespace
}  // namespace curfew::testing
