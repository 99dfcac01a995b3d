// The configs shipped in config/ (and the issue's example, verbatim) load and mean what their
// comments say.

#include <chrono>
#include <string>

#include "config/config.h"
#include "config/load.h"
#include "config/status_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curfew::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;

// The example from the configuration issue, verbatim; config/examples/full.yaml holds a copy.
constexpr std::string_view kFullExample = R"yaml(admin:
  address: 127.0.0.1:9901          # /metrics /healthz /readyz (metrics issue)
listeners:
  - name: inbound                  # callers -> local service
    address: 0.0.0.0:15001
    default_timeout: 1s            # for routes that set none; every call gets a deadline
    routes:
      - name: reports
        match: {method: /reports.Reports/Generate}   # exact method
        upstream: local-app
        timeout: 30s
      - name: inventory
        match: {service: shop.Inventory}             # every method of a service
        upstream: local-app
        timeout: 250ms      # deadline when the caller sent none
        max_timeout: 2s     # cap on the caller's own grpc-timeout
        min_budget: 5ms     # fail fast (no upstream call) when less remains
      - name: default
        match: {prefix: /}                           # catch-all
        upstream: local-app
  - name: outbound                 # local service -> dependencies
    address: 127.0.0.1:15002
    default_timeout: 500ms
    routes:
      - {name: payments, match: {service: pay.Payments}, upstream: payments, timeout: 800ms}
upstreams:
  - {name: local-app, endpoints: [127.0.0.1:8080]}
  - {name: payments, endpoints: ["dns:///payments.prod.svc.cluster.local:50051"]}
)yaml";

std::string source_path(std::string_view relative) {
  return std::string(CURFEW_SOURCE_DIR) + "/" + std::string(relative);
}

// Checks `config` is the one kFullExample describes.
void expect_full_example(const Config& config) {
  EXPECT_EQ(config.admin.address, "127.0.0.1:9901");
  ASSERT_EQ(config.listeners.size(), 2u);

  const Listener& inbound = config.listeners[0];
  EXPECT_EQ(inbound.name, "inbound");
  EXPECT_EQ(inbound.address, "0.0.0.0:15001");
  EXPECT_EQ(inbound.default_timeout, seconds(1));
  ASSERT_EQ(inbound.routes.size(), 3u);

  const Route* inventory = inbound.route_for("/shop.Inventory/Get");
  ASSERT_NE(inventory, nullptr);
  EXPECT_EQ(inventory->name, "inventory");
  EXPECT_EQ(inventory->upstream, "local-app");
  EXPECT_EQ(inventory->timeout, milliseconds(250));
  EXPECT_EQ(inventory->max_timeout, seconds(2));
  EXPECT_EQ(inventory->min_budget, milliseconds(5));
  EXPECT_EQ(inventory->deadline_offset, milliseconds(0));
  EXPECT_FALSE(inventory->retry || inventory->fanout || inventory->mirror);

  const Route* reports = inbound.route_for("/reports.Reports/Generate");
  ASSERT_NE(reports, nullptr);
  EXPECT_EQ(reports->name, "reports");
  EXPECT_EQ(reports->match.kind, Match::kMethod);
  EXPECT_EQ(inbound.effective_timeout(*reports), seconds(30));
  EXPECT_EQ(reports->max_timeout, std::nullopt);
  EXPECT_EQ(reports->min_budget, milliseconds(0));

  // Other methods of the Reports service are not the exact-method route's business.
  EXPECT_EQ(inbound.route_for("/reports.Reports/List")->name, "default");

  const Route* fallback = inbound.route_for("/x.Y/Z");
  ASSERT_NE(fallback, nullptr);
  EXPECT_EQ(fallback->name, "default");
  EXPECT_EQ(fallback->timeout, std::nullopt);
  EXPECT_EQ(inbound.effective_timeout(*fallback), seconds(1));

  const Listener& outbound = config.listeners[1];
  EXPECT_EQ(outbound.name, "outbound");
  EXPECT_EQ(outbound.address, "127.0.0.1:15002");
  EXPECT_EQ(outbound.default_timeout, milliseconds(500));
  const Route* payments = outbound.route_for("/pay.Payments/Charge");
  ASSERT_NE(payments, nullptr);
  EXPECT_EQ(payments->name, "payments");
  EXPECT_EQ(payments->upstream, "payments");
  EXPECT_EQ(outbound.effective_timeout(*payments), milliseconds(800));
  EXPECT_EQ(outbound.route_for("/shop.Inventory/Get"), nullptr);  // No catch-all outbound.

  ASSERT_EQ(config.upstreams.size(), 2u);
  ASSERT_NE(config.find_upstream("local-app"), nullptr);
  EXPECT_THAT(config.find_upstream("local-app")->endpoints, ElementsAre("127.0.0.1:8080"));
  ASSERT_NE(config.find_upstream("payments"), nullptr);
  EXPECT_THAT(config.find_upstream("payments")->endpoints,
              ElementsAre("dns:///payments.prod.svc.cluster.local:50051"));
  EXPECT_EQ(config.find_upstream("payments")->connect_timeout, seconds(1));
  // The balancing defaults (the full example spells them out).
  EXPECT_EQ(config.find_upstream("payments")->balancer, Upstream::Balancer::kPeakEwma);
  EXPECT_EQ(config.find_upstream("payments")->resolve_interval, seconds(5));
  EXPECT_EQ(config.find_upstream("payments")->outlier_detection.consecutive_failures, 5);
  EXPECT_FALSE(config.find_upstream("payments")->tls.enabled);

  // Defaults for everything the example leaves out.
  EXPECT_EQ(config.drain_timeout, seconds(10));
  EXPECT_EQ(config.worker_threads, 0);
  EXPECT_EQ(inbound.limits.max_concurrent_calls, 10000);
  EXPECT_EQ(inbound.limits.max_message_bytes, 64 << 20);
  EXPECT_EQ(inbound.limits.max_metadata_bytes, 64 << 10);
  EXPECT_EQ(inbound.limits.max_concurrent_streams_per_connection, 1000);
}

