// Upstreams as endpoint sets, end to end: a DNS name served by dnsmasq (tests/dns/dnsmasq.h)
// resolves to several loopback addresses (127.0.0.2, .3, .4, ...), each a real grpc++ server on
// the same port; curfew (in-process, one worker) routes Demo/Echo to "dns://<dnsmasq>/pods.test:P"
// and grpc++ callers call it. Each server counts the calls it served, so every claim is read from
// outside curfew: calls spread over every address; an address added to or removed from DNS joins
// or leaves without a failed call; a killed endpoint is ejected and the others serve; a slow
// endpoint gets fewer calls under peak-EWMA than under round robin; a retry goes to another
// endpoint; a reload that keeps the upstream opens no new connection.
//
// Timing: only generous bounds; every loop is bounded in count and time.
#include <atomic>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "curfew/demo/demo.grpc.pb.h"
#include "dnsmasq.h"
#include "metrics/endpoint_metrics.h"
#include "metrics/upstreams_json.h"
#include "pods.h"
#include "sidecar/connection_report.h"
#include "sidecar/sidecar.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;
using ::testing::HasSubstr;

class CountingConnections final : public sidecar::ConnectionObserver {
 public:
  void connection_opened(sidecar::ConnectionSide side) override {
    if (side == sidecar::ConnectionSide::kUpstream) ++upstream_opened;
  }
  void connection_closed(sidecar::ConnectionSide side, h2::CloseReason /*reason*/) override {
    if (side == sidecar::ConnectionSide::kUpstream) ++upstream_closed;
  }
  void upstream_connect_failed(sidecar::ConnectFailure /*why*/) override {}
  void endpoint_ejected(const std::string& /*upstream*/) override { ++ejections; }
  void upstream_resolve_failed(const std::string& /*upstream*/) override { ++resolve_failures; }

  std::atomic<int> upstream_opened{0};
  std::atomic<int> upstream_closed{0};
  std::atomic<int> ejections{0};
  std::atomic<int> resolve_failures{0};
};

std::string hosts_for(const std::vector<int>& last_octets) {
  std::string hosts;
  for (int n : last_octets) hosts += "127.0.0." + std::to_string(n) + " pods.test\n";
  return hosts;
}

class EndpointSets : public ::testing::Test {
 protected:
  // Pods on 127.0.0.2 .. 127.0.0.(1 + n), one port for all.
  void start_pods(int n) {
    pods_ = testing::start_pods(n);
    ASSERT_EQ(static_cast<int>(pods_.size()), n);
    port_ = pods_[0]->port();
  }

  void start_dns(const std::vector<int>& octets) {
    dnsmasq_.emplace(hosts_for(octets));
    ASSERT_TRUE(dnsmasq_->ready()) << dnsmasq_->log();
  }

  std::string yaml(const std::string& balancer, const std::string& route_extra = "",
                   const std::string& upstream_extra = "") const {
    return R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    routes:
      - {name: pods, match: {prefix: /}, upstream: pods, timeout: 5s)" +
           route_extra + R"(}
upstreams:
  - {name: pods, endpoints: ["dns://)" +
           dnsmasq_->server() + "/pods.test:" + std::to_string(port_) + R"("], balancer: )" +
           balancer + ", resolve_interval: 200ms" + upstream_extra + "}\n";
  }

