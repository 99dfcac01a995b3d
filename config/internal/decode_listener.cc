#include <climits>

#include "absl/strings/str_cat.h"
#include "config/internal/address.h"
#include "config/internal/decode.h"

namespace curfew::config::internal {
namespace {

ConnectionLimits decode_connection_limits(const Value& value) {
  value.expect_keys({"handshake_timeout", "headers_timeout", "max_age", "max_age_grace",
                     "control_frame_burst", "control_frames_per_second", "resets_per_second",
                     "rapid_reset_min_streams", "rapid_reset_percent", "max_continuations"});
  ConnectionLimits limits;
  const auto read = [&](std::string_view key, int& field, int64_t min, int64_t max) {
    if (const Value v = value.get(key); v.present()) field = static_cast<int>(v.as_int(min, max));
  };
  const auto read_timeout = [&](std::string_view key, std::chrono::nanoseconds& field) {
    if (const Value v = value.get(key); v.present()) field = v.as_duration();
  };
  read_timeout("handshake_timeout", limits.handshake_timeout);
  read_timeout("headers_timeout", limits.headers_timeout);
  read_timeout("max_age", limits.max_age);
  read_timeout("max_age_grace", limits.max_age_grace);
  read("control_frame_burst", limits.control_frame_burst, 1, INT_MAX);
  read("control_frames_per_second", limits.control_frames_per_second, 1, INT_MAX);
  read("resets_per_second", limits.resets_per_second, 1, INT_MAX);
  // The rule looks at the last 1000 streams: more than that could never trip it.
  read("rapid_reset_min_streams", limits.rapid_reset_min_streams, 1, 1000);
  read("rapid_reset_percent", limits.rapid_reset_percent, 1, 100);
  read("max_continuations", limits.max_continuations, 0, 1000);
  return limits;
}

Limits decode_limits(const Value& value) {
  value.expect_keys({"max_concurrent_calls", "max_message_bytes", "max_metadata_bytes",
                     "max_concurrent_streams_per_connection", "connection"});
  Limits limits;
  const auto read = [&](std::string_view key, int& field) {
    if (const Value v = value.get(key); v.present()) field = static_cast<int>(v.as_int(1, INT_MAX));
  };
  read("max_concurrent_calls", limits.max_concurrent_calls);
  read("max_message_bytes", limits.max_message_bytes);
  read("max_metadata_bytes", limits.max_metadata_bytes);
  read("max_concurrent_streams_per_connection", limits.max_concurrent_streams_per_connection);
  if (const Value v = value.get("connection"); v.present())
    limits.connection = decode_connection_limits(v);
  return limits;
}

std::string describe_match(const Match& match) {
  switch (match.kind) {
    case Match::kMethod:
      return absl::StrCat("method: ", match.value);
    case Match::kService:
      return absl::StrCat("service: ", match.value);
    case Match::kPrefix:
      return absl::StrCat("prefix: ", match.value);
  }
  return "";
}

}  // namespace

Listener decode_listener(const Value& value, const std::vector<Upstream>& upstreams) {
  value.expect_keys({"name", "address", "default_timeout", "limits", "routes"});
  Listener listener;
  listener.name = value.require("name", "every listener needs a name").as_string();

  const Value address = value.require("address", "a listener needs a host:port to listen on");
  listener.address = address.as_string();
  HostPort ignored;
  if (absl::Status s = split_host_port(listener.address, ignored); !s.ok())
    address.fail(s.message());

  if (const Value v = value.get("default_timeout"); v.present()) {
    listener.default_timeout = v.as_duration(/*positive=*/true);
  }
  if (const Value v = value.get("limits"); v.present()) listener.limits = decode_limits(v);

  const Value routes = value.require("routes", "a listener without routes rejects every call");
  const std::vector<Value> items = routes.items();
  if (items.empty()) routes.fail("a listener without routes rejects every call");
  const RouteContext context{upstreams, listener.default_timeout,
                             listener.limits.max_concurrent_calls};
  for (size_t i = 0; i < items.size(); ++i) {
    Route route = decode_route(items[i], context);
    for (size_t earlier = 0; earlier < i; ++earlier) {
      const Route& other = listener.routes[earlier];
      const std::string where = absl::StrCat(routes.path(), "[", earlier, "]");
      if (other.name == route.name) {
        items[i].get("name").fail(
            absl::StrCat("duplicate route name \"", route.name, "\" (also ", where, ")"));
      }
      // First match wins, so a route whose calls all go to an earlier one is dead config and
      // almost certainly an ordering mistake.
      if (other.match.covers(route.match)) {
        items[i].get("match").fail(
            absl::StrCat("route \"", route.name, "\" is unreachable: every call it matches (",
                         describe_match(route.match), ") is already taken by earlier route \"",
                         other.name, "\" (", where, ", ", describe_match(other.match), ")"));
      }
    }
    listener.routes.push_back(std::move(route));
  }
  return listener;
}

}  // namespace curfew::config::internal
