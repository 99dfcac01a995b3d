// reloadable(before, after) (sidecar/sidecar.h): a reload may change routes, upstreams and
// timeouts, but not the listeners (their set, order, names, addresses, socket-level limits) nor
// busy_poll. Configs are built from YAML with config::load_config_string, as the binary builds
// them.
#include <string>

#include <gtest/gtest.h>

#include "config/load.h"
#include "sidecar/sidecar.h"

namespace curfew::sidecar {
namespace {

// Two listeners so that "which one changed" is visible in the messages. Each test replaces one
// piece of text in it.
const std::string kBase = R"(
admin:
  address: 127.0.0.1:9901
listeners:
  - name: inbound
    address: 127.0.0.1:15001
    default_timeout: 1s
    limits:
      max_concurrent_calls: 2000
      max_message_bytes: 4194304
      max_metadata_bytes: 16384
      max_concurrent_streams_per_connection: 100
    routes:
      - name: slow
        match: {method: /curfew.demo.Demo/Slow}
        upstream: backend
        timeout: 200ms
      - name: default
        match: {prefix: /}
        upstream: backend
  - name: admin-api
    address: 127.0.0.1:15002
    routes:
      - name: all
        match: {prefix: /}
        upstream: backend
upstreams:
  - name: backend
    endpoints: [127.0.0.1:8080]
workers: 2
busy_poll: 0.05ms
)";

// kBase with `from` (which must occur exactly once) replaced by `to`.
std::string with(const std::string& from, const std::string& to, const std::string& base = kBase) {
  const size_t at = base.find(from);
  EXPECT_NE(at, std::string::npos) << "not in the base config: " << from;
  EXPECT_EQ(base.find(from, at + 1), std::string::npos) << "more than once: " << from;
  if (at == std::string::npos) return base;
  std::string out = base;
  out.replace(at, from.size(), to);
  return out;
}

config::Config load(const std::string& yaml, const std::string& name = "test.yaml") {
  auto config = config::load_config_string(yaml, name);
  EXPECT_TRUE(config.ok()) << config.status() << "\n" << yaml;
  return config.ok() ? *std::move(config) : config::Config{};
}

absl::Status check(const std::string& after) { return reloadable(load(kBase), load(after)); }

void expect_refused(const absl::Status& status, const std::string& message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(status.message(), message);
}

TEST(Reloadable, BaseConfigLoads) {
  const config::Config c = load(kBase);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.worker_threads, 2);
  EXPECT_EQ(c.busy_poll, std::chrono::microseconds(50));
  EXPECT_EQ(c.listeners[0].limits.max_message_bytes, 4194304);
}

TEST(Reloadable, SameConfigIsReloadable) { EXPECT_TRUE(check(kBase).ok()) << check(kBase); }

TEST(Reloadable, SameConfigFromAnotherSourceIsReloadable) {
  EXPECT_TRUE(reloadable(load(kBase, "a.yaml"), load(kBase, "b.yaml")).ok());
}

// --- Listeners: refused, naming what changed -----------------------------------------------------

TEST(Reloadable, ListenerAddedIsRefused) {
  const std::string added = with("upstreams:\n", R"(  - name: third
    address: 127.0.0.1:15003
    routes:
      - {name: all, match: {prefix: /}, upstream: backend}
upstreams:
)");
  expect_refused(check(added), "the set of listeners changed; restart curfew to apply it");
}

TEST(Reloadable, ListenerRemovedIsRefused) {
  const std::string removed = with(R"(  - name: admin-api
    address: 127.0.0.1:15002
    routes:
      - name: all
        match: {prefix: /}
        upstream: backend
)",
                                   "");
  expect_refused(check(removed), "the set of listeners changed; restart curfew to apply it");
  expect_refused(reloadable(load(removed), load(kBase)),
                 "the set of listeners changed; restart curfew to apply it");
}

TEST(Reloadable, ListenerRenamedIsRefused) {
  expect_refused(check(with("name: inbound", "name: ingress")),
                 "listener 'inbound' on 127.0.0.1:15001 became 'ingress' on 127.0.0.1:15001; "
                 "restart curfew to apply it");
}