  void start_curfew(const std::string& text) {
    auto config = config::load_config_string(text, "endpoints.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    config->worker_threads = 1;
    auto started = sidecar::Sidecar::start(*std::move(config), nullptr, &connections_);
    ASSERT_TRUE(started.ok()) << started.status();
    sidecar_ = std::move(*started);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(sidecar_->port("inbound")),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (HasFailure() && dnsmasq_) std::cerr << "dnsmasq's log:\n" << dnsmasq_->log();
    sidecar_.reset();
    pods_.clear();
  }

  grpc::Status echo() { return echo_on(channel_); }

  // `callers` threads calling until `stop` or `limit`; counts outcomes.
  struct Load {
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::string first_failure;
    std::mutex mu;
    std::vector<std::thread> threads;
    ~Load() {  // however the test ends (an ASSERT returning early), the callers stop
      stop = true;
      for (std::thread& t : threads)
        if (t.joinable()) t.join();
    }
  };
  void run_load(Load& load, int callers, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (int i = 0; i < callers; ++i) {
      load.threads.emplace_back([this, &load, until] {
        while (!load.stop.load() && std::chrono::steady_clock::now() < until) {
          const grpc::Status s = echo();
          if (s.ok()) {
            ++load.ok;
          } else {
            ++load.failed;
            std::lock_guard lock(load.mu);
            if (load.first_failure.empty())
              load.first_failure = std::to_string(s.error_code()) + " " + s.error_message();
          }
        }
      });
    }
  }
  static void join(Load& load) {
    load.stop = true;
    for (std::thread& t : load.threads)
      if (t.joinable()) t.join();
  }
  // Waits (bounded) until `done()`.
  template <typename F>
  static bool eventually(F done, std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  std::vector<std::unique_ptr<Pod>> pods_;
  int port_ = 0;
  std::optional<Dnsmasq> dnsmasq_;
  CountingConnections connections_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(EndpointSets, CallsSpreadOverEveryAddressOfTheName) {
  ASSERT_NO_FATAL_FAILURE(start_pods(3));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3, 4}));
  for (const char* balancer : {"round_robin", "peak_ewma"}) {
    SCOPED_TRACE(balancer);
    sidecar_.reset();
    for (auto& pod : pods_) pod->calls = 0;
    ASSERT_NO_FATAL_FAILURE(start_curfew(yaml(balancer)));
    Load load;
    run_load(load, 8, 30s);
    ASSERT_TRUE(eventually([&] { return load.ok.load() >= 600; }, 30s));
    join(load);
    EXPECT_EQ(load.failed.load(), 0) << load.first_failure;
    const int total = load.ok.load();
    for (size_t i = 0; i < pods_.size(); ++i) {
      // Round robin: a third each. Peak-EWMA at 8 calls in flight: every pod takes a real share.
      EXPECT_GE(pods_[i]->calls.load(), total / 10) << "pod 127.0.0." << 2 + i << " of " << total;
    }
    EXPECT_EQ(connections_.upstream_opened.load() % 3, 0) << "one connection per address";
  }
}

TEST_F(EndpointSets, AddressesJoinAndLeaveWithDnsWithoutAFailedCall) {
  ASSERT_NO_FATAL_FAILURE(start_pods(3));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3}));
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml("peak_ewma")));
  Load load;
  run_load(load, 4, 60s);
  ASSERT_TRUE(eventually([&] { return pods_[0]->calls > 50 && pods_[1]->calls > 50; }));
  EXPECT_EQ(pods_[2]->calls.load(), 0) << "127.0.0.4 is not in DNS yet";

  dnsmasq_->set_hosts(hosts_for({2, 3, 4}));  // .4 joins
  EXPECT_TRUE(eventually([&] { return pods_[2]->calls > 50; }))
      << "127.0.0.4 got " << pods_[2]->calls << " calls";

  dnsmasq_->set_hosts(hosts_for({3, 4}));  // .2 leaves: drained, then no more calls
  ASSERT_TRUE(eventually([&] {
    const int before = pods_[0]->calls;
    std::this_thread::sleep_for(500ms);
    return pods_[0]->calls == before;
  }));
  const int left_with = pods_[0]->calls;
  const int others = pods_[1]->calls + pods_[2]->calls;
  ASSERT_TRUE(eventually([&] { return pods_[1]->calls + pods_[2]->calls > others + 200; }));
  join(load);
  EXPECT_EQ(pods_[0]->calls.load(), left_with) << "127.0.0.2 left DNS but still got calls";
  EXPECT_EQ(load.failed.load(), 0) << load.first_failure;
  // The drained address's connection closed once idle.
  EXPECT_TRUE(eventually([&] { return connections_.upstream_closed.load() >= 1; }));
}

TEST_F(EndpointSets, AFailedLookupKeepsTheLastGoodSet) {
  ASSERT_NO_FATAL_FAILURE(start_pods(2));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3}));
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml("round_robin")));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(echo().ok());
  dnsmasq_.reset();  // the DNS server is gone: every lookup from now on fails
  // Names are looked up again as calls use the set (an idle set is not): call meanwhile.
  int failed = 0;
  ASSERT_TRUE(eventually([&] {
    failed += echo().ok() ? 0 : 1;
    return connections_.resolve_failures.load() >= 2;
  })) << "failed lookups are counted";
  for (int i = 0; i < 100; ++i) failed += echo().ok() ? 0 : 1;
  EXPECT_EQ(failed, 0) << "the last good set stopped serving";
  EXPECT_GT(pods_[0]->calls.load(), 30);
  EXPECT_GT(pods_[1]->calls.load(), 30);
}

