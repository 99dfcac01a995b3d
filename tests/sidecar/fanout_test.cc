// Fan-out routes (all, quorum, hedge), retries and mirroring, against several real upstream
// servers on 127.0.0.1 whose behaviour each test scripts; checked from the upstream side.
#include <chrono>
#include <map>

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "scripted_upstream.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using grpc::StatusCode;

class FanoutTest : public ::testing::Test {
 protected:
  ScriptedUpstream& upstream(const std::string& name, std::function<Script(int)> script) {
    upstreams_.push_back(std::make_unique<ScriptedUpstream>(name, std::move(script)));
    return *upstreams_.back();
  }

  // Starts curfew with one route (YAML flow mapping body, without name/match) over the upstreams
  // created so far.
  void start(const std::string& route, const std::string& listener_timeout = "2s") {
    std::string yaml =
        "listeners:\n  - name: inbound\n    address: 127.0.0.1:0\n    default_timeout: " +
        listener_timeout + "\n    routes:\n      - {name: r, match: {prefix: /}, " + route +
        "}\nupstreams:\n";
    for (auto& u : upstreams_) {
      yaml += "  - {name: " + u->name() + ", endpoints: [127.0.0.1:" + std::to_string(u->port()) +
              "]}\n";
    }
    sidecar_ = start_sidecar(yaml);
    ASSERT_NE(sidecar_, nullptr);
    stub_ = demo::Demo::NewStub(channel_to(sidecar_->port("inbound")));
  }

  grpc::Status echo(demo::EchoReply* reply, std::chrono::steady_clock::duration* took = nullptr,
                    grpc::ClientContext* ctx_in = nullptr) {
    grpc::ClientContext local;
    grpc::ClientContext& ctx = ctx_in ? *ctx_in : local;
    demo::EchoRequest request;
    request.set_message("hi");
    const auto start = std::chrono::steady_clock::now();
    grpc::Status status = stub_->Echo(&ctx, request, reply);
    if (took) *took = std::chrono::steady_clock::now() - start;
    return status;
  }

  // The per-child details of an aggregated fan-out failure, by upstream.
  static std::map<std::string, google::rpc::ErrorInfo> details(const grpc::Status& status) {
    google::rpc::Status rich;
    EXPECT_TRUE(rich.ParseFromString(status.error_details())) << "no google.rpc.Status details";
    EXPECT_EQ(rich.code(), status.error_code());
    EXPECT_EQ(rich.message(), status.error_message());
    std::map<std::string, google::rpc::ErrorInfo> by_upstream;
    for (const auto& any : rich.details()) {
      google::rpc::ErrorInfo info;
      EXPECT_TRUE(any.UnpackTo(&info));
      EXPECT_EQ(info.domain(), "curfew.fanout");
      by_upstream[info.metadata().at("upstream")] = info;
    }
    return by_upstream;
  }

  void TearDown() override {
    // No child call outlives its caller's call: once the caller has its answer, every upstream
    // call has ended (completed or cancelled) — allowing the upstream a moment to notice.
    for (auto& u : upstreams_) {
      EXPECT_TRUE(eventually([&] { return u->active() == 0; }, 2s))
          << u->name() << " still has " << u->active() << " calls running";
    }
    sidecar_.reset();
  }

  std::vector<std::unique_ptr<ScriptedUpstream>> upstreams_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::unique_ptr<demo::Demo::Stub> stub_;
};

TEST_F(FanoutTest, AllSucceedsAndMergesResponsesAsProtobufMergeInConfiguredOrder) {
  upstream("shard-a", always({.delay = 30ms}));
  upstream("shard-b", always({}));
  upstream("shard-c", always({.delay = 10ms}));
  start("fanout: {mode: all, upstreams: [shard-a, shard-b, shard-c], merge: concat}");
  demo::EchoReply reply;
  ASSERT_TRUE(echo(&reply).ok());
  // The merge of the three parts, as protobuf defines it.
  demo::EchoReply expected;
  for (const char* name : {"shard-a", "shard-b", "shard-c"}) {
    demo::EchoReply part;
    part.set_message(std::string("hi from ") + name);
    part.add_parts(name);
    expected.MergeFrom(part);
  }
  EXPECT_EQ(reply.SerializeAsString(), expected.SerializeAsString()) << reply.DebugString();
  EXPECT_EQ(reply.parts_size(), 3);
}

