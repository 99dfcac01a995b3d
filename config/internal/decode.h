// Decoders from YAML (wrapped in Value) to the config structs of config.h.
//
// Each decoder checks its own section completely, including references to upstreams, so that a
// Config that decodes is valid. All of them throw ConfigError on the first problem.

#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/internal/value.h"

namespace curfew::config::internal {

// decode_config()
//
// Decodes a whole document. Upstreams are decoded first, whatever their place in the file, so
// routes can be checked against them.
Config decode_config(const Value& root);

// decode_upstream()
//
// Decodes one entry of `upstreams:`.
Upstream decode_upstream(const Value& value);

// decode_listener()
//
// Decodes one entry of `listeners:`, including its routes; `upstreams` are those already decoded.
Listener decode_listener(const Value& value, const std::vector<Upstream>& upstreams);

// RouteContext
//
// What a route needs to know about its surroundings to be checked.
struct RouteContext {
  const std::vector<Upstream>& upstreams;
  std::chrono::nanoseconds default_timeout;  // The listener's.
  int max_concurrent_calls;                  // The listener's limits.max_concurrent_calls.
};

// decode_route()
//
// Decodes one route. Checks that only involve this route; the listener checks names and order.
Route decode_route(const Value& value, const RouteContext& context);

// decode_match()
//
// Decodes `match:`, which has exactly one of method, service or prefix.
Match decode_match(const Value& value);

// decode_retry()
//
// Decodes a route's `retry:` block.
Retry decode_retry(const Value& value);

// decode_fanout()
//
// Decodes a route's `fanout:` block.
Fanout decode_fanout(const Value& value, const std::vector<Upstream>& upstreams);

// decode_hedge()
//
// Decodes a route's `hedge:` block (hedging within `upstream`, the route's).
Hedge decode_hedge(const Value& value, const std::string& upstream);

// decode_mirror()
//
// Decodes a route's `mirror:` block.
Mirror decode_mirror(const Value& value, const std::vector<Upstream>& upstreams);

// upstream_reference()
//
// Returns the upstream name held by `value`, failing unless it names one of `upstreams`.
std::string upstream_reference(const Value& value, const std::vector<Upstream>& upstreams);

}  // namespace curfew::config::internal
