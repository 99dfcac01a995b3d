// Validation of the per-route policies: retry, fanout and mirror.

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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A route on line 5 with `upstream: app` and the given block-style policy on line 8.
//   line 5: "      - name: r"
//   line 6: "        match: {prefix: /}"
//   line 7: "        upstream: app"
//   line 8: "        <policy>"
std::string with_policy(std::string_view policy) {
  return with_routes(
      "      - name: r\n"
      "        match: {prefix: /}\n"
      "        upstream: app\n"
      "        " +
      std::string(policy) + "\n");
}

// A route on line 5 with the given `fanout:` value on line 7 (starting at column 17).
std::string with_fanout(std::string_view fanout) {
  return with_routes(
      "      - name: r\n"
      "        match: {prefix: /}\n"
      "        fanout: " +
      std::string(fanout) + "\n");
}

absl::StatusOr<Route> load_route(const std::string& yaml) {
  absl::StatusOr<Config> config = load_config_string(yaml, "t.yaml");
  if (!config.ok()) return config.status();
  return config->listeners.at(0).routes.at(0);
}

// Retry. The retry mapping on line 8 starts at column 16: "        retry: {".

TEST(Retry, DefaultsForOptionalKeys) {
  absl::StatusOr<Route> route =
      load_route(with_policy("retry: {attempts: 2, per_try_timeout: 50ms}"));
  ASSERT_TRUE(route.ok()) << route.status();
  ASSERT_TRUE(route->retry.has_value());
  EXPECT_EQ(route->retry->attempts, 2);
  EXPECT_EQ(route->retry->per_try_timeout, milliseconds(50));
  EXPECT_EQ(route->retry->backoff_base, milliseconds(25));
  EXPECT_EQ(route->retry->backoff_max, milliseconds(250));
  EXPECT_THAT(route->retry->on, ElementsAre(14));  // UNAVAILABLE.
  EXPECT_DOUBLE_EQ(route->retry->budget_ratio, 0.2);
}

TEST(Retry, BackoffMaxDefaultsToTenTimesBase) {
  absl::StatusOr<Route> route =
      load_route(with_policy("retry: {attempts: 2, per_try_timeout: 50ms, backoff: {base: 5ms}, "
                             "budget_ratio: 0.5}"));
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->retry->backoff_base, milliseconds(5));
  EXPECT_EQ(route->retry->backoff_max, milliseconds(50));
  EXPECT_DOUBLE_EQ(route->retry->budget_ratio, 0.5);
}

TEST(Retry, AttemptsInOneToTen) {
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 11, per_try_timeout: 50ms}")),
              HasSubstr("t.yaml:8:27: listeners[0].routes[0].retry.attempts: must be between 1 "
                        "and 10, got 11"));
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 0, per_try_timeout: 50ms}")),
              HasSubstr("retry.attempts: must be between 1 and 10, got 0"));
  EXPECT_THAT(load_error(with_policy("retry: {per_try_timeout: 50ms}")),
              HasSubstr("t.yaml:8:16: listeners[0].routes[0].retry.attempts: required key "
                        "missing (total tries, first one included)"));
}

TEST(Retry, PerTryTimeoutIsRequiredAndPositive) {
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3, per_try_timeout: 0ms}")),
              HasSubstr("t.yaml:8:47: listeners[0].routes[0].retry.per_try_timeout: must be "
                        "greater than 0s"));
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3}")),
              HasSubstr("t.yaml:8:16: listeners[0].routes[0].retry.per_try_timeout: required key "
                        "missing"));
}

