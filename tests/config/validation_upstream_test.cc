// Validation of upstreams: required keys, endpoint syntax, duplicates, TLS.

#include <chrono>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/load.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/config/test_util.h"

namespace curfew::config {
namespace {

using ::curfew::config::testing::load_error;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A config whose upstream entries start on line 4; its only route uses "app".
std::string with_upstreams(std::string_view upstreams) {
  return "listeners:\n"
         "  - {name: in, address: 127.0.0.1:1, routes: [{name: r, match: {prefix: /}, upstream: "
         "app}]}\n"
         "upstreams:\n" +
         std::string(upstreams);
}

absl::StatusOr<Upstream> load_app(std::string_view upstreams) {
  absl::StatusOr<Config> config = load_config_string(with_upstreams(upstreams), "t.yaml");
  if (!config.ok()) return config.status();
  return *config->find_upstream("app");
}

TEST(Upstream, NameIsRequired) {
  EXPECT_THAT(load_error(with_upstreams("  - endpoints: [127.0.0.1:8080]\n")),
              HasSubstr("t.yaml:4:5: upstreams[0].name: required key missing (every upstream "
                        "needs a name)"));
}

TEST(Upstream, EndpointsAreRequiredAndNonEmpty) {
  EXPECT_THAT(load_error(with_upstreams("  - name: app\n")),
              HasSubstr("t.yaml:4:5: upstreams[0].endpoints: required key missing (an upstream "
                        "needs at least one endpoint)"));
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: []}\n")),
              HasSubstr("t.yaml:4:28: upstreams[0].endpoints: an upstream needs at least one "
                        "endpoint"));
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: ['']}\n")),
              HasSubstr("t.yaml:4:29: upstreams[0].endpoints[0]: must not be empty"));
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: 127.0.0.1:8080}\n")),
              HasSubstr("t.yaml:4:28: upstreams[0].endpoints: expected a list, got "
                        "\"127.0.0.1:8080\""));
}

TEST(Upstream, EndpointsAreGrpcTargets) {
  absl::StatusOr<Upstream> app = load_app(
      "  - name: app\n"
      "    endpoints:\n"
      "      - 10.0.0.1:50051\n"
      "      - backend.local:50051\n"
      "      - '[::1]:50051'\n"
      "      - dns:///payments.prod.svc.cluster.local:50051\n"
      "      - dns://8.8.8.8/payments.example.com\n"
      "      - ipv4:10.0.0.1:50051,10.0.0.2:50051\n"
      "      - ipv6:[::1]:50051\n"
      "      - unix:/run/app.sock\n"
      "      - unix-abstract:app\n");
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ(app->endpoints.size(), 9u);
  EXPECT_EQ(app->endpoints[3], "dns:///payments.prod.svc.cluster.local:50051");
}

TEST(Upstream, BadEndpoints) {
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: [127.0.0.1:8080, backend]}\n")),
              HasSubstr("t.yaml:4:45: upstreams[0].endpoints[1]: bad endpoint \"backend\" "
                        "(expected host:port or a gRPC target such as dns:///name:port"));
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: ['http://backend:80']}\n")),
              HasSubstr("upstreams[0].endpoints[0]: bad endpoint \"http://backend:80\""));
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: ['dns:///']}\n")),
              HasSubstr("upstreams[0].endpoints[0]: bad endpoint \"dns:///\" (nothing after "
                        "\"dns:\")"));
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: ['unix:']}\n")),
              HasSubstr("bad endpoint \"unix:\" (nothing after \"unix:\")"));
}

TEST(Upstream, DuplicateNames) {
  EXPECT_THAT(load_error(with_upstreams("  - {name: app, endpoints: [127.0.0.1:8080]}\n"
                                        "  - {name: app, endpoints: [127.0.0.1:8081]}\n")),
              HasSubstr("t.yaml:5:12: upstreams[1].name: duplicate upstream name \"app\""));
}

TEST(Upstream, ConnectTimeout) {
  absl::StatusOr<Upstream> app =
      load_app("  - {name: app, endpoints: [127.0.0.1:8080], connect_timeout: 250ms}\n");
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ(app->connect_timeout, std::chrono::milliseconds(250));
  EXPECT_THAT(load_error(with_upstreams(
                  "  - {name: app, endpoints: [127.0.0.1:8080], connect_timeout: 0s}\n")),
              HasSubstr("t.yaml:4:63: upstreams[0].connect_timeout: must be greater than 0s"));
}

