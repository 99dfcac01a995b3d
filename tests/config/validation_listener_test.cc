// Validation of listeners: required keys, addresses, limits, duplicate names and addresses, and
// the route table as a whole (duplicate route names, unreachable routes).

#include <chrono>
#include <string>

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

// Listener entries, each a line of "  - {...}" starting on line 2, plus a one-route table.
std::string with_listeners(std::string_view listeners) {
  return "listeners:\n" + std::string(listeners) + std::string(kUpstreams);
}

constexpr std::string_view kRoutes = "routes: [{name: r, match: {prefix: /}, upstream: app}]";

std::string listener(std::string_view fields) {
  return "  - {" + std::string(fields) + ", " + std::string(kRoutes) + "}\n";
}

TEST(Listener, NameIsRequired) {
  EXPECT_THAT(load_error("listeners:\n"
                         "  - address: 127.0.0.1:15001\n"
                         "    routes: [{name: r, match: {prefix: /}, upstream: app}]\n" +
                         std::string(kUpstreams)),
              HasSubstr("t.yaml:2:5: listeners[0].name: required key missing (every listener "
                        "needs a name)"));
}

TEST(Listener, AddressIsRequired) {
  EXPECT_THAT(load_error("listeners:\n"
                         "  - name: in\n"
                         "    routes: [{name: r, match: {prefix: /}, upstream: app}]\n" +
                         std::string(kUpstreams)),
              HasSubstr("t.yaml:2:5: listeners[0].address: required key missing (a listener "
                        "needs a host:port to listen on)"));
}

TEST(Listener, RoutesAreRequiredAndNonEmpty) {
  EXPECT_THAT(load_error("listeners:\n  - {name: in, address: 127.0.0.1:1}\n"),
              HasSubstr("t.yaml:2:5: listeners[0].routes: required key missing (a listener "
                        "without routes rejects every call)"));
  EXPECT_THAT(load_error("listeners:\n  - {name: in, address: 127.0.0.1:1, routes: []}\n"),
              HasSubstr("t.yaml:2:46: listeners[0].routes: a listener without routes rejects "
                        "every call"));
}

TEST(Listener, AddressMustBeHostPort) {
  // Columns: "  - {name: in, address: " is 24 characters, so the address starts at column 25.
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1"))),
              HasSubstr("t.yaml:2:25: listeners[0].address: bad address \"127.0.0.1\" (expected "
                        "host:port)"));
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: ':15001'"))),
              HasSubstr("t.yaml:2:25: listeners[0].address: bad address \":15001\" (missing "
                        "host; use 0.0.0.0 for every interface)"));
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1:99999"))),
              HasSubstr("port must be a number in [0, 65535]"));
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1:http"))),
              HasSubstr("port must be a number in [0, 65535]"));
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: '::1:15001'"))),
              HasSubstr("put IPv6 hosts in brackets, e.g. [::1]:15001"));
}

TEST(Listener, AcceptedAddressForms) {
  for (const char* address : {"0.0.0.0:15001", "localhost:15001", "'[::]:15001'", "'[::1]:0'"}) {
    absl::StatusOr<Config> config = load_config_string(
        with_listeners(listener(std::string("name: in, address: ") + address)), "t.yaml");
    EXPECT_TRUE(config.ok()) << address << ": " << config.status();
  }
}

TEST(Listener, DuplicateNames) {
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1:1") +
                                        listener("name: in, address: 127.0.0.1:2"))),
              HasSubstr("t.yaml:3:12: listeners[1].name: duplicate listener name \"in\""));
}

TEST(Listener, DuplicateAddresses) {
  EXPECT_THAT(load_error(with_listeners(listener("name: a, address: 127.0.0.1:15001") +
                                        listener("name: b, address: 127.0.0.1:15001"))),
              HasSubstr("t.yaml:3:24: listeners[1].address: address \"127.0.0.1:15001\" "
                        "conflicts with listeners[0].address (\"127.0.0.1:15001\")"));
}