TEST(Retry, OnTakesStatusCodeNames) {
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3, per_try_timeout: 1ms, on: [UNAVAILABLE, "
                                     "unavailable]}")),
              HasSubstr("t.yaml:8:70: listeners[0].routes[0].retry.on[1]: unknown gRPC status code "
                        "\"unavailable\" (expected one of: OK, CANCELLED, UNKNOWN, "
                        "INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, "
                        "PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, "
                        "OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, "
                        "UNAUTHENTICATED)"));
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3, per_try_timeout: 1ms, on: [14]}")),
              HasSubstr("retry.on[0]: unknown gRPC status code \"14\""));
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3, per_try_timeout: 1ms, on: [OK]}")),
              HasSubstr("retry.on[0]: OK is success, not a failure that could be retried"));
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3, per_try_timeout: 1ms, on: []}")),
              HasSubstr("t.yaml:8:56: listeners[0].routes[0].retry.on: list at least one status "
                        "code to retry on"));
}

TEST(Retry, OnConvertsEveryNameToItsCode) {
  absl::StatusOr<Route> route = load_route(
      with_policy("retry: {attempts: 3, per_try_timeout: 1ms, on: [CANCELLED, DEADLINE_EXCEEDED, "
                  "ABORTED, INTERNAL, DATA_LOSS]}"));
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_THAT(route->retry->on, ElementsAre(1, 4, 10, 13, 15));
}

TEST(Retry, BackoffMaxNotBelowBase) {
  EXPECT_THAT(load_error(with_policy("retry: {attempts: 3, per_try_timeout: 1ms, backoff: {base: "
                                     "10ms, max: 5ms}}")),
              HasSubstr("t.yaml:8:79: listeners[0].routes[0].retry.backoff.max: 5ms is less than "
                        "backoff.base 10ms"));
}

TEST(Retry, BudgetRatioIsAFraction) {
  EXPECT_THAT(
      load_error(with_policy("retry: {attempts: 3, per_try_timeout: 1ms, budget_ratio: 20}")),
      HasSubstr("t.yaml:8:66: listeners[0].routes[0].retry.budget_ratio: must be between 0 "
                "and 1, got 20"));
}

// Fanout. The fanout mapping on line 7 starts at column 17: "        fanout: {".

TEST(Fanout, ModeIsAllQuorumOrHedge) {
  EXPECT_THAT(load_error(with_fanout("{mode: any, upstreams: [app, b]}")),
              HasSubstr("t.yaml:7:24: listeners[0].routes[0].fanout.mode: unknown mode \"any\" "
                        "(expected all, quorum or hedge)"));
  EXPECT_THAT(load_error(with_fanout("{upstreams: [app, b]}")),
              HasSubstr("t.yaml:7:17: listeners[0].routes[0].fanout.mode: required key missing"));
}

TEST(Fanout, AtLeastTwoUpstreams) {
  EXPECT_THAT(load_error(with_fanout("{mode: all, upstreams: [app]}")),
              HasSubstr("t.yaml:7:40: listeners[0].routes[0].fanout.upstreams: fanout needs at "
                        "least 2 upstreams, got 1"));
}

TEST(Fanout, UpstreamsMustExistAndBeDistinct) {
  EXPECT_THAT(load_error(with_fanout("{mode: all, upstreams: [app, shard-x]}")),
              HasSubstr("t.yaml:7:46: listeners[0].routes[0].fanout.upstreams[1]: unknown "
                        "upstream \"shard-x\" (defined: app, b, c, d)"));
  EXPECT_THAT(load_error(with_fanout("{mode: all, upstreams: [app, b, app]}")),
              HasSubstr("t.yaml:7:49: listeners[0].routes[0].fanout.upstreams[2]: upstream "
                        "\"app\" is listed twice"));
}

TEST(Fanout, QuorumInOneToN) {
  EXPECT_THAT(load_error(with_fanout("{mode: quorum, upstreams: [app, b, c], quorum: 4}")),
              HasSubstr("t.yaml:7:64: listeners[0].routes[0].fanout.quorum: must be between 1 and "
                        "3, got 4"));
  EXPECT_THAT(load_error(with_fanout("{mode: quorum, upstreams: [app, b, c], quorum: 0}")),
              HasSubstr("fanout.quorum: must be between 1 and 3, got 0"));
}