TEST(Examples, IssueExampleLoadsAsDocumented) {
  absl::StatusOr<Config> config = load_config_string(kFullExample, "full.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source_path, "full.yaml");
  expect_full_example(*config);
}

TEST(Examples, FullYamlFileIsTheIssueExample) {
  const std::string path = source_path("config/examples/full.yaml");
  absl::StatusOr<Config> config = load_config_file(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source_path, path);
  expect_full_example(*config);
}

TEST(Examples, FanoutYamlLoadsAsDocumented) {
  absl::StatusOr<Config> config = load_config_file(source_path("config/examples/fanout.yaml"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->listeners.size(), 1u);
  const Listener& edge = config->listeners[0];

  const Route* search = edge.route_for("/shop.Search/Find");
  ASSERT_NE(search, nullptr);
  EXPECT_EQ(search->name, "search");
  EXPECT_EQ(search->upstream, "");
  EXPECT_EQ(edge.effective_timeout(*search), milliseconds(300));
  ASSERT_TRUE(search->fanout.has_value());
  EXPECT_EQ(search->fanout->mode, Fanout::kAll);
  EXPECT_THAT(search->fanout->upstreams, ElementsAre("shard-a", "shard-b", "shard-c"));
  EXPECT_EQ(search->fanout->merge, Fanout::kConcat);
  EXPECT_EQ(search->fanout->quorum, 3);  // All of them.

  const Route* quotes = edge.route_for("/shop.Quotes/Get");
  ASSERT_NE(quotes, nullptr);
  ASSERT_TRUE(quotes->fanout.has_value());
  EXPECT_EQ(quotes->fanout->mode, Fanout::kQuorum);
  EXPECT_THAT(quotes->fanout->upstreams, ElementsAre("q1", "q2", "q3"));
  EXPECT_EQ(quotes->fanout->quorum, 2);
  EXPECT_EQ(quotes->fanout->merge, Fanout::kConcat);  // Default for quorum.
  EXPECT_EQ(edge.effective_timeout(*quotes), seconds(1));

  const Route* pricing = edge.route_for("/shop.Pricing/Quote");
  ASSERT_NE(pricing, nullptr);
  ASSERT_TRUE(pricing->fanout.has_value());
  EXPECT_EQ(pricing->fanout->mode, Fanout::kHedge);
  EXPECT_THAT(pricing->fanout->upstreams, ElementsAre("pricing-a", "pricing-b"));
  EXPECT_EQ(pricing->fanout->delay, milliseconds(20));
  EXPECT_EQ(pricing->fanout->merge, Fanout::kFirst);  // Default for hedge.
  EXPECT_EQ(pricing->fanout->quorum, 1);

  const Route* inventory = edge.route_for("/shop.Inventory/Get");
  ASSERT_NE(inventory, nullptr);
  EXPECT_EQ(inventory->upstream, "inventory");
  EXPECT_FALSE(inventory->fanout.has_value());
  ASSERT_TRUE(inventory->retry.has_value());
  EXPECT_EQ(inventory->retry->attempts, 3);
  EXPECT_EQ(inventory->retry->per_try_timeout, milliseconds(100));
  EXPECT_EQ(inventory->retry->backoff_base, milliseconds(10));
  EXPECT_EQ(inventory->retry->backoff_max, milliseconds(100));
  EXPECT_THAT(inventory->retry->on, ElementsAre(*status_code_from_name("UNAVAILABLE"),
                                                *status_code_from_name("RESOURCE_EXHAUSTED")));
  EXPECT_THAT(inventory->retry->on, ElementsAre(14, 8));
  EXPECT_DOUBLE_EQ(inventory->retry->budget_ratio, 0.2);
  ASSERT_TRUE(inventory->mirror.has_value());
  EXPECT_EQ(inventory->mirror->upstream, "inventory-canary");
  EXPECT_DOUBLE_EQ(inventory->mirror->percent, 10);

  // Every upstream a route names exists.
  for (const Route& route : edge.routes) {
    if (route.fanout) {
      for (const std::string& name : route.fanout->upstreams) {
        EXPECT_NE(config->find_upstream(name), nullptr) << name;
      }
    } else {
      EXPECT_NE(config->find_upstream(route.upstream), nullptr) << route.upstream;
    }
  }
}

TEST(Examples, BundledCurfewYamlMatchesTheReadmeDemo) {
  absl::StatusOr<Config> config = load_config_file(source_path("config/curfew.yaml"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->admin.address, "127.0.0.1:9901");
  ASSERT_EQ(config->listeners.size(), 1u);
  const Listener& inbound = config->listeners[0];
  EXPECT_EQ(inbound.name, "inbound");
  EXPECT_EQ(inbound.address, "127.0.0.1:15001");
  EXPECT_EQ(inbound.default_timeout, seconds(1));

  const Route* slow = inbound.route_for("/curfew.demo.Demo/Slow");
  ASSERT_NE(slow, nullptr);
  EXPECT_EQ(slow->name, "slow");
  EXPECT_EQ(inbound.effective_timeout(*slow), milliseconds(200));
  const Route* demo = inbound.route_for("/curfew.demo.Demo/Fast");
  ASSERT_NE(demo, nullptr);
  EXPECT_EQ(demo->name, "demo");
  EXPECT_EQ(inbound.effective_timeout(*demo), seconds(1));
  const Route* fallback = inbound.route_for("/grpc.health.v1.Health/Check");
  ASSERT_NE(fallback, nullptr);
  EXPECT_EQ(fallback->name, "default");
  EXPECT_EQ(inbound.effective_timeout(*fallback), seconds(1));

  for (const Route& route : inbound.routes) EXPECT_EQ(route.upstream, "demo-backend");
  ASSERT_EQ(config->upstreams.size(), 1u);
  EXPECT_EQ(config->upstreams[0].name, "demo-backend");
  EXPECT_THAT(config->upstreams[0].endpoints, ElementsAre("127.0.0.1:8080"));
}

}  // namespace
}  // namespace curfew::config
