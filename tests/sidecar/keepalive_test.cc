// HTTP/2 keepalive to upstreams on the nghttp2 data path (upstreams[].keepalive_time/_timeout):
// while calls are open and the upstream has sent nothing for keepalive_time, curfew PINGs it; an
// upstream that answers nothing within keepalive_timeout is gone, and its calls fail UNAVAILABLE
// at once instead of waiting for their deadlines. A slow upstream that answers PINGs keeps its
// connection, and an idle connection gets no PINGs (gRPC servers punish those). Real grpc++
// callers; the upstream is written frame by frame (raw_h2_upstream.h), since no library goes
// silent without closing on demand.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "raw_h2_upstream.h"
#include "raw_upstream_call.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using Action = RawH2Upstream::Action;
using namespace std::chrono_literals;

class ClosedConnections final : public sidecar::ConnectionObserver {
 public:
  void connection_opened(sidecar::ConnectionSide) override {}
  void connection_closed(sidecar::ConnectionSide side, h2::CloseReason reason) override {
    if (side == sidecar::ConnectionSide::kUpstream && reason == h2::CloseReason::kKeepaliveTimeout)
      ++keepalive_timeouts;
  }
  void upstream_connect_failed(sidecar::ConnectFailure) override {}
  std::atomic<int> keepalive_timeouts{0};
};

// Keepalive intervals this short are for tests only: the config file refuses a keepalive_time
// under 10 s (gRPC servers punish such PINGs), so they are set in the loaded config.
std::unique_ptr<sidecar::Sidecar> start(int upstream_port, std::chrono::milliseconds time,
                                        std::chrono::milliseconds timeout,
                                        sidecar::ConnectionObserver* connections) {
  return start_to_raw_upstream(upstream_port, "", "", nullptr, connections,
                               [&](config::Config& config) {
                                 config.upstreams[0].keepalive_time = time;
                                 config.upstreams[0].keepalive_timeout = timeout;
                               });
}

// The keepalive closes reach the observer as the connection's task ends, possibly after the
// caller has its status: waits for them (bounded).
bool keepalive_timeouts_become(const ClosedConnections& connections, int n) {
  for (int i = 0; i < 500; ++i) {  // 5 s
    if (connections.keepalive_timeouts.load() == n) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(Keepalive, AnUpstreamThatAnswersNothingFailsItsCallsAtTheFirstUnansweredPing) {
  RawH2Upstream upstream({Action::kGoSilent});
  ClosedConnections connections;
  auto sidecar = start(upstream.port(), 200ms, 300ms, &connections);
  ASSERT_NE(sidecar, nullptr);
  const auto began = std::chrono::steady_clock::now();
  const Result r = unary_call(sidecar->port("inbound"), 100, 20s);
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  // ~0.5 s (PING after 200 ms, 300 ms without an answer); far from the 20 s deadline. Generous.
  EXPECT_LT(took, 10s);
  EXPECT_TRUE(keepalive_timeouts_become(connections, 1));
  // The next call gets a new connection, which answers.
  const Result again = unary_call(sidecar->port("inbound"), 100);
  EXPECT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.reply, grpc_message(100).substr(5));
  EXPECT_EQ(upstream.connections(), 2);
}

TEST(Keepalive, ASlowUpstreamThatAnswersPingsKeepsItsConnectionAndAnIdleOneGetsNoPings) {
  RawH2Upstream upstream({Action::kAnswerAfterPings});
  ClosedConnections connections;
  auto sidecar = start(upstream.port(), 100ms, 2s, &connections);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 100);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.reply, grpc_message(100).substr(5));
  EXPECT_GE(upstream.pings(), 3);  // the upstream answered only after its third PING
  // Idle now: no call open, so no PING, however long (10 keepalive intervals here).
  const int pings = upstream.pings();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(upstream.pings(), pings);
  EXPECT_EQ(connections.keepalive_timeouts.load(), 0);
  EXPECT_EQ(upstream.connections(), 1);
}

TEST(Keepalive, OffASilentUpstreamHoldsTheCallToItsDeadline) {
  RawH2Upstream upstream({Action::kGoSilent});
  ClosedConnections connections;
  auto sidecar = start(upstream.port(), 0ms, 20s, &connections);
  ASSERT_NE(sidecar, nullptr);
  const Result r = unary_call(sidecar->port("inbound"), 100, 1s);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << r.status.error_message();
  EXPECT_EQ(upstream.pings(), 0);
  EXPECT_EQ(connections.keepalive_timeouts.load(), 0);
}

}  // namespace
}  // namespace curfew::testing
