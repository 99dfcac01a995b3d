// Validation of individual routes: required keys, match syntax, upstream references and the
// timeout knobs.

#include <chrono>
#include <string>

#include "config/load.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/config/test_util.h"

namespace curfew::config {
namespace {

using ::curfew::config::testing::load_error;
using ::curfew::config::testing::with_routes;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

// Loads a config with one route whose keys (block style, eight-space indent) follow
// "      - name: r" on line 5; returns the error.
std::string route_error(std::string_view keys) {
  return load_error(with_routes("      - name: r\n" + std::string(keys)));
}

TEST(Route, NameIsRequired) {
  EXPECT_THAT(load_error(with_routes("      - match: {prefix: /}\n"
                                     "        upstream: app\n")),
              HasSubstr("t.yaml:5:9: listeners[0].routes[0].name: required key missing (every "
                        "route needs a name)"));
}

TEST(Route, MatchIsRequired) {
  EXPECT_THAT(route_error("        upstream: app\n"),
              HasSubstr("t.yaml:5:9: listeners[0].routes[0].match: required key missing (a route "
                        "needs a method, service or prefix)"));
}

TEST(Route, UpstreamOrFanoutIsRequired) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"),
              HasSubstr("t.yaml:5:9: listeners[0].routes[0].upstream: required key missing (a "
                        "route needs an upstream, or a fanout)"));
}

TEST(Route, UpstreamAndFanoutAreExclusive) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        fanout: {mode: all, upstreams: [app, b]}\n"),
              HasSubstr("t.yaml:8:17: listeners[0].routes[0].fanout: a route has either upstream "
                        "or fanout, not both"));
}

TEST(Route, EmptyValueIsLikeAMissingOne) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream:\n"),
              HasSubstr("t.yaml:7:9: listeners[0].routes[0].upstream: expected a single value, "
                        "got nothing"));
}

TEST(Route, UnknownUpstream) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: ap\n"),
              HasSubstr("t.yaml:7:19: listeners[0].routes[0].upstream: unknown upstream \"ap\" "
                        "(defined: app, b, c, d)"));
}

TEST(Route, UnknownUpstreamWhenNoneAreDefined) {
  EXPECT_THAT(load_error("listeners:\n"
                         "  - {name: in, address: 127.0.0.1:1, routes: [{name: r, match: {prefix: "
                         "/}, upstream: app}]}\n"),
              HasSubstr("listeners[0].routes[0].upstream: unknown upstream \"app\" (no upstreams "
                        "are defined)"));
}

TEST(Match, ExactlyOneKind) {
  EXPECT_THAT(route_error("        match: {service: a.B, prefix: /a.}\n"
                          "        upstream: app\n"),
              HasSubstr("t.yaml:6:16: listeners[0].routes[0].match: match needs exactly one of "
                        "method, service or prefix (got several)"));
  EXPECT_THAT(route_error("        match: {}\n"
                          "        upstream: app\n"),
              HasSubstr("t.yaml:6:16: listeners[0].routes[0].match: match needs exactly one of "
                        "method, service or prefix (got none)"));
  EXPECT_THAT(route_error("        match: {path: /a.B/C}\n"
                          "        upstream: app\n"),
              HasSubstr("t.yaml:6:17: listeners[0].routes[0].match.path: unknown key \"path\" "
                        "(allowed: method, service, prefix)"));
}

TEST(Match, MethodMustBeAFullPath) {
  for (const char* bad : {"reports.Reports/Generate", "/reports.Reports", "/reports.Reports/",
                          "//Generate", "/a.B/C/D", "'/a B/C'"}) {
    EXPECT_THAT(route_error(std::string("        match: {method: ") + bad + "}\n" +
                            "        upstream: app\n"),
                HasSubstr("t.yaml:6:25: listeners[0].routes[0].match.method: bad method \""))
        << bad;
  }
  EXPECT_THAT(route_error("        match: {method: reports.Reports/Generate}\n"
                          "        upstream: app\n"),
              HasSubstr("bad method \"reports.Reports/Generate\" (expected a full method path "
                        "like /pkg.Service/Method)"));
}

