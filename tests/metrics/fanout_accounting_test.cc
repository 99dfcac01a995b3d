// Exact accounting of fan-out, hedging, retries and mirroring through a real curfew: fan-out
// groups that fail, children that fail and siblings cancelled, hedges that win, retries, and the
// mirror copy. A "dead" upstream is a port nobody listens on: its calls fail UNAVAILABLE at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "metrics_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;

// A port nobody listens on (it was free a moment ago).
int dead_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class FanoutAccounting : public MetricsFixture {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    const std::string live = "127.0.0.1:" + std::to_string(backend_->port());
    const std::string dead = "127.0.0.1:" + std::to_string(dead_port());
    start(R"(
listeners:
  # scatter-gather: Slow fails (one child dead, the other cancelled as a sibling), Echo succeeds
  - name: all
    address: 127.0.0.1:0
    default_timeout: 10s
    routes:
      - name: scatter-fail
        match: {method: /curfew.demo.Demo/Slow}
        fanout: {mode: all, upstreams: [live, dead]}
      - name: scatter-ok
        match: {method: /curfew.demo.Demo/Echo}
        fanout: {mode: all, upstreams: [live, live2]}
  # quorum 2 of 3 with two dead: impossible after the second failure; the live one is cancelled
  - name: quorum
    address: 127.0.0.1:0
    default_timeout: 10s
    routes:
      - name: quorum-fail
        match: {prefix: /}
        fanout: {mode: quorum, upstreams: [dead, dead2, live], quorum: 2}
  # hedge: the first try (dead) fails retryably, the hedge (live) starts at once and wins
  - name: hedge
    address: 127.0.0.1:0
    default_timeout: 10s
    routes:
      - name: hedged
        match: {prefix: /}
        fanout: {mode: hedge, upstreams: [dead, live], delay: 5s}
  # retries: every try fails UNAVAILABLE (3 tries); a mirror copy of every call to the live one
  # the upstream deadline (timeout - deadline_offset) passes in every child before curfew's own
  - name: offset
    address: 127.0.0.1:0
    routes:
      - name: offset
        match: {prefix: /}
        timeout: 500ms
        deadline_offset: 200ms
        fanout: {mode: all, upstreams: [live, live2]}
  - name: retry
    address: 127.0.0.1:0
    default_timeout: 10s
    routes:
      - name: retried
        match: {prefix: /}
        upstream: dead
        retry: {attempts: 3, per_try_timeout: 1s, backoff: {base: 1ms, max: 2ms}, on: [UNAVAILABLE], budget_ratio: 1}
        mirror: {upstream: live, percent: 100}
upstreams:
  - {name: live, endpoints: [)" +
          live + R"(]}
  - {name: live2, endpoints: [)" +
          live + R"(]}
  - {name: dead, endpoints: [)" +
          dead + R"(]}
  - {name: dead2, endpoints: [)" +
          dead + R"(]}
)");
  }

  std::unique_ptr<Demo::Stub> stub(const std::string& listener) {
    return Demo::NewStub(channel_to(sidecar_->port(listener)));
  }
  static grpc::Status echo(Demo::Stub& stub) {
    grpc::ClientContext ctx;
    demo::EchoRequest request;
    demo::EchoReply reply;
    return stub.Echo(&ctx, request, &reply);
  }
  static grpc::Status slow(Demo::Stub& stub, int delay_ms) {
    grpc::ClientContext ctx;
    demo::SlowRequest request;
    request.set_delay_ms(delay_ms);
    demo::EchoReply reply;
    return stub.Slow(&ctx, request, &reply);
  }

  std::unique_ptr<DemoBackend> backend_;
};

TEST_F(FanoutAccounting, GroupsChildrenSiblingsHedgesRetriesAndMirrorsAreCountedExactly) {
  auto all = stub("all"), quorum = stub("quorum"), hedge = stub("hedge"), retry = stub("retry");
  int calls = 0;
  for (int i = 0; i < 2; ++i, ++calls)
    EXPECT_EQ(slow(*all, 5000).error_code(), grpc::StatusCode::UNAVAILABLE);
  for (int i = 0; i < 3; ++i, ++calls) EXPECT_TRUE(echo(*all).ok());
  for (int i = 0; i < 2; ++i, ++calls)
    EXPECT_EQ(slow(*quorum, 5000).error_code(), grpc::StatusCode::UNAVAILABLE);
  for (int i = 0; i < 2; ++i, ++calls) EXPECT_TRUE(echo(*hedge).ok());
  for (int i = 0; i < 2; ++i, ++calls)
    EXPECT_EQ(echo(*retry).error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(all_reported(calls));
  // The mirror copies run as siblings of their calls: reported with them.
  Exposition e = scrape();

  EXPECT_EQ(e.sum("curfew_requests_total"), calls);
  EXPECT_EQ(e.sum("curfew_inflight_requests"), 0);

  // Fan-out groups that failed, by mode; the successful route shows 0.
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "scatter-fail"}, {"mode", "all"}}),
            2);
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "scatter-ok"}, {"mode", "all"}}), 0);
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "quorum-fail"}, {"mode", "quorum"}}),
            2);
  EXPECT_EQ(e.value("curfew_fanout_failures_total", {{"route", "hedged"}, {"mode", "hedge"}}), 0);
  EXPECT_EQ(e.sum("curfew_fanout_failures_total"), 4);

  // The children that failed; the live children cancelled as siblings are not failures.
  EXPECT_EQ(
      e.value("curfew_fanout_child_failures_total",
              {{"route", "scatter-fail"}, {"upstream", "dead"}, {"grpc_code", "UNAVAILABLE"}}),
      2);
  EXPECT_EQ(e.value("curfew_fanout_child_failures_total",
                    {{"route", "quorum-fail"}, {"upstream", "dead"}, {"grpc_code", "UNAVAILABLE"}}),
            2);
  EXPECT_EQ(
      e.value("curfew_fanout_child_failures_total",
              {{"route", "quorum-fail"}, {"upstream", "dead2"}, {"grpc_code", "UNAVAILABLE"}}),
      2);
  EXPECT_EQ(e.value("curfew_fanout_child_failures_total",
                    {{"route", "hedged"}, {"upstream", "dead"}, {"grpc_code", "UNAVAILABLE"}}),
            2);
  EXPECT_EQ(e.sum("curfew_fanout_child_failures_total"), 8);
  EXPECT_EQ(
      e.value("curfew_cancellations_total", {{"route", "scatter-fail"}, {"cause", "sibling"}}), 2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "quorum-fail"}, {"cause", "sibling"}}),
            2);
  EXPECT_EQ(e.sum("curfew_cancellations_total"), 4) << "nothing cancelled on the other routes";

  // Hedging: the hedge (second try) won each time; nothing lost.
  EXPECT_EQ(e.value("curfew_hedges_total", {{"route", "hedged"}, {"outcome", "won"}}), 2);
  EXPECT_EQ(e.sum("curfew_hedges_total"), 2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "hedged"}, {"cause", "hedge_lost"}}),
            0);

  // Retries: 3 tries per call, all failing; the mirror copy of each call reached the backend.
  EXPECT_EQ(e.value("curfew_retries_total", {{"route", "retried"}}), 4);
  EXPECT_EQ(e.value("curfew_retry_budget_exhausted_total", {{"route", "retried"}}), 0);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "retried"}, {"upstream", "dead"}, {"grpc_code", "UNAVAILABLE"}}),
            6);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "retried"}, {"upstream", "live"}, {"grpc_code", "OK"}}),
            2);

  // Every upstream call: scatter 2x2 + 3x2, quorum 2x3, hedge 2x2, retry 2x3 + 2 mirrors.
  EXPECT_EQ(e.sum("curfew_upstream_requests_total"), 4 + 6 + 6 + 4 + 6 + 2);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "scatter-ok"}, {"upstream", "live2"}, {"grpc_code", "OK"}}),
            3);
  EXPECT_EQ(e.value("curfew_upstream_requests_total",
                    {{"route", "scatter-fail"}, {"upstream", "live"}, {"grpc_code", "CANCELLED"}}),
            2);
  // No deadline was involved anywhere.
  EXPECT_EQ(e.sum("curfew_timeouts_total"), 0);
}

// A fan-out call that ends DEADLINE_EXCEEDED because the upstream deadline passed (reachable with
// a deadline_offset: the children hit it before curfew's own timer) is a route timeout, as it is
// for a single upstream.
TEST_F(FanoutAccounting, FanoutCutByTheUpstreamDeadlineIsARouteTimeout) {
  auto offset = stub("offset");
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(slow(*offset, 5000).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(all_reported(2));
  Exposition e = scrape();
  EXPECT_EQ(e.value("curfew_timeouts_total", {{"route", "offset"}, {"cause", "route"}}), 2);
  EXPECT_EQ(e.value("curfew_cancellations_total", {{"route", "offset"}, {"cause", "deadline"}}), 2);
  EXPECT_EQ(e.sum("curfew_timeouts_total"),
            e.sum("curfew_requests_total", {{"grpc_code", "DEADLINE_EXCEEDED"}}));
}

}  // namespace
}  // namespace curfew::testing