TEST(Fanout, QuorumDefaultsToAMajority) {
  absl::StatusOr<Route> route =
      load_route(with_fanout("{mode: quorum, upstreams: [app, b, c, d]}"));
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->fanout->quorum, 3);
  EXPECT_EQ(route->fanout->merge, Fanout::kConcat);
}

TEST(Fanout, QuorumOnlyForQuorumMode) {
  EXPECT_THAT(load_error(with_fanout("{mode: all, upstreams: [app, b], quorum: 1}")),
              HasSubstr("t.yaml:7:58: listeners[0].routes[0].fanout.quorum: quorum only applies "
                        "to mode: quorum (this is mode: all)"));
}

TEST(Fanout, DelayOnlyForHedgeMode) {
  EXPECT_THAT(load_error(with_fanout("{mode: quorum, upstreams: [app, b], delay: 20ms}")),
              HasSubstr("t.yaml:7:60: listeners[0].routes[0].fanout.delay: delay only applies to "
                        "mode: hedge (this is mode: quorum)"));
}

TEST(Fanout, HedgeNeedsADelay) {
  EXPECT_THAT(load_error(with_fanout("{mode: hedge, upstreams: [app, b]}")),
              HasSubstr("t.yaml:7:17: listeners[0].routes[0].fanout.delay: required key missing "
                        "(how long to wait before sending the hedged copy)"));
}

TEST(Fanout, MergeIsConcatOrFirst) {
  EXPECT_THAT(load_error(with_fanout("{mode: all, upstreams: [app, b], merge: union}")),
              HasSubstr("t.yaml:7:57: listeners[0].routes[0].fanout.merge: unknown merge \"union\" "
                        "(expected concat or first)"));
  EXPECT_THAT(load_error(with_fanout("{mode: hedge, upstreams: [app, b], delay: 5ms, merge: "
                                     "concat}")),
              HasSubstr("fanout.merge: mode: hedge returns one response; merge must be first"));
  absl::StatusOr<Route> route =
      load_route(with_fanout("{mode: all, upstreams: [app, b], merge: first}"));
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->fanout->merge, Fanout::kFirst);
  EXPECT_EQ(route->fanout->quorum, 2);
}

TEST(Fanout, RouteUpstreamIsEmpty) {
  absl::StatusOr<Route> route =
      load_route(with_fanout("{mode: hedge, upstreams: [b, c], delay: 0ms}"));
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->upstream, "");
  EXPECT_EQ(route->fanout->delay, milliseconds(0));  // Explicitly zero: a plain race.
}

// Mirror. The mirror mapping on line 8 starts at column 17: "        mirror: {".

TEST(Mirror, UpstreamMustExist) {
  EXPECT_THAT(load_error(with_policy("mirror: {upstream: canary, percent: 10}")),
              HasSubstr("t.yaml:8:28: listeners[0].routes[0].mirror.upstream: unknown upstream "
                        "\"canary\" (defined: app, b, c, d)"));
  EXPECT_THAT(load_error(with_policy("mirror: {percent: 10}")),
              HasSubstr("t.yaml:8:17: listeners[0].routes[0].mirror.upstream: required key "
                        "missing"));
}

TEST(Mirror, PercentInZeroToHundred) {
  EXPECT_THAT(load_error(with_policy("mirror: {upstream: b, percent: 150}")),
              HasSubstr("t.yaml:8:40: listeners[0].routes[0].mirror.percent: must be between 0 and "
                        "100, got 150"));
  EXPECT_THAT(load_error(with_policy("mirror: {upstream: b, percent: -1}")),
              HasSubstr("mirror.percent: must be between 0 and 100, got -1"));
  EXPECT_THAT(load_error(with_policy("mirror: {upstream: b, percent: 10%}")),
              HasSubstr("mirror.percent: expected a number, got \"10%\""));
}

TEST(Mirror, PercentDefaultsToAll) {
  absl::StatusOr<Route> route = load_route(with_policy("mirror: {upstream: b}"));
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->mirror->upstream, "b");
  EXPECT_DOUBLE_EQ(route->mirror->percent, 100);
}

}  // namespace
}  // namespace curfew::config
