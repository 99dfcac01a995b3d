// Transparent retry on the nghttp2 data path (RFC 9113 §8.7, gRFC A6): a stream the upstream
// refused unprocessed — RST_STREAM REFUSED_STREAM, or above the last stream id of a GOAWAY — is
// sent again once on another stream (a new connection after a GOAWAY), byte for byte, and the
// caller never sees the refusal; twice refused, the caller gets UNAVAILABLE saying so. Real
// grpc++ callers; the upstream is written frame by frame (raw_h2_upstream.h), since no library
// refuses a chosen stream on demand.
#include <atomic>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "raw_h2_upstream.h"
#include "raw_upstream_call.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using Action = RawH2Upstream::Action;
using namespace std::chrono_literals;

class CountingObserver final : public sidecar::CallObserver {
 public:
  void call_started(const std::string&, const std::string*) override {}
  void call_finished(const sidecar::CallReport& r) override {
    transparent_retries += r.transparent_retries;
    retries += r.retries;
  }
  std::atomic<int> transparent_retries{0};
  std::atomic<int> retries{0};
};

std::unique_ptr<sidecar::Sidecar> start(int upstream_port, const std::string& route_extra,
                                        sidecar::CallObserver* observer) {
  return start_to_raw_upstream(upstream_port, route_extra, "", observer);
}

TEST(TransparentRetry, AStreamRefusedUnprocessedIsSentAgainByteForByte) {
  RawH2Upstream upstream({Action::kRefuse});
  CountingObserver observer;
  auto sidecar = start(upstream.port(), "", &observer);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 3000);
  EXPECT_TRUE(r.status.ok()) << r.status.error_code() << " " << r.status.error_message();
  EXPECT_EQ(r.reply, grpc_message(3000).substr(5));
  const auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].action, Action::kRefuse);
  EXPECT_EQ(seen[1].action, Action::kAnswer);
  EXPECT_EQ(seen[1].body, grpc_message(3000)) << "the replayed request differs";
  EXPECT_EQ(seen[0].connection, seen[1].connection);  // the connection itself was fine
  sidecar.reset();
  EXPECT_EQ(observer.transparent_retries.load(), 1);
  EXPECT_EQ(observer.retries.load(), 0);  // not a retry: the upstream never processed it
}

TEST(TransparentRetry, AStreamAboveAGoawaysLastStreamGoesToANewConnection) {
  RawH2Upstream upstream({Action::kGoaway});
  CountingObserver observer;
  auto sidecar = start(upstream.port(), "", &observer);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 100);
  EXPECT_TRUE(r.status.ok()) << r.status.error_code() << " " << r.status.error_message();
  EXPECT_EQ(r.reply, grpc_message(100).substr(5));
  const auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0].connection, seen[1].connection);
  EXPECT_EQ(seen[1].body, grpc_message(100));
  EXPECT_EQ(upstream.connections(), 2);
  sidecar.reset();
  EXPECT_EQ(observer.transparent_retries.load(), 1);
}

TEST(TransparentRetry, RefusedTwiceTheCallerGetsUnavailableSayingSo) {
  RawH2Upstream upstream({Action::kRefuse, Action::kRefuse});
  auto sidecar = start(upstream.port(), "", nullptr);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 100);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(r.status.error_message().find("HTTP/2 error 7"), std::string::npos)
      << r.status.error_message();
  EXPECT_EQ(upstream.seen().size(), 2u);  // once sent again, not more
}

// Past what curfew keeps for a replay (64 KiB) the refusal reaches the caller.
TEST(TransparentRetry, ARequestTooLargeToKeepIsNotSentAgain) {
  RawH2Upstream upstream({Action::kRefuse});
  auto sidecar = start(upstream.port(), "", nullptr);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 200 << 10);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_EQ(upstream.seen().size(), 1u);
}

// Routes whose request is buffered whole (retry, fan-out, mirror) do the same, and it is not
// one of the route's retries.
TEST(TransparentRetry, ARetryRouteSendsARefusedStreamAgainWithoutSpendingARetry) {
  RawH2Upstream upstream({Action::kRefuse});
  CountingObserver observer;
  auto sidecar = start(upstream.port(),
                       ", retry: {attempts: 2, per_try_timeout: 2s, on: [UNAVAILABLE]}", &observer);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 100);
  EXPECT_TRUE(r.status.ok()) << r.status.error_code() << " " << r.status.error_message();
  EXPECT_EQ(r.reply, grpc_message(100).substr(5));
  EXPECT_EQ(upstream.seen().size(), 2u);
  sidecar.reset();
  EXPECT_EQ(observer.retries.load(), 0);
}

}  // namespace
}  // namespace curfew::testing