TEST(Listener, WildcardAddressConflictsWithAnyHostOnThatPort) {
  EXPECT_THAT(load_error(with_listeners(listener("name: a, address: 0.0.0.0:15001") +
                                        listener("name: b, address: 127.0.0.1:15001"))),
              HasSubstr("t.yaml:3:24: listeners[1].address: address \"127.0.0.1:15001\" "
                        "conflicts with listeners[0].address (\"0.0.0.0:15001\")"));
  // Different ports, or two kernel-chosen ports (0), are fine.
  EXPECT_TRUE(load_config_string(with_listeners(listener("name: a, address: 0.0.0.0:15001") +
                                                listener("name: b, address: 127.0.0.1:15002")),
                                 "t.yaml")
                  .ok());
  EXPECT_TRUE(load_config_string(with_listeners(listener("name: a, address: 127.0.0.1:0") +
                                                listener("name: b, address: 127.0.0.1:0")),
                                 "t.yaml")
                  .ok());
}

TEST(Listener, AddressConflictsWithAdmin) {
  EXPECT_THAT(load_error(with_listeners(listener("name: a, address: 127.0.0.1:9901"))),
              HasSubstr("t.yaml:2:24: listeners[0].address: address \"127.0.0.1:9901\" conflicts "
                        "with admin.address (\"127.0.0.1:9901\")"));
}

TEST(Listener, DefaultTimeoutMustBeAPositiveDuration) {
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1:1, "
                                                 "default_timeout: 1"))),
              HasSubstr("t.yaml:2:55: listeners[0].default_timeout: bad duration \"1\""));
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1:1, "
                                                 "default_timeout: -1s"))),
              HasSubstr("t.yaml:2:55: listeners[0].default_timeout: bad duration \"-1s\" "
                        "(durations cannot be negative)"));
  EXPECT_THAT(load_error(with_listeners(listener("name: in, address: 127.0.0.1:1, "
                                                 "default_timeout: 0s"))),
              HasSubstr("t.yaml:2:55: listeners[0].default_timeout: must be greater than 0s"));
}