TEST_F(EndpointSets, AKilledEndpointIsEjectedAndTheOthersServe) {
  ASSERT_NO_FATAL_FAILURE(start_pods(3));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3, 4}));
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml(
      "peak_ewma", "", ", outlier_detection: {consecutive_failures: 3, base_ejection_time: 30s}")));
  Load load;
  run_load(load, 4, 60s);
  ASSERT_TRUE(eventually([&] { return pods_[1]->calls > 50; }));
  pods_[1]->stop();  // 127.0.0.3 dies (GOAWAY, then connections refused)
  ASSERT_TRUE(eventually([&] { return connections_.ejections.load() >= 1; }))
      << "127.0.0.3 was not ejected";
  // Calls that were in flight on the dying pod may fail (grpc++ cancels what it had not started:
  // RST_STREAM CANCEL, forwarded as CANCELLED); nothing after. A call whose connection cannot be
  // made goes to another endpoint: callers see no failure for it.
  const int failed_at_ejection = load.failed.load();
  EXPECT_LE(failed_at_ejection, 4) << load.first_failure;
  const int ok_at_ejection = load.ok.load();
  ASSERT_TRUE(eventually([&] { return load.ok.load() > ok_at_ejection + 500; }, 20s));
  join(load);
  EXPECT_EQ(load.failed.load(), failed_at_ejection) << load.first_failure;
  const int dead_calls = pods_[1]->calls.load();
  EXPECT_GT(pods_[0]->calls.load() + pods_[2]->calls.load(), 500);
  EXPECT_EQ(pods_[1]->calls.load(), dead_calls);

  // What an operator sees: the gauge and /upstreams' JSON name the ejected address.
  metrics::EndpointMetrics gauge([this] { return sidecar_->upstream_reports(); });
  double healthy = -1, ejected = -1;
  for (const prometheus::MetricFamily& f : gauge.Collect()) {
    for (const prometheus::ClientMetric& m : f.metric) {
      if (m.label.size() != 2 || m.label[0].value != "pods") continue;
      if (m.label[1].value == "healthy") healthy = m.gauge.value;
      if (m.label[1].value == "ejected") ejected = m.gauge.value;
    }
  }
  EXPECT_EQ(healthy, 2);
  EXPECT_EQ(ejected, 1);
  const std::string json = metrics::upstreams_json(sidecar_->upstream_reports());
  EXPECT_THAT(json, HasSubstr("\"address\": \"127.0.0.3:" + std::to_string(port_) +
                              "\", \"target\": \"dns://"));
  EXPECT_THAT(json, HasSubstr("\"state\": \"ejected\""));
  EXPECT_THAT(json, HasSubstr("\"balancer\": \"peak_ewma\""));
}

TEST_F(EndpointSets, ASlowEndpointGetsFewerCallsUnderPeakEwmaThanUnderRoundRobin) {
  ASSERT_NO_FATAL_FAILURE(start_pods(3));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3, 4}));
  pods_[2]->delay_ms = 20;  // 127.0.0.4: every call 20 ms slower
  double share[2] = {};
  const char* balancers[2] = {"round_robin", "peak_ewma"};
  for (int b = 0; b < 2; ++b) {
    sidecar_.reset();
    for (auto& pod : pods_) pod->calls = 0;
    ASSERT_NO_FATAL_FAILURE(start_curfew(yaml(balancers[b])));
    Load load;
    run_load(load, 16, 30s);
    ASSERT_TRUE(eventually([&] { return load.ok.load() >= 1500; }, 30s));
    join(load);
    EXPECT_EQ(load.failed.load(), 0) << load.first_failure;
    int total = 0;
    for (auto& pod : pods_) total += pod->calls;
    share[b] = static_cast<double>(pods_[2]->calls) / total;
  }
  std::cerr << "slow endpoint's share: round robin " << share[0] << ", peak-EWMA " << share[1]
            << "\n";
  EXPECT_GT(share[0], 0.25) << "round robin gives each address its turn";
  EXPECT_LT(share[1], 0.15);
  EXPECT_LT(share[1], share[0] / 2);
}

TEST_F(EndpointSets, ARetryGoesToAnotherEndpoint) {
  ASSERT_NO_FATAL_FAILURE(start_pods(2));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3}));
  pods_[0]->unavailable = true;  // 127.0.0.2 answers UNAVAILABLE to everything
  // Two tries, each on a different pod: every call succeeds. (No ejection: the retry alone.)
  ASSERT_NO_FATAL_FAILURE(
      start_curfew(yaml("peak_ewma", ", retry: {attempts: 2, per_try_timeout: 2s, budget_ratio: 1}",
                        ", outlier_detection: {consecutive_failures: 0}")));
  int failed = 0;
  for (int i = 0; i < 200; ++i) failed += echo().ok() ? 0 : 1;
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(pods_[1]->calls.load(), 200) << "the healthy pod served every call";
  EXPECT_LE(pods_[0]->calls.load(), 200) << "never twice for one call";
}