TEST_F(FanoutTest, AllFirstFailureCancelsEverySiblingQuicklyAndAggregates) {
  auto& a = upstream("shard-a", always({.hang = true}));
  auto& b = upstream(
      "shard-b",
      always({.delay = 50ms, .code = StatusCode::UNAVAILABLE, .message = "shard b is down"}));
  auto& c = upstream("shard-c", always({.hang = true}));
  start("timeout: 10s, fanout: {mode: all, upstreams: [shard-a, shard-b, shard-c]}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  grpc::Status status = echo(&reply, &took);
  EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_LT(took, 2s) << "siblings must be cancelled at the first failure, not awaited";
  EXPECT_EQ(status.error_message(),
            "curfew: fan-out (all) on route 'r' failed: 1 of 3 upstreams failed: shard-b: "
            "UNAVAILABLE: shard b is down");
  auto children = details(status);
  ASSERT_EQ(children.size(), 3u);
  EXPECT_EQ(children["shard-b"].reason(), "UNAVAILABLE");
  EXPECT_EQ(children["shard-b"].metadata().at("outcome"), "failed");
  EXPECT_EQ(children["shard-b"].metadata().at("message"), "shard b is down");
  for (const char* sibling : {"shard-a", "shard-c"}) {
    EXPECT_EQ(children[sibling].reason(), "CANCELLED") << sibling;
    EXPECT_EQ(children[sibling].metadata().at("outcome"), "cancelled") << sibling;
  }
  EXPECT_TRUE(eventually([&] { return a.cancelled() == 1 && c.cancelled() == 1; }, 2s))
      << "the upstreams of the siblings did not see RST_STREAM CANCEL";
  EXPECT_EQ(b.cancelled(), 0);
}

TEST_F(FanoutTest, QuorumSucceedsAtKAndCancelsTheSurplus) {
  upstream("q1", always({}));
  upstream("q2", always({.delay = 20ms}));
  auto& q3 = upstream("q3", always({.hang = true}));
  start("timeout: 10s, fanout: {mode: quorum, upstreams: [q1, q2, q3], quorum: 2}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  ASSERT_TRUE(echo(&reply, &took).ok());
  EXPECT_LT(took, 2s);
  EXPECT_EQ(reply.parts_size(), 2);
  EXPECT_TRUE(eventually([&] { return q3.cancelled() == 1; }, 2s))
      << "quorum surplus not cancelled";
}

TEST_F(FanoutTest, QuorumFailsAsSoonAsSuccessIsImpossible) {
  upstream("q1", always({.code = StatusCode::RESOURCE_EXHAUSTED, .message = "busy"}));
  upstream("q2", always({.delay = 30ms, .code = StatusCode::INTERNAL, .message = "bug"}));
  auto& q3 = upstream("q3", always({.hang = true}));
  start("timeout: 10s, fanout: {mode: quorum, upstreams: [q1, q2, q3], quorum: 2}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  grpc::Status status = echo(&reply, &took);
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED) << "the first failure's code";
  EXPECT_LT(took, 2s);
  auto children = details(status);
  EXPECT_EQ(children["q1"].metadata().at("outcome"), "failed");
  EXPECT_EQ(children["q2"].metadata().at("outcome"), "failed");
  EXPECT_EQ(children["q3"].metadata().at("outcome"), "cancelled");
  EXPECT_TRUE(eventually([&] { return q3.cancelled() == 1; }, 2s));
}

TEST_F(FanoutTest, HedgeLoserIsCancelled) {
  auto& slow = upstream("pricing-a", always({.delay = 2s}));
  auto& fast = upstream("pricing-b", always({}));
  start("timeout: 10s, fanout: {mode: hedge, upstreams: [pricing-a, pricing-b], delay: 20ms}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  ASSERT_TRUE(echo(&reply, &took).ok());
  EXPECT_EQ(reply.message(), "hi from pricing-b");
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(fast.started(), 1);
  EXPECT_TRUE(eventually([&] { return slow.cancelled() == 1; }, 2s)) << "hedge loser not cancelled";
}

TEST_F(FanoutTest, HedgeFirstAnswerInTimeNeedsNoHedge) {
  upstream("pricing-a", always({}));
  auto& b = upstream("pricing-b", always({}));
  start("timeout: 10s, fanout: {mode: hedge, upstreams: [pricing-a, pricing-b], delay: 500ms}");
  demo::EchoReply reply;
  ASSERT_TRUE(echo(&reply).ok());
  EXPECT_EQ(reply.message(), "hi from pricing-a");
  EXPECT_EQ(b.started(), 0);
}

TEST_F(FanoutTest, HedgeNonRetryableFailureStopsHedging) {
  upstream("pricing-a", always({.code = StatusCode::INVALID_ARGUMENT, .message = "bad sku"}));
  auto& b = upstream("pricing-b", always({}));
  start("timeout: 10s, fanout: {mode: hedge, upstreams: [pricing-a, pricing-b], delay: 200ms}");
  demo::EchoReply reply;
  grpc::Status status = echo(&reply);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "bad sku") << "the upstream's own status, untouched";
  EXPECT_EQ(b.started(), 0);
}

TEST_F(FanoutTest, HedgeRetryableFailureStartsTheNextAtOnce) {
  upstream("pricing-a", always({.code = StatusCode::UNAVAILABLE, .message = "down"}));
  upstream("pricing-b", always({}));
  start("timeout: 10s, fanout: {mode: hedge, upstreams: [pricing-a, pricing-b], delay: 5s}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  ASSERT_TRUE(echo(&reply, &took).ok());
  EXPECT_EQ(reply.message(), "hi from pricing-b");
  EXPECT_LT(took, 2s) << "must not wait for the 5 s hedge delay after a retryable failure";
}

TEST_F(FanoutTest, FanoutDeadlineCancelsEveryChild) {
  auto& a = upstream("shard-a", always({.hang = true}));
  auto& b = upstream("shard-b", always({.hang = true}));
  start("timeout: 200ms, fanout: {mode: all, upstreams: [shard-a, shard-b]}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  grpc::Status status = echo(&reply, &took);
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("route 'r'"), std::string::npos) << status.error_message();
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(eventually([&] { return a.cancelled() == 1 && b.cancelled() == 1; }, 2s));
}

TEST_F(FanoutTest, FanoutRouteRefusesASecondRequestMessage) {
  upstream("shard-a", always({}));
  upstream("shard-b", always({}));
  start("fanout: {mode: all, upstreams: [shard-a, shard-b]}");
  // A client stream on a unary-policy route: the generic stub lets us send two messages.
  grpc::GenericStub stub(channel_to(sidecar_->port("inbound")));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  auto call = stub.PrepareCall(&ctx, "/curfew.demo.Demo/Echo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  demo::EchoRequest request;
  grpc::Slice slice(request.SerializeAsString());
  grpc::ByteBuffer message(&slice, 1);
  for (int i = 0; i < 2; ++i) {
    call->Write(message, reinterpret_cast<void*>(2));
    ASSERT_TRUE(cq.Next(&tag, &ok));
  }
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("unary calls only"), std::string::npos);
  call.reset();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(FanoutTest, RetryRetriesListedCodesThenSucceeds) {
  auto& u = upstream("inventory", [](int n) {
    return n < 2 ? Script{.code = StatusCode::UNAVAILABLE, .message = "flaky"} : Script{};
  });
  start(
      "upstream: inventory, timeout: 5s, retry: {attempts: 3, per_try_timeout: 1s, backoff: {base: "
      "5ms, max: 20ms}, on: [UNAVAILABLE]}");
  demo::EchoReply reply;
  ASSERT_TRUE(echo(&reply).ok());
  EXPECT_EQ(u.started(), 3);
}

TEST_F(FanoutTest, RetryDoesNotRetryUnlistedCodes) {
  auto& u = upstream("inventory", always({.code = StatusCode::INTERNAL, .message = "bug"}));
  start(
      "upstream: inventory, timeout: 5s, retry: {attempts: 3, per_try_timeout: 1s, on: "
      "[UNAVAILABLE]}");
  demo::EchoReply reply;
  EXPECT_EQ(echo(&reply).error_code(), StatusCode::INTERNAL);
  EXPECT_EQ(u.started(), 1);
}

TEST_F(FanoutTest, RetriesStopAtTheCallDeadline) {
  auto& u = upstream("inventory", always({.hang = true}));
  start(
      "upstream: inventory, timeout: 350ms, retry: {attempts: 10, per_try_timeout: 100ms, backoff: "
      "{base: 1ms, max: 2ms}, on: [UNAVAILABLE]}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took;
  grpc::Status status = echo(&reply, &took);
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(took, 2s);
  EXPECT_GE(u.started(), 2) << "per-try timeouts are retried while time remains";
  EXPECT_LE(u.started(), 4) << "no try may start after the 350 ms deadline";
}

TEST_F(FanoutTest, ServerPushbackStopsRetrying) {
  auto& u = upstream("inventory", always({.code = StatusCode::UNAVAILABLE,
                                          .message = "go away",
                                          .trailers = {{"grpc-retry-pushback-ms", "-1"}}}));
  start(
      "upstream: inventory, timeout: 5s, retry: {attempts: 3, per_try_timeout: 1s, on: "
      "[UNAVAILABLE]}");
  demo::EchoReply reply;
  EXPECT_EQ(echo(&reply).error_code(), StatusCode::UNAVAILABLE);
  EXPECT_EQ(u.started(), 1);
}

TEST_F(FanoutTest, RetryBudgetBoundsRetriesDuringAnOutage) {
  auto& u = upstream("inventory", always({.code = StatusCode::UNAVAILABLE, .message = "outage"}));
  start(
      "upstream: inventory, timeout: 5s, retry: {attempts: 3, per_try_timeout: 1s, backoff: {base: "
      "1ms, max: 1ms}, on: [UNAVAILABLE]}");
  constexpr int kCalls = 60;
  for (int i = 0; i < kCalls; ++i) {
    demo::EchoReply reply;
    EXPECT_EQ(echo(&reply).error_code(), StatusCode::UNAVAILABLE);
  }
  // Unbounded, 60 calls x 3 attempts = 180 upstream calls. The default budget allows retries of
  // 20% of calls plus a floor of 3 per worker thread (2 workers here).
  const int retries = u.started() - kCalls;
  EXPECT_LE(retries, static_cast<int>(0.2 * kCalls) + 2 * 3 + 2) << u.started();
  EXPECT_GE(retries, 1);
}

TEST_F(FanoutTest, MirrorGetsACopyAndNeverAffectsTheReply) {
  auto& primary = upstream("inventory", always({}));
  auto& canary =
      upstream("inventory-canary", always({.code = StatusCode::INTERNAL, .message = "canary bug"}));
  start("upstream: inventory, timeout: 5s, mirror: {upstream: inventory-canary, percent: 100}");
  for (int i = 0; i < 3; ++i) {
    demo::EchoReply reply;
    ASSERT_TRUE(echo(&reply).ok());
    EXPECT_EQ(reply.message(), "hi from inventory");
  }
  EXPECT_EQ(primary.started(), 3);
  EXPECT_TRUE(eventually([&] { return canary.started() == 3; }));
}

// The shadow runs detached from its call: the reply leaves when the primary answers, however
// long the shadow takes (it is still sent, bounded by the call's deadline).
TEST_F(FanoutTest, TheReplyNeverWaitsForTheMirror) {
  upstream("inventory", always({}));
  auto& canary = upstream("inventory-canary", always({.delay = 1500ms}));
  start("upstream: inventory, timeout: 5s, mirror: {upstream: inventory-canary, percent: 100}");
  demo::EchoReply reply;
  std::chrono::steady_clock::duration took{};
  ASSERT_TRUE(echo(&reply, &took).ok());
  EXPECT_LT(took, 1000ms) << "the reply waited for the shadow (1.5 s)";
  EXPECT_TRUE(eventually([&] { return canary.completed() == 1; }, 5s));
}

// A shadow still running when the listener shuts down is cancelled, not waited for until its
// deadline.
TEST_F(FanoutTest, ShutdownCancelsShadowsStillRunning) {
  upstream("inventory", always({}));
  auto& canary = upstream("inventory-canary", always({.hang = true}));
  start("upstream: inventory, timeout: 20s, mirror: {upstream: inventory-canary, percent: 100}");
  demo::EchoReply reply;
  ASSERT_TRUE(echo(&reply).ok());
  ASSERT_TRUE(eventually([&] { return canary.started() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  sidecar_->drain();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_TRUE(eventually([&] { return canary.cancelled() == 1; }, 5s));
}

TEST_F(FanoutTest, MirrorAtZeroPercentSendsNothing) {
  upstream("inventory", always({}));
  auto& canary = upstream("inventory-canary", always({}));
  start("upstream: inventory, timeout: 5s, mirror: {upstream: inventory-canary, percent: 0}");
  demo::EchoReply reply;
  ASSERT_TRUE(echo(&reply).ok());
  EXPECT_EQ(canary.started(), 0);
}

TEST_F(FanoutTest, CallerCancelCancelsEveryChild) {
  auto& a = upstream("shard-a", always({.hang = true}));
  auto& b = upstream("shard-b", always({.hang = true}));
  start("timeout: 10s, fanout: {mode: all, upstreams: [shard-a, shard-b]}");
  grpc::ClientContext ctx;
  std::thread canceller([&] {
    eventually([&] { return a.started() == 1 && b.started() == 1; });
    ctx.TryCancel();
  });
  demo::EchoReply reply;
  EXPECT_EQ(echo(&reply, nullptr, &ctx).error_code(), StatusCode::CANCELLED);
  canceller.join();
  EXPECT_TRUE(eventually([&] { return a.cancelled() == 1 && b.cancelled() == 1; }, 2s));
}

}  // namespace
}  // namespace curfew::testing