TEST(Listener, DefaultTimeoutDefaultsToOneSecond) {
  absl::StatusOr<Config> config =
      load_config_string(with_listeners(listener("name: in, address: 127.0.0.1:1")), "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listeners[0].default_timeout, std::chrono::seconds(1));
}

TEST(Limits, EachKeyIsOptional) {
  absl::StatusOr<Config> config = load_config_string(
      "listeners:\n"
      "  - name: in\n"
      "    address: 127.0.0.1:1\n"
      "    limits: {max_concurrent_calls: 50, max_message_bytes: 1048576}\n"
      "    routes: [{name: r, match: {prefix: /}, upstream: app}]\n" +
          std::string(kUpstreams),
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const Limits& limits = config->listeners[0].limits;
  EXPECT_EQ(limits.max_concurrent_calls, 50);
  EXPECT_EQ(limits.max_message_bytes, 1 << 20);
  EXPECT_EQ(limits.max_metadata_bytes, 64 << 10);                 // Default.
  EXPECT_EQ(limits.max_concurrent_streams_per_connection, 1000);  // Default.
}

TEST(Limits, ValuesMustBePositiveIntegers) {
  const std::string prefix = "listeners:\n  - name: in\n    address: 127.0.0.1:1\n    limits:\n";
  const std::string routes =
      "    routes: [{name: r, match: {prefix: /}, upstream: app}]\n" + std::string(kUpstreams);
  EXPECT_THAT(load_error(prefix + "      max_concurrent_calls: 0\n" + routes),
              HasSubstr("t.yaml:5:29: listeners[0].limits.max_concurrent_calls: must be between 1 "
                        "and 2147483647, got 0"));
  EXPECT_THAT(load_error(prefix + "      max_message_bytes: 64MB\n" + routes),
              HasSubstr("t.yaml:5:26: listeners[0].limits.max_message_bytes: expected an "
                        "integer, got \"64MB\""));
  EXPECT_THAT(load_error(prefix + "      max_streams: 10\n" + routes),
              HasSubstr("t.yaml:5:7: listeners[0].limits.max_streams: unknown key "));
}

TEST(Routes, DuplicateRouteNames) {
  EXPECT_THAT(load_error(with_routes("      - {name: r, match: {service: a.B}, upstream: app}\n"
                                     "      - {name: r, match: {service: a.C}, upstream: app}\n")),
              HasSubstr("t.yaml:6:16: listeners[0].routes[1].name: duplicate route name \"r\" "
                        "(also listeners[0].routes[0])"));
}

TEST(Routes, SameRouteNameInDifferentListenersIsFine) {
  EXPECT_TRUE(load_config_string(with_listeners(listener("name: a, address: 127.0.0.1:1") +
                                                listener("name: b, address: 127.0.0.1:2")),
                                 "t.yaml")
                  .ok());
}

TEST(Routes, EverythingAfterACatchAllIsUnreachable) {
  EXPECT_THAT(load_error(with_routes("      - {name: all, match: {prefix: /}, upstream: app}\n"
                                     "      - {name: late, match: {service: a.B}, upstream: b}\n")),
              HasSubstr("t.yaml:6:29: listeners[0].routes[1].match: route \"late\" is "
                        "unreachable: every call it matches (service: a.B) is already taken by "
                        "earlier route \"all\" (listeners[0].routes[0], prefix: /)"));
}

TEST(Routes, MethodAfterItsServiceIsUnreachable) {
  EXPECT_THAT(
      load_error(with_routes("      - {name: svc, match: {service: a.B}, upstream: app}\n"
                             "      - {name: one, match: {method: /a.B/X}, upstream: b}\n")),
      HasSubstr("t.yaml:6:28: listeners[0].routes[1].match: route \"one\" is unreachable: "
                "every call it matches (method: /a.B/X) is already taken by earlier route "
                "\"svc\""));
}

TEST(Routes, ServiceAfterACoveringPrefixIsUnreachable) {
  EXPECT_THAT(load_error(with_routes("      - {name: pkg, match: {prefix: /a.}, upstream: app}\n"
                                     "      - {name: svc, match: {service: a.B}, upstream: b}\n")),
              HasSubstr("t.yaml:6:28: listeners[0].routes[1].match: route \"svc\" is unreachable: "
                        "every call it matches (service: a.B) is already taken by earlier route "
                        "\"pkg\" (listeners[0].routes[0], prefix: /a.)"));
}

TEST(Routes, IdenticalMatchIsUnreachable) {
  EXPECT_THAT(load_error(with_routes("      - {name: x, match: {method: /a.B/X}, upstream: app}\n"
                                     "      - {name: y, match: {service: c.D}, upstream: app}\n"
                                     "      - {name: z, match: {method: /a.B/X}, upstream: b}\n")),
              HasSubstr("t.yaml:7:26: listeners[0].routes[2].match: route \"z\" is unreachable: "
                        "every call it matches (method: /a.B/X) is already taken by earlier route "
                        "\"x\" (listeners[0].routes[0], method: /a.B/X)"));
}

TEST(Routes, SpecificBeforeGeneralIsFine) {
  absl::StatusOr<Config> config = load_config_string(
      with_routes("      - {name: one, match: {method: /a.B/X}, upstream: app}\n"
                  "      - {name: svc, match: {service: a.B}, upstream: app}\n"
                  "      - {name: other, match: {service: a.BC}, upstream: app}\n"
                  "      - {name: pkg, match: {prefix: /a.}, upstream: app}\n"
                  "      - {name: all, match: {prefix: /}, upstream: app}\n"),
      "t.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
}

}  // namespace
}  // namespace curfew::config