TEST_F(EndpointSets, AHedgeGoesToAnotherEndpointOfTheSameUpstream) {
  ASSERT_NO_FATAL_FAILURE(start_pods(2));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3}));
  pods_[0]->delay_ms = 3000;  // 127.0.0.2 stalls; the route's hedge goes on after 50 ms
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml("peak_ewma", ", hedge: {delay: 50ms, max_hedges: 1}")));
  for (int i = 0; i < 20; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    const grpc::Status status = echo();
    const auto took = std::chrono::steady_clock::now() - begin;
    EXPECT_TRUE(status.ok()) << status.error_message();
    // Well under the stalled pod's 3 s: the hedge never went to the endpoint already tried.
    EXPECT_LT(took, 1500ms) << "call " << i;
  }
  EXPECT_EQ(pods_[1]->calls.load(), 20);
  // The first call may start on the stalled pod; a lost hedge teaches the balancer that it is
  // slow (its time counts as latency), so it is not tried first again and again.
  EXPECT_LE(pods_[0]->calls.load(), 3);
}

TEST_F(EndpointSets, RunningOutAPerTryDeadlineEjectsButTheCallersOwnDoesNot) {
  ASSERT_NO_FATAL_FAILURE(start_pods(2));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3}));
  pods_[0]->delay_ms = 1000;  // 127.0.0.2 stalls
  const std::string outlier = ", outlier_detection: {consecutive_failures: 2}";
  // The caller's own 50 ms deadline runs out on the stalled pod: not the pod's fault.
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml(
      "round_robin", ", retry: {attempts: 2, per_try_timeout: 5s, budget_ratio: 1}", outlier)));
  for (int i = 0; i < 10; ++i) {
    auto stub = Demo::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 50ms);
    demo::EchoRequest request;
    demo::EchoReply reply;
    stub->Echo(&ctx, request, &reply);
  }
  EXPECT_EQ(connections_.ejections.load(), 0) << "the caller's own deadline ejected a pod";
  // A per-try deadline (100 ms) the pod had in full, run out twice: ejected, and every call
  // succeeds on the other pod (a retry at first, then directly).
  sidecar_.reset();
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml(
      "round_robin", ", retry: {attempts: 2, per_try_timeout: 100ms, budget_ratio: 1}", outlier)));
  int failed = 0;
  for (int i = 0; i < 10; ++i) failed += echo().ok() ? 0 : 1;
  EXPECT_EQ(failed, 0);
  EXPECT_GE(connections_.ejections.load(), 1) << "the stalled pod was not ejected";
  EXPECT_LE(pods_[0]->calls.load(), 10 + 2) << "ejected after two timeouts";
}

TEST_F(EndpointSets, AReloadThatKeepsTheUpstreamOpensNoConnection) {
  ASSERT_NO_FATAL_FAILURE(start_pods(3));
  ASSERT_NO_FATAL_FAILURE(start_dns({2, 3, 4}));
  ASSERT_NO_FATAL_FAILURE(start_curfew(yaml("round_robin")));
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(echo().ok());
  const int opened = connections_.upstream_opened.load();
  EXPECT_EQ(opened, 3);
  // From the pods' side too: the connections their calls came on, one each.
  std::vector<std::set<std::string>> peers;
  for (auto& pod : pods_) {
    peers.push_back(pod->peers());
    EXPECT_EQ(peers.back().size(), 1u) << pod->host();
  }
  Load load;
  run_load(load, 4, 30s);
  for (int reload = 0; reload < 5; ++reload) {
    // A route's timeout changes, the upstream does not.
    auto config = config::load_config_string(
        yaml("round_robin", reload % 2 == 0 ? ", max_timeout: 8s" : ""), "endpoints.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    config->worker_threads = 1;
    ASSERT_TRUE(sidecar_->reload(*std::move(config)).ok());
    const int before = load.ok.load();
    ASSERT_TRUE(eventually([&] { return load.ok.load() > before + 50; }));
  }
  join(load);
  EXPECT_EQ(load.failed.load(), 0) << load.first_failure;
  EXPECT_EQ(connections_.upstream_opened.load(), opened) << "a reload reconnected";
  for (size_t i = 0; i < pods_.size(); ++i)
    EXPECT_EQ(pods_[i]->peers(), peers[i]) << pods_[i]->host() << " saw calls on a new connection";

  // A reload that changes the upstream (another balancer... and its endpoints) replaces it.
  auto changed = config::load_config_string(
      yaml("round_robin").replace(yaml("round_robin").find("pods.test"), 9, "pods.test."),
      "endpoints.yaml");
  ASSERT_TRUE(changed.ok()) << changed.status();
  changed->worker_threads = 1;
  ASSERT_TRUE(sidecar_->reload(*std::move(changed)).ok());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(echo().ok());
  EXPECT_EQ(connections_.upstream_opened.load(), opened + 3);
  EXPECT_TRUE(eventually([&] { return connections_.upstream_closed.load() >= 3; }))
      << "the old set's connections drain and close";
}

}  // namespace
}  // namespace curfew::testing