TEST(Upstream, Keepalive) {
  absl::StatusOr<Upstream> defaults = load_app("  - {name: app, endpoints: [127.0.0.1:8080]}\n");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->keepalive_time, std::chrono::minutes(5));  // what gRPC servers accept
  EXPECT_EQ(defaults->keepalive_timeout, std::chrono::seconds(20));
  absl::StatusOr<Upstream> app = load_app(
      "  - {name: app, endpoints: [127.0.0.1:8080], keepalive_time: 30s, keepalive_timeout: 2s}\n");
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ(app->keepalive_time, std::chrono::seconds(30));
  EXPECT_EQ(app->keepalive_timeout, std::chrono::seconds(2));
  absl::StatusOr<Upstream> off =
      load_app("  - {name: app, endpoints: [127.0.0.1:8080], keepalive_time: 0s}\n");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->keepalive_time, std::chrono::nanoseconds(0));
  EXPECT_THAT(load_error(with_upstreams(
                  "  - {name: app, endpoints: [127.0.0.1:8080], keepalive_timeout: 0s}\n")),
              HasSubstr("upstreams[0].keepalive_timeout: must be greater than 0s"));
  EXPECT_THAT(load_error(with_upstreams(
                  "  - {name: app, endpoints: [127.0.0.1:8080], keepalive_time: 2s}\n")),
              HasSubstr("upstreams[0].keepalive_time: must be 0s (off) or at least 10s"));
  EXPECT_THAT(load_error(with_upstreams(
                  "  - {name: app, endpoints: [127.0.0.1:8080], keepalive_time: soon}\n")),
              HasSubstr("upstreams[0].keepalive_time:"));
}

TEST(Upstream, TlsDefaultsToOff) {
  absl::StatusOr<Upstream> app = load_app("  - {name: app, endpoints: [127.0.0.1:8080]}\n");
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_FALSE(app->tls.enabled);
  EXPECT_EQ(app->connect_timeout, std::chrono::seconds(1));
}

TEST(Upstream, TlsBlockTurnsTlsOn) {
  absl::StatusOr<Upstream> app = load_app(
      "  - name: app\n"
      "    endpoints: [127.0.0.1:8443]\n"
      "    tls:\n"
      "      ca_file: /etc/curfew/ca.pem\n"
      "      cert_file: /etc/curfew/client.pem\n"
      "      key_file: /etc/curfew/client.key\n"
      "      server_name: app.internal\n");
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_TRUE(app->tls.enabled);
  EXPECT_EQ(app->tls.ca_file, "/etc/curfew/ca.pem");
  EXPECT_EQ(app->tls.cert_file, "/etc/curfew/client.pem");
  EXPECT_EQ(app->tls.key_file, "/etc/curfew/client.key");
  EXPECT_EQ(app->tls.server_name, "app.internal");

  app = load_app("  - {name: app, endpoints: [127.0.0.1:8443], tls: {enabled: false}}\n");
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_FALSE(app->tls.enabled);
}

TEST(Upstream, TlsCertAndKeyGoTogether) {
  EXPECT_THAT(load_error(with_upstreams("  - name: app\n"
                                        "    endpoints: [127.0.0.1:8443]\n"
                                        "    tls:\n"
                                        "      cert_file: /etc/curfew/client.pem\n")),
              HasSubstr("t.yaml:7:7: upstreams[0].tls.key_file: cert_file and key_file must be "
                        "set together"));
  EXPECT_THAT(load_error(with_upstreams("  - name: app\n"
                                        "    endpoints: [127.0.0.1:8443]\n"
                                        "    tls: {enabled: yes}\n")),
              HasSubstr("t.yaml:6:20: upstreams[0].tls.enabled: expected true or false, got "
                        "\"yes\""));
}

}  // namespace
}  // namespace curfew::config

