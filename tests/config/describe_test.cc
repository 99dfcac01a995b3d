#include <string>

#include "config/config.h"
#include "config/load.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curfew::config {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kConfig = R"yaml(listeners:
  - name: inbound
    address: 0.0.0.0:15001
    default_timeout: 1s
    routes:
      - {name: reports, match: {method: /reports.Reports/Generate}, upstream: app, timeout: 30s}
      - {name: inventory, match: {service: shop.Inventory}, upstream: app, timeout: 250ms,
         max_timeout: 2s, min_budget: 5ms, deadline_offset: 2ms,
         retry: {attempts: 3, per_try_timeout: 100ms, on: [UNAVAILABLE, RESOURCE_EXHAUSTED]},
         mirror: {upstream: canary, percent: 10}}
      - {name: search, match: {service: shop.Search},
         fanout: {mode: quorum, upstreams: [app, canary, third], quorum: 2}}
      - {name: pricing, match: {service: shop.Pricing},
         fanout: {mode: hedge, upstreams: [app, canary], delay: 20ms}}
      - {name: default, match: {prefix: /}, upstream: app}
  - name: outbound
    address: 127.0.0.1:15002
    default_timeout: 500ms
    routes:
      - {name: payments, match: {service: pay.Payments}, upstream: canary}
upstreams:
  - {name: app, endpoints: [127.0.0.1:8080]}
  - {name: canary, endpoints: ["dns:///canary:50051"], tls: {}}
  - {name: third, endpoints: [127.0.0.1:8082], balancer: round_robin, resolve_interval: 2s,
     outlier_detection: {consecutive_failures: 3, base_ejection_time: 5s, max_ejection_time: 1m,
                         max_ejection_percent: 30}}
  - {name: quiet, endpoints: [127.0.0.1:8083], outlier_detection: {consecutive_failures: 0}}
workers: 4
)yaml";

std::string described() {
  absl::StatusOr<Config> config = load_config_string(kConfig, "describe.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? describe(*config) : "";
}

// The line of `text` containing `needle`, or "" if none does.
std::string line_with(const std::string& text, std::string_view needle) {
  const size_t at = text.find(needle);
  if (at == std::string::npos) return "";
  const size_t start = text.rfind('\n', at) + 1;  // npos + 1 == 0 for the first line.
  return text.substr(start, text.find('\n', at) - start);
}

TEST(Describe, MentionsEveryRoute) {
  const std::string text = described();
  for (const char* route : {"reports", "inventory", "search", "pricing", "default", "payments"}) {
    EXPECT_THAT(text, HasSubstr(route)) << text;
  }
}

TEST(Describe, HeaderAndListeners) {
  const std::string text = described();
  EXPECT_THAT(text, HasSubstr("config describe.yaml: admin on 127.0.0.1:9901, drain_timeout 10s, "
                              "4 workers"));
  EXPECT_THAT(text, HasSubstr("listener inbound on 0.0.0.0:15001: default_timeout 1s"));
  EXPECT_THAT(text, HasSubstr("listener outbound on 127.0.0.1:15002: default_timeout 500ms"));
  EXPECT_THAT(text, HasSubstr("LISTENER  ROUTE      MATCH"));
}

TEST(Describe, WorkersZeroIsOnePerCpuTheContainerMayUse) {
  std::string yaml(kConfig);
  yaml.replace(yaml.find("workers: 4"), 10, "workers: 0");
  absl::StatusOr<Config> config = load_config_string(yaml, "describe.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(describe(*config),
              HasSubstr("drain_timeout 10s, one worker per CPU the container may use\n"));
}

TEST(Describe, RouteRowsShowEffectiveValues) {
  const std::string text = described();
  const std::string reports = line_with(text, "reports ");
  EXPECT_THAT(reports, HasSubstr("method /reports.Reports/Generate"));
  EXPECT_THAT(reports, HasSubstr(" 30s "));

  const std::string inventory = line_with(text, "inventory ");
  EXPECT_THAT(inventory, HasSubstr("service shop.Inventory"));
  EXPECT_THAT(inventory, HasSubstr("250ms"));
  EXPECT_THAT(inventory, HasSubstr("2s"));
  EXPECT_THAT(inventory, HasSubstr("5ms"));
  EXPECT_THAT(inventory, HasSubstr("retry 3x 100ms/try on UNAVAILABLE,RESOURCE_EXHAUSTED, "
                                   "backoff 25ms..250ms, budget 20%"));
  EXPECT_THAT(inventory, HasSubstr("mirror 10% to canary"));
  EXPECT_THAT(inventory, HasSubstr("deadline_offset 2ms"));

  // Inherited timeouts are flagged, and use the right listener's default.
  EXPECT_THAT(line_with(text, "default "), HasSubstr("1s (default)"));
  EXPECT_THAT(line_with(text, "payments "), HasSubstr("500ms (default)"));
  EXPECT_THAT(line_with(text, "payments "), HasSubstr("outbound"));
}

TEST(Describe, FanoutRowsListTheirUpstreams) {
  const std::string text = described();
  const std::string search = line_with(text, "search ");
  EXPECT_THAT(search, HasSubstr("app,canary,third"));
  EXPECT_THAT(search, HasSubstr("fanout quorum 2/3, merge concat"));
  EXPECT_THAT(line_with(text, "pricing "), HasSubstr("hedge after 20ms, merge first"));
}

TEST(Describe, UpstreamTable) {
  const std::string text = described();
  EXPECT_THAT(text, HasSubstr("UPSTREAM  ENDPOINTS"));
  EXPECT_THAT(line_with(text, "dns:///canary:50051"), HasSubstr("on"));
  EXPECT_THAT(line_with(text, "127.0.0.1:8082"), HasSubstr("off"));
}

TEST(Describe, UpstreamTableShowsBalancing) {
  const std::string text = described();
  EXPECT_THAT(line_with(text, "UPSTREAM  ENDPOINTS"), ContainsRegex("BALANCER +RESOLVE +EJECT"));
  // Defaults: peak-EWMA, a lookup every 5 s, ejection after 5 failures for 10 s .. 5 min.
  EXPECT_THAT(line_with(text, "127.0.0.1:8080"),
              ContainsRegex("peak_ewma +5s +after 5 failures, 10s\\.\\.5m, max 50%"));
  EXPECT_THAT(line_with(text, "127.0.0.1:8082"),
              ContainsRegex("round_robin +2s +after 3 failures, 5s\\.\\.1m, max 30%"));
  EXPECT_THAT(line_with(text, "127.0.0.1:8083"), ContainsRegex("peak_ewma +5s +off"));
}

TEST(Describe, ColumnsAreAligned) {
  const std::string text = described();
  const std::string header = line_with(text, "LISTENER");
  const std::string row = line_with(text, "payments ");
  ASSERT_FALSE(header.empty());
  // The ROUTE column starts at the same offset in the header and in every row.
  EXPECT_EQ(header.find("ROUTE"), row.find("payments"));
  EXPECT_THAT(header, Not(HasSubstr("\t")));
}

}  // namespace
}  // namespace curfew::config
