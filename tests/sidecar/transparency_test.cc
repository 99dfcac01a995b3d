// What crosses curfew unchanged: status details, binary metadata both ways, trailers — on the
// streaming path (plain routes) and on the unary-policy path (retry routes).
#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "scripted_upstream.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

class Transparency : public ::testing::TestWithParam<std::string> {
 protected:
  void start(std::function<Script(int)> script) {
    upstream_ = std::make_unique<ScriptedUpstream>("app", std::move(script));
    sidecar_ = start_sidecar(
        "listeners:\n  - name: inbound\n    address: 127.0.0.1:0\n    routes:\n"
        "      - {name: r, match: {prefix: /}, upstream: app" +
        GetParam() +
        "}\n"
        "upstreams:\n  - {name: app, endpoints: [127.0.0.1:" +
        std::to_string(upstream_->port()) + "]}\n");
    ASSERT_NE(sidecar_, nullptr);
    stub_ = demo::Demo::NewStub(channel_to(sidecar_->port("inbound")));
  }
  std::unique_ptr<ScriptedUpstream> upstream_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::unique_ptr<demo::Demo::Stub> stub_;
};

TEST_P(Transparency, StatusCodeMessageAndDetailsPassThroughUnchanged) {
  google::rpc::Status rich;
  rich.set_code(grpc::StatusCode::FAILED_PRECONDITION);
  rich.set_message("stock is reserved");
  google::rpc::ErrorInfo info;
  info.set_reason("RESERVED");
  info.set_domain("shop.example");
  (*info.mutable_metadata())["sku"] = "42";
  rich.add_details()->PackFrom(info);
  const std::string message = "\t\nreserved\r\n by \xe2\x98\xba and \xf0\x9f\x98\x88\t\n";
  start(always({.code = grpc::StatusCode::FAILED_PRECONDITION,
                .message = message,
                .details = rich.SerializeAsString()}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  demo::EchoRequest request;
  demo::EchoReply reply;
  grpc::Status status = stub_->Echo(&ctx, request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), message);
  EXPECT_EQ(status.error_details(), rich.SerializeAsString());
}

TEST_P(Transparency, BinaryMetadataAndTrailersCrossBothWays) {
  const std::string binary("\x00\x01\xfe\xff", 4);
  start(always({.trailers = {{"x-trailer-bin", binary}, {"x-trailer", "t"}}}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  ctx.AddMetadata("x-request-bin", binary);
  ctx.AddMetadata("x-request", "r");
  demo::EchoRequest request;
  demo::EchoReply reply;
  ASSERT_TRUE(stub_->Echo(&ctx, request, &reply).ok());
  auto seen = upstream_->last_metadata();
  ASSERT_EQ(seen.count("x-request-bin"), 1u);
  EXPECT_EQ(seen.find("x-request-bin")->second, binary);
  EXPECT_EQ(seen.find("x-request")->second, "r");
  const auto& trailers = ctx.GetServerTrailingMetadata();
  ASSERT_EQ(trailers.count("x-trailer-bin"), 1u);
  const auto& value = trailers.find("x-trailer-bin")->second;
  EXPECT_EQ(std::string(value.data(), value.size()), binary);
  EXPECT_EQ(trailers.count("x-trailer"), 1u);
}

// Plain route (streaming path) and a retry route (buffered unary path).
INSTANTIATE_TEST_SUITE_P(
    Paths, Transparency,
    ::testing::Values("", ", retry: {attempts: 2, per_try_timeout: 1s, on: [UNAVAILABLE]}"),
    [](const auto& info) { return info.param.empty() ? "Streaming" : "Unary"; });

}  // namespace
}  // namespace curfew::testing
