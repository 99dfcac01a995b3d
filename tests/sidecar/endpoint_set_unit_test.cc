// EndpointSet (sidecar/internal/endpoint_set.h): picks, DNS updates, draining and outlier
// ejection, as tables of steps. No sockets: the pool's side (connections) is not involved.
#include "sidecar/internal/endpoint_set.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::sidecar {
namespace {

using namespace std::chrono_literals;

config::Upstream upstream_of(std::vector<std::string> endpoints,
                             config::Upstream::Balancer balancer) {
  config::Upstream u;
  u.name = "pods";
  u.endpoints = std::move(endpoints);
  u.balancer = balancer;
  return u;
}

std::vector<rt::SocketAddress> addresses(std::initializer_list<const char*> texts) {
  std::vector<rt::SocketAddress> out;
  for (const char* t : texts) out.push_back(rt::SocketAddress::parse(t));
  return out;
}

// Picks `n` times without leases (nothing outstanding): how often each address was chosen.
std::map<std::string, int> picks(EndpointSet& set, int n, rt::TimePoint now,
                                 const TriedEndpoints& tried = {}) {
  std::minstd_rand random(7);
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    auto e = set.pick(tried, now, random);
    seen[e ? e->address_text : "none"]++;
  }
  return seen;
}

std::shared_ptr<Endpoint> find(EndpointSet& set, const std::string& address) {
  for (const auto& e : set.endpoints())
    if (e->address_text == address) return e;
  return nullptr;
}

TEST(EndpointSet, AddressTargetsFormTheSetAtOnceNamesWaitForTheirAnswer) {
  const config::Upstream u = upstream_of({"ipv4:127.0.0.2:80,127.0.0.3:80", "dns:///pods.test:80"},
                                         config::Upstream::Balancer::kRoundRobin);
  EndpointSet set(u, nullptr);
  ASSERT_EQ(set.endpoints().size(), 2u);
  EXPECT_FALSE(set.targets()[1].resolved);
  set.update(1, addresses({"127.0.0.4:80", "127.0.0.5:80"}));
  EXPECT_EQ(set.endpoints().size(), 4u);
  const auto seen = picks(set, 400, rt::TimePoint{});
  EXPECT_EQ(seen.size(), 4u);
  for (const auto& [address, n] : seen) EXPECT_EQ(n, 100) << address;  // round robin
}

TEST(EndpointSet, AnAddressThatLeavesDrainsAndGoesOnceIdle) {
  auto shared = std::make_shared<EndpointSet>(
      upstream_of({"dns:///pods.test:80"}, config::Upstream::Balancer::kPeakEwma), nullptr);
  EndpointSet& set = *shared;
  set.update(0, addresses({"127.0.0.2:80", "127.0.0.3:80"}));
  auto busy = find(set, "127.0.0.2:80");
  EndpointLease lease(shared, busy, nullptr, rt::TimePoint{});
  // .2 leaves while a call holds it; .3 (idle) stays; .4 joins.
  auto idle = set.update(0, addresses({"127.0.0.3:80", "127.0.0.4:80"}));
  EXPECT_TRUE(idle.empty());
  EXPECT_TRUE(busy->draining);
  EXPECT_EQ(set.count(EndpointState::kDraining, rt::TimePoint{}), 1u);
  for (const auto& [address, n] : picks(set, 100, rt::TimePoint{}))
    EXPECT_NE(address, "127.0.0.2:80") << "a draining endpoint was picked";
  lease = EndpointLease();  // the call ends: the endpoint goes
  EXPECT_EQ(find(set, "127.0.0.2:80"), nullptr);
  EXPECT_EQ(set.endpoints().size(), 2u);
  // An idle address leaving goes at once, returned for its connection to be closed.
  idle = set.update(0, addresses({"127.0.0.4:80"}));
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0]->address_text, "127.0.0.3:80");
}

TEST(EndpointSet, PeakEwmaPrefersTheFasterAndTheLessLoaded) {
  EndpointSet set(
      upstream_of({"ipv4:127.0.0.2:80,127.0.0.3:80"}, config::Upstream::Balancer::kPeakEwma),
      nullptr);
  const rt::TimePoint t0{};
  find(set, "127.0.0.2:80")->latency.observe(1ms, t0);
  find(set, "127.0.0.3:80")->latency.observe(20ms, t0);
  // Two endpoints: every pick compares both, and the faster wins...
  EXPECT_EQ(picks(set, 100, t0)["127.0.0.2:80"], 100);
  // ...until it has 20 calls outstanding (cost 21 x 1 ms > 1 x 20 ms).
  find(set, "127.0.0.2:80")->outstanding = 20;
  EXPECT_EQ(picks(set, 100, t0)["127.0.0.3:80"], 100);
}

