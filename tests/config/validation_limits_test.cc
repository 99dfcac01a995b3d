// Concurrency limits: the per-route max_concurrent_calls (and how it relates to the listener's
// limits.max_concurrent_calls), its errors, and config/examples/limits.yaml.

#include <string>

#include "config/config.h"
#include "config/load.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/config/test_util.h"

namespace curfew::config {
namespace {

using ::curfew::config::testing::kUpstreams;
using ::curfew::config::testing::load_error;
using ::curfew::config::testing::with_routes;
using ::testing::HasSubstr;

std::string route_error(std::string_view keys) {
  return load_error(with_routes(
      "      - name: r\n        match: {prefix: /}\n        upstream: app\n" + std::string(keys)));
}

TEST(RouteLimits, UnsetByDefault) {
  auto config = load_config_string(
      with_routes("      - {name: r, match: {prefix: /}, upstream: app}\n"), "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->listeners[0].routes[0].max_concurrent_calls.has_value());
  EXPECT_EQ(config->listeners[0].limits.max_concurrent_calls, 10000);
}

TEST(RouteLimits, MaxConcurrentCallsIsRead) {
  auto config = load_config_string(
      with_routes(
          "      - {name: r, match: {prefix: /}, upstream: app, max_concurrent_calls: 7}\n"),
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listeners[0].routes[0].max_concurrent_calls, 7);
  EXPECT_THAT(describe(*config), HasSubstr("max 7 concurrent"));
}

TEST(RouteLimits, MustBePositive) {
  // "        max_concurrent_calls: " is 30 characters: the value is at column 31 of line 8.
  EXPECT_THAT(route_error("        max_concurrent_calls: 0\n"),
              HasSubstr("t.yaml:8:31: listeners[0].routes[0].max_concurrent_calls: must be between "
                        "1 and 2147483647, got 0"));
  EXPECT_THAT(
      route_error("        max_concurrent_calls: -3\n"),
      HasSubstr("t.yaml:8:31: listeners[0].routes[0].max_concurrent_calls: must be between"));
}

TEST(RouteLimits, MustBeAnInteger) {
  EXPECT_THAT(route_error("        max_concurrent_calls: lots\n"),
              HasSubstr("t.yaml:8:31: listeners[0].routes[0].max_concurrent_calls: expected an "));
  EXPECT_THAT(
      route_error("        max_concurrent_calls: 99999999999\n"),
      HasSubstr("t.yaml:8:31: listeners[0].routes[0].max_concurrent_calls: must be between"));
}

TEST(RouteLimits, MayNotExceedTheListenerLimit) {
  const std::string yaml =
      "listeners:\n"
      "  - name: in\n"
      "    address: 127.0.0.1:15001\n"
      "    limits: {max_concurrent_calls: 100}\n"
      "    routes:\n"
      "      - {name: ok, match: {method: /a.B/C}, upstream: app, max_concurrent_calls: 100}\n"
      "      - {name: r, match: {prefix: /}, upstream: app, max_concurrent_calls: 101}\n" +
      std::string(kUpstreams);
  // "      - {name: r, match: {prefix: /}, upstream: app, max_concurrent_calls: " is 75 characters.
  EXPECT_THAT(load_error(yaml),
              HasSubstr("t.yaml:7:76: listeners[0].routes[1].max_concurrent_calls: 101 is more "
                        "than the listener's limits.max_concurrent_calls (100), so it would never "
                        "apply"));
}

TEST(RouteLimits, TheListenerDefaultBoundsRoutesToo) {
  EXPECT_THAT(route_error("        max_concurrent_calls: 10001\n"),
              HasSubstr("t.yaml:8:31: listeners[0].routes[0].max_concurrent_calls: 10001 is more "
                        "than the listener's limits.max_concurrent_calls (10000)"));
}

TEST(RouteLimits, ExampleConfigLoads) {
  auto config = load_config_file(std::string(CURFEW_SOURCE_DIR) + "/config/examples/limits.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Listener& l = config->listeners[0];
  EXPECT_EQ(l.limits.max_concurrent_calls, 2000);
  EXPECT_EQ(l.limits.max_message_bytes, 4 << 20);
  EXPECT_EQ(l.limits.max_metadata_bytes, 16 << 10);
  EXPECT_EQ(l.limits.max_concurrent_streams_per_connection, 100);
  EXPECT_EQ(l.routes[0].max_concurrent_calls, 50);
  EXPECT_FALSE(l.routes[1].max_concurrent_calls.has_value());
  EXPECT_EQ(config->upstreams[0].connect_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(l.limits.connection.handshake_timeout, std::chrono::seconds(5));
  EXPECT_EQ(l.limits.connection.headers_timeout, std::chrono::seconds(5));
  EXPECT_EQ(l.limits.connection.rapid_reset_percent, 50);
  EXPECT_EQ(l.limits.connection.max_age, std::chrono::minutes(10));
  EXPECT_EQ(l.limits.connection.max_age_grace, std::chrono::minutes(2));
}

std::string with_connection_limits(const std::string& limits) {
  return "listeners:\n"
         "  - name: in\n"
         "    address: 127.0.0.1:15001\n"
         "    limits:\n"
         "      connection: " +
         limits +
         "\n"
         "    routes:\n"
         "      - {name: r, match: {prefix: /}, upstream: app}\n" +
         std::string(kUpstreams);
}

TEST(ConnectionLimits, DefaultsAreSetOnPurpose) {
  auto config = load_config_string(
      with_routes("      - {name: r, match: {prefix: /}, upstream: app}\n"), "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const ConnectionLimits& c = config->listeners[0].limits.connection;
  EXPECT_EQ(c.handshake_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c.headers_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c.control_frame_burst, 1000);
  EXPECT_EQ(c.control_frames_per_second, 100);
  EXPECT_EQ(c.resets_per_second, 10000);
  EXPECT_EQ(c.rapid_reset_min_streams, 200);
  EXPECT_EQ(c.rapid_reset_percent, 50);
  EXPECT_EQ(c.max_continuations, 8);
  EXPECT_EQ(c.max_age, std::chrono::minutes(30));
  EXPECT_EQ(c.max_age_grace, std::chrono::minutes(5));
}

TEST(ConnectionLimits, AreReadAndZeroTimeoutsTurnThemOff) {
  auto config = load_config_string(
      with_connection_limits("{handshake_timeout: 0s, headers_timeout: 2s, control_frame_burst: "
                             "10, control_frames_per_second: 5, resets_per_second: 7, "
                             "rapid_reset_min_streams: 20, rapid_reset_percent: 90, "
                             "max_continuations: 0}"),
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const ConnectionLimits& c = config->listeners[0].limits.connection;
  EXPECT_EQ(c.handshake_timeout, std::chrono::seconds(0));
  EXPECT_EQ(c.headers_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.control_frame_burst, 10);
  EXPECT_EQ(c.control_frames_per_second, 5);
  EXPECT_EQ(c.resets_per_second, 7);
  EXPECT_EQ(c.rapid_reset_min_streams, 20);
  EXPECT_EQ(c.rapid_reset_percent, 90);
  EXPECT_EQ(c.max_continuations, 0);
}

TEST(ConnectionLimits, BadValuesNameTheirField) {
  EXPECT_THAT(load_error(with_connection_limits("{rapid_reset_percent: 101}")),
              HasSubstr("listeners[0].limits.connection.rapid_reset_percent: must be between 1 "
                        "and 100, got 101"));
  EXPECT_THAT(load_error(with_connection_limits("{rapid_reset_min_streams: 5000}")),
              HasSubstr("listeners[0].limits.connection.rapid_reset_min_streams: must be "
                        "between 1 and 1000"));
  EXPECT_THAT(load_error(with_connection_limits("{control_frame_burst: 0}")),
              HasSubstr("listeners[0].limits.connection.control_frame_burst: must be between"));
  EXPECT_THAT(load_error(with_connection_limits("{handshake_timeout: soon}")),
              HasSubstr("listeners[0].limits.connection.handshake_timeout:"));
  EXPECT_THAT(load_error(with_connection_limits("{ping_flood: 3}")),
              HasSubstr("listeners[0].limits.connection"));
}

}  // namespace
}  // namespace curfew::config