TEST(Match, ServiceIsANameWithoutSlashes) {
  EXPECT_THAT(route_error("        match: {service: /shop.Inventory}\n"
                          "        upstream: app\n"),
              HasSubstr("t.yaml:6:26: listeners[0].routes[0].match.service: bad service "
                        "\"/shop.Inventory\" (expected a fully-qualified service name like "
                        "pkg.Service, without slashes)"));
}

TEST(Match, PrefixMustStartWithASlash) {
  EXPECT_THAT(route_error("        match: {prefix: shop.}\n"
                          "        upstream: app\n"),
              HasSubstr("t.yaml:6:25: listeners[0].routes[0].match.prefix: bad prefix \"shop.\" "
                        "(method paths start with \"/\", so this would never match)"));
}

TEST(Timeouts, BadDurationHasTheIssuesFormat) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        timeout: 25\n"),
              HasSubstr("t.yaml:8:18: listeners[0].routes[0].timeout: bad duration \"25\" "
                        "(expected a number followed by ms, s or m)"));
}

TEST(Timeouts, NegativeAndZeroAreRejected) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        min_budget: -5ms\n"),
              HasSubstr("t.yaml:8:21: listeners[0].routes[0].min_budget: bad duration \"-5ms\" "
                        "(durations cannot be negative)"));
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        timeout: 0s\n"),
              HasSubstr("t.yaml:8:18: listeners[0].routes[0].timeout: must be greater than 0s"));
}

TEST(Timeouts, MaxTimeoutBelowTimeout) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        timeout: 250ms\n"
                          "        max_timeout: 200ms\n"),
              HasSubstr("t.yaml:9:22: listeners[0].routes[0].max_timeout: 200ms is less than the "
                        "route's timeout 250ms"));
}

TEST(Timeouts, MaxTimeoutBelowListenerDefault) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        max_timeout: 500ms\n"),
              HasSubstr("t.yaml:8:22: listeners[0].routes[0].max_timeout: 500ms is less than the "
                        "listener's default_timeout 1s (the route sets no timeout)"));
}

TEST(Timeouts, MinBudgetNotBelowEffectiveTimeout) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        timeout: 5ms\n"
                          "        min_budget: 5ms\n"),
              HasSubstr("t.yaml:9:21: listeners[0].routes[0].min_budget: 5ms is not less than "
                        "the route's timeout 5ms, so every call would fail at once"));
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        min_budget: 2s\n"),
              HasSubstr("t.yaml:8:21: listeners[0].routes[0].min_budget: 2s is not less than the "
                        "listener's default_timeout 1s"));
}

TEST(Timeouts, DeadlineOffsetNotBelowEffectiveTimeout) {
  EXPECT_THAT(route_error("        match: {prefix: /}\n"
                          "        upstream: app\n"
                          "        timeout: 100ms\n"
                          "        deadline_offset: 100ms\n"),
              HasSubstr("t.yaml:9:26: listeners[0].routes[0].deadline_offset: 100ms is not less "
                        "than the route's timeout 100ms, so no time would be left for upstream"));
}

TEST(Timeouts, AllKnobsLoad) {
  absl::StatusOr<Config> config = load_config_string(with_routes("      - name: r\n"
                                                                 "        match: {prefix: /}\n"
                                                                 "        upstream: app\n"
                                                                 "        timeout: 1.5s\n"
                                                                 "        max_timeout: 2m\n"
                                                                 "        min_budget: 10ms\n"
                                                                 "        deadline_offset: 3ms\n"),
                                                     "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Route& route = config->listeners[0].routes[0];
  EXPECT_EQ(route.timeout, milliseconds(1500));
  EXPECT_EQ(route.max_timeout, std::chrono::minutes(2));
  EXPECT_EQ(route.min_budget, milliseconds(10));
  EXPECT_EQ(route.deadline_offset, milliseconds(3));
}

}  // namespace
}  // namespace curfew::config