TEST(Reloadable, ListenerAddressChangedIsRefused) {
  expect_refused(check(with("address: 127.0.0.1:15001", "address: 0.0.0.0:15001")),
                 "listener 'inbound' on 127.0.0.1:15001 became 'inbound' on 0.0.0.0:15001; "
                 "restart curfew to apply it");
}

TEST(Reloadable, SecondListenerChangeNamesTheSecondListener) {
  expect_refused(check(with("address: 127.0.0.1:15002", "address: 127.0.0.1:16002")),
                 "listener 'admin-api' on 127.0.0.1:15002 became 'admin-api' on 127.0.0.1:16002; "
                 "restart curfew to apply it");
}

// Listeners are compared by position: the same two listeners in the other order are refused.
TEST(Reloadable, ListenersReorderedIsRefused) {
  const std::string inbound = R"(  - name: inbound
    address: 127.0.0.1:15001
    default_timeout: 1s
    limits:
      max_concurrent_calls: 2000
      max_message_bytes: 4194304
      max_metadata_bytes: 16384
      max_concurrent_streams_per_connection: 100
    routes:
      - name: slow
        match: {method: /curfew.demo.Demo/Slow}
        upstream: backend
        timeout: 200ms
      - name: default
        match: {prefix: /}
        upstream: backend
)";
  const std::string without_inbound = with(inbound, "");
  const std::string reordered = with("upstreams:\n", inbound + "upstreams:\n", without_inbound);
  ASSERT_EQ(load(reordered).listeners.size(), 2u);
  ASSERT_EQ(load(reordered).listeners[0].name, "admin-api");
  expect_refused(check(reordered),
                 "listener 'inbound' on 127.0.0.1:15001 became 'admin-api' on 127.0.0.1:15002; "
                 "restart curfew to apply it");
}

TEST(Reloadable, MaxMessageBytesChangedIsRefused) {
  expect_refused(check(with("max_message_bytes: 4194304", "max_message_bytes: 1048576")),
                 "limits of listener 'inbound' on 127.0.0.1:15001 changed; "
                 "restart curfew to apply them");
}

TEST(Reloadable, MaxMetadataBytesChangedIsRefused) {
  expect_refused(check(with("max_metadata_bytes: 16384", "max_metadata_bytes: 32768")),
                 "limits of listener 'inbound' on 127.0.0.1:15001 changed; "
                 "restart curfew to apply them");
}

TEST(Reloadable, MaxConcurrentStreamsChangedIsRefused) {
  expect_refused(check(with("max_concurrent_streams_per_connection: 100",
                            "max_concurrent_streams_per_connection: 101")),
                 "limits of listener 'inbound' on 127.0.0.1:15001 changed; "
                 "restart curfew to apply them");
}

// A hostile-connection limit is read when a connection is accepted, from the listener's start.
TEST(Reloadable, ConnectionLimitChangedIsRefused) {
  expect_refused(check(with("max_concurrent_streams_per_connection: 100",
                            "max_concurrent_streams_per_connection: 100\n"
                            "      connection: {handshake_timeout: 3s}")),
                 "limits of listener 'inbound' on 127.0.0.1:15001 changed; "
                 "restart curfew to apply them");
}

// Removing an explicit limit returns it to its default, which differs: refused.
TEST(Reloadable, LimitBackToDefaultIsRefused) {
  expect_refused(check(with("      max_metadata_bytes: 16384\n", "")),
                 "limits of listener 'inbound' on 127.0.0.1:15001 changed; "
                 "restart curfew to apply them");
}

// Limits set explicitly to their defaults equal no limits at all.
TEST(Reloadable, ExplicitDefaultLimitsEqualNone) {
  const std::string explicit_defaults = with(R"(    address: 127.0.0.1:15002
)",
                                             R"(    address: 127.0.0.1:15002
    limits: {max_concurrent_calls: 10000, max_message_bytes: 67108864, max_metadata_bytes: 65536,
             max_concurrent_streams_per_connection: 1000}
)");
  EXPECT_TRUE(check(explicit_defaults).ok()) << check(explicit_defaults);
}

// max_concurrent_calls is documented as reloadable (config.h).
TEST(Reloadable, MaxConcurrentCallsChangedIsReloadable) {
  const absl::Status status = check(with("max_concurrent_calls: 2000", "max_concurrent_calls: 10"));
  EXPECT_TRUE(status.ok()) << status;
}