namespace curfew::config {
namespace {

using ::curfew::config::testing::load_error;
using ::testing::HasSubstr;

std::string app_upstream(std::string_view extra) {
  return "listeners:\n"
         "  - {name: in, address: 127.0.0.1:1, routes: [{name: r, match: {prefix: /}, upstream: "
         "app}]}\n"
         "upstreams:\n"
         "  - {name: app, endpoints: [127.0.0.1:8080]" +
         std::string(extra) + "}\n";
}

TEST(UpstreamBalancing, DefaultsArePeakEwmaResolveEvery5sAndEjectAfter5Failures) {
  auto config = load_config_string(app_upstream(""), "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Upstream& app = *config->find_upstream("app");
  EXPECT_EQ(app.balancer, Upstream::Balancer::kPeakEwma);
  EXPECT_EQ(app.resolve_interval, std::chrono::seconds(5));
  EXPECT_EQ(app.outlier_detection.consecutive_failures, 5);
  EXPECT_EQ(app.outlier_detection.base_ejection_time, std::chrono::seconds(10));
  EXPECT_EQ(app.outlier_detection.max_ejection_time, std::chrono::seconds(300));
  EXPECT_EQ(app.outlier_detection.max_ejection_percent, 50);
}

TEST(UpstreamBalancing, EverySettingIsRead) {
  auto config = load_config_string(
      app_upstream(", balancer: round_robin, resolve_interval: 2s, outlier_detection: "
                   "{consecutive_failures: 0, base_ejection_time: 1s, max_ejection_time: 4s, "
                   "max_ejection_percent: 100}"),
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Upstream& app = *config->find_upstream("app");
  EXPECT_EQ(app.balancer, Upstream::Balancer::kRoundRobin);
  EXPECT_EQ(app.resolve_interval, std::chrono::seconds(2));
  EXPECT_EQ(app.outlier_detection.consecutive_failures, 0);
  EXPECT_EQ(app.outlier_detection.base_ejection_time, std::chrono::seconds(1));
  EXPECT_EQ(app.outlier_detection.max_ejection_time, std::chrono::seconds(4));
  EXPECT_EQ(app.outlier_detection.max_ejection_percent, 100);
}

TEST(RouteHedge, HedgesWithinTheRoutesUpstream) {
  auto config = load_config_string(
      "listeners:\n"
      "  - {name: in, address: 127.0.0.1:1, routes: [{name: r, match: {prefix: /}, upstream: "
      "app, hedge: {delay: 20ms, max_hedges: 2}}]}\n"
      "upstreams:\n"
      "  - {name: app, endpoints: [127.0.0.1:8080]}\n",
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Route& r = config->listeners[0].routes[0];
  ASSERT_TRUE(r.hedge.has_value());
  EXPECT_EQ(r.hedge->delay, std::chrono::milliseconds(20));
  EXPECT_EQ(r.hedge->max_hedges, 2);
  EXPECT_EQ(r.hedge->as_fanout.mode, Fanout::kHedge);
  EXPECT_EQ(r.hedge->as_fanout.delay, std::chrono::milliseconds(20));
  EXPECT_EQ(r.hedge->as_fanout.upstreams, (std::vector<std::string>{"app", "app", "app"}));
  EXPECT_THAT(describe(*config), HasSubstr("hedge up to 2 more endpoints every 20ms"));
}

TEST(RouteHedge, BadHedgesNameTheFieldAndTheProblem) {
  auto with_route = [](std::string_view route_extra) {
    return "listeners:\n"
           "  - {name: in, address: 127.0.0.1:1, routes: [{name: r, match: {prefix: /}, "
           "upstream: app" +
           std::string(route_extra) +
           "}]}\n"
           "upstreams:\n"
           "  - {name: app, endpoints: [127.0.0.1:8080]}\n";
  };
  EXPECT_THAT(load_error(with_route(", hedge: {max_hedges: 2}")),
              HasSubstr("listeners[0].routes[0].hedge.delay: required key missing"));
  EXPECT_THAT(load_error(with_route(", hedge: {delay: 5ms, max_hedges: 10}")),
              HasSubstr("listeners[0].routes[0].hedge.max_hedges:"));
  EXPECT_THAT(load_error(with_route(", hedge: {delay: 5ms}, retry: {attempts: 2, "
                                    "per_try_timeout: 1s}")),
              HasSubstr("listeners[0].routes[0].hedge: a route retries or hedges, not both"));
}

TEST(UpstreamBalancing, BadValuesNameTheFieldAndTheProblem) {
  EXPECT_THAT(load_error(app_upstream(", balancer: random")),
              HasSubstr("upstreams[0].balancer: unknown balancer \"random\" (expected peak_ewma "
                        "or round_robin)"));
  EXPECT_THAT(load_error(app_upstream(", resolve_interval: 10ms")),
              HasSubstr("upstreams[0].resolve_interval: must be at least 100ms"));
  EXPECT_THAT(load_error(app_upstream(", outlier_detection: {max_ejection_percent: 101}")),
              HasSubstr("upstreams[0].outlier_detection.max_ejection_percent:"));
  EXPECT_THAT(load_error(app_upstream(", outlier_detection: {max_ejection_time: 1s}")),
              HasSubstr("upstreams[0].outlier_detection.max_ejection_time: max_ejection_time must "
                        "be at least base_ejection_time"));
  EXPECT_THAT(load_error(app_upstream(", outlier_detection: {interval: 1s}")),
              HasSubstr("upstreams[0].outlier_detection"));
}

}  // namespace
}  // namespace curfew::config