TEST(EndpointSet, ANewcomerCostsTheMeanOfTheMeasured) {
  EndpointSet set(upstream_of({"dns:///pods.test:80"}, config::Upstream::Balancer::kPeakEwma),
                  nullptr);
  const rt::TimePoint t0{};
  set.update(0, addresses({"127.0.0.2:80", "127.0.0.3:80"}));
  find(set, "127.0.0.2:80")->latency.observe(1ms, t0);
  find(set, "127.0.0.3:80")->latency.observe(3ms, t0);
  set.update(0, addresses({"127.0.0.2:80", "127.0.0.3:80", "127.0.0.4:80"}));
  auto seen = picks(set, 3000, t0);
  // Cost 2 ms: beats .3 (3 ms), loses to .2 (1 ms): picked in the pairs {.3, .4} only.
  EXPECT_NEAR(seen["127.0.0.4:80"], 1000, 150);
  EXPECT_NEAR(seen["127.0.0.2:80"], 2000, 150);
  EXPECT_EQ(seen["127.0.0.3:80"], 0);
}

TEST(EndpointSet, TriedEndpointsArePassedOverWhileOthersRemain) {
  EndpointSet set(upstream_of({"ipv4:127.0.0.2:80,127.0.0.3:80,127.0.0.4:80"},
                              config::Upstream::Balancer::kPeakEwma),
                  nullptr);
  TriedEndpoints tried = {find(set, "127.0.0.2:80")->id, find(set, "127.0.0.3:80")->id};
  EXPECT_EQ(picks(set, 50, rt::TimePoint{}, tried)["127.0.0.4:80"], 50);
  tried.push_back(find(set, "127.0.0.4:80")->id);
  EXPECT_EQ(picks(set, 50, rt::TimePoint{}, tried).count("none"), 0u) << "all tried: any one";
}

struct EjectionStep {
  const char* what;
  int failures_on_2;  // failures reported on 127.0.0.2 at this step
  int failures_on_3;
  rt::Duration at;  // when (since t0)
  bool ejected_2;   // expected after the step
  bool ejected_3;
};

TEST(EndpointSet, OutlierEjectionAsATable) {
  config::Upstream u = upstream_of({"ipv4:127.0.0.2:80,127.0.0.3:80,127.0.0.4:80"},
                                   config::Upstream::Balancer::kPeakEwma);
  u.outlier_detection = {.consecutive_failures = 3,
                         .base_ejection_time = 10s,
                         .max_ejection_time = 25s,
                         .max_ejection_percent = 34};
  EndpointSet set(u, nullptr);
  const rt::TimePoint t0 = rt::TimePoint{} + 1h;
  auto e2 = find(set, "127.0.0.2:80");
  auto e3 = find(set, "127.0.0.3:80");
  const EjectionStep steps[] = {
      {"two failures: not yet", 2, 0, 0s, false, false},
      {"the third in a row ejects", 1, 0, 1s, true, false},
      {"a second endpoint: over 34% of 3, kept", 0, 3, 2s, true, false},
      {"back after 10 s", 0, 0, 12s, false, false},
      {"on probation: one failure ejects again, for 20 s", 1, 0, 13s, true, false},
      {"still out at 32 s", 0, 0, 32s, true, false},
      {"back at 34 s", 0, 0, 34s, false, false},
      {"then capped at max_ejection_time (25 s)", 1, 0, 35s, true, false},
      {"back at 61 s", 0, 0, 61s, false, false},
  };
  for (const EjectionStep& step : steps) {
    SCOPED_TRACE(step.what);
    const rt::TimePoint now = t0 + step.at;
    for (int i = 0; i < step.failures_on_2; ++i) set.failed(*e2, "refused", now);
    for (int i = 0; i < step.failures_on_3; ++i) set.failed(*e3, "refused", now);
    EXPECT_EQ(e2->ejected(now), step.ejected_2);
    EXPECT_EQ(e3->ejected(now), step.ejected_3);
    if (step.ejected_2) {
      for (const auto& [address, n] : picks(set, 50, now))
        EXPECT_NE(address, "127.0.0.2:80") << "an ejected endpoint was picked";
    }
  }
  EXPECT_EQ(set.ejections_total(), 3u);
  // A success clears the run of failures and the probation.
  set.succeeded(*e2);
  set.failed(*e2, "refused", t0 + 62s);
  EXPECT_FALSE(e2->ejected(t0 + 62s));
}

TEST(EndpointSet, NeverTheLastOneStandingAndEjectedOnesServeWhenNothingElseCan) {
  config::Upstream u =
      upstream_of({"ipv4:127.0.0.2:80,127.0.0.3:80"}, config::Upstream::Balancer::kRoundRobin);
  u.outlier_detection.consecutive_failures = 1;
  u.outlier_detection.max_ejection_percent = 100;
  EndpointSet set(u, nullptr);
  const rt::TimePoint now = rt::TimePoint{} + 1h;
  auto e2 = find(set, "127.0.0.2:80");
  auto e3 = find(set, "127.0.0.3:80");
  EXPECT_TRUE(set.failed(*e2, "refused", now).ejected);
  EXPECT_FALSE(set.failed(*e3, "refused", now).ejected) << "the last one standing";
  // Every endpoint ejected (a set of one ejected by hand): picks still answer.
  e3->ejected_until = now + 1s;
  EXPECT_EQ(picks(set, 10, now).count("none"), 0u);
}

}  // namespace
}  // namespace curfew::sidecar