// A listener change is reported before a busy_poll change.
TEST(Reloadable, FirstProblemIsReported) {
  const std::string both =
      with("busy_poll: 0.05ms", "busy_poll: 0.1ms", with("name: inbound", "name: ingress"));
  expect_refused(check(both),
                 "listener 'inbound' on 127.0.0.1:15001 became 'ingress' on 127.0.0.1:15001; "
                 "restart curfew to apply it");
}

// --- Process-wide settings -------------------------------------------------------------------

TEST(Reloadable, BusyPollChangedIsRefused) {
  expect_refused(check(with("busy_poll: 0.05ms", "busy_poll: 0.1ms")),
                 "busy_poll changed; restart curfew to apply it");
  expect_refused(check(with("busy_poll: 0.05ms\n", "")),
                 "busy_poll changed; restart curfew to apply it");
}

TEST(Reloadable, BusyPollZeroEqualsUnset) {
  const config::Config unset = load(with("busy_poll: 0.05ms\n", ""));
  const config::Config zero = load(with("busy_poll: 0.05ms", "busy_poll: 0s"));
  EXPECT_TRUE(reloadable(unset, zero).ok());
  EXPECT_TRUE(reloadable(zero, unset).ok());
}

// reloadable() does not look at workers: a changed count is accepted (main.cc then logs that the
// listeners keep their worker threads until a restart).
TEST(Reloadable, WorkersChangedIsAccepted) {
  EXPECT_TRUE(check(with("workers: 2", "workers: 8")).ok());
  EXPECT_TRUE(check(with("workers: 2\n", "")).ok());
}

// Likewise admin.address (main.cc keeps the admin server where it is and logs a warning).
TEST(Reloadable, AdminAddressChangedIsAccepted) {
  EXPECT_TRUE(check(with("address: 127.0.0.1:9901", "address: 127.0.0.1:9902")).ok());
}

TEST(Reloadable, DrainTimeoutChangedIsReloadable) {
  EXPECT_TRUE(check(with("workers: 2", "workers: 2\ndrain_timeout: 30s")).ok());
}

// --- Routes, upstreams, timeouts: reloadable
// ------------------------------------------------------

TEST(Reloadable, RouteTimeoutChangedIsReloadable) {
  EXPECT_TRUE(check(with("timeout: 200ms", "timeout: 5s")).ok());
}

TEST(Reloadable, DefaultTimeoutChangedIsReloadable) {
  EXPECT_TRUE(check(with("default_timeout: 1s", "default_timeout: 250ms")).ok());
}

TEST(Reloadable, RoutePolicyAddedIsReloadable) {
  EXPECT_TRUE(check(with("        timeout: 200ms\n",
                         "        timeout: 200ms\n        max_timeout: 1s\n"
                         "        min_budget: 10ms\n        deadline_offset: 5ms\n"))
                  .ok());
}

TEST(Reloadable, RouteAddedAndRemovedIsReloadable) {
  const std::string route_removed = with(R"(      - name: slow
        match: {method: /curfew.demo.Demo/Slow}
        upstream: backend
        timeout: 200ms
)",
                                         "");
  EXPECT_TRUE(check(route_removed).ok());
  EXPECT_TRUE(reloadable(load(route_removed), load(kBase)).ok());
}

TEST(Reloadable, UpstreamsChangedIsReloadable) {
  const std::string changed = with(R"(upstreams:
  - name: backend
    endpoints: [127.0.0.1:8080]
)",
                                   R"(upstreams:
  - name: backend
    endpoints: [127.0.0.1:9090, 127.0.0.1:9091]
  - name: other
    endpoints: ["dns:///other.svc:50051"]
)");
  EXPECT_TRUE(check(changed).ok());
}

TEST(Reloadable, RouteToAnotherUpstreamIsReloadable) {
  const std::string changed = with(R"(upstreams:
  - name: backend
    endpoints: [127.0.0.1:8080]
)",
                                   R"(upstreams:
  - name: backend
    endpoints: [127.0.0.1:8080]
  - name: other
    endpoints: [127.0.0.1:8081]
)",
                                   with(R"(      - name: all
        match: {prefix: /}
        upstream: backend)",
                                        R"(      - name: all
        match: {prefix: /}
        upstream: other)"));
  EXPECT_TRUE(check(changed).ok());
}

}  // namespace
}  // namespace curfew::sidecar
