#include <climits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/duration.h"
#include "config/internal/decode.h"
#include "config/internal/strings.h"

namespace curfew::config::internal {
namespace {

bool has_space_or_slash(std::string_view text) {
  for (char c : text) {
    if (c == '/' || absl::ascii_isspace(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

// A full method path is "/" service "/" method, as sent in the HTTP/2 :path header.
void check_method_path(const Value& value, std::string_view path) {
  const size_t slash = path.find('/', 1);
  const bool ok = path.starts_with('/') && slash != std::string_view::npos && slash > 1 &&
                  slash + 1 < path.size() && !has_space_or_slash(path.substr(1, slash - 1)) &&
                  !has_space_or_slash(path.substr(slash + 1));
  if (!ok) {
    value.fail(absl::StrCat("bad method \"", to_absl(path),
                            "\" (expected a full method path like /pkg.Service/Method)"));
  }
}

void check_service_name(const Value& value, std::string_view service) {
  if (has_space_or_slash(service)) {
    value.fail(absl::StrCat("bad service \"", to_absl(service),
                            "\" (expected a fully-qualified service name like pkg.Service, "
                            "without slashes)"));
  }
}

// Describes where the route's effective timeout comes from, for messages comparing against it.
std::string effective_timeout_text(const Route& route, std::chrono::nanoseconds effective) {
  return route.timeout ? absl::StrCat("the route's timeout ", format_duration(effective))
                       : absl::StrCat("the listener's default_timeout ", format_duration(effective),
                                      " (the route sets no timeout)");
}

}  // namespace

Match decode_match(const Value& value) {
  value.expect_keys({"method", "service", "prefix"});
  const Value method = value.get("method");
  const Value service = value.get("service");
  const Value prefix = value.get("prefix");
  const int count = method.present() + service.present() + prefix.present();
  if (count != 1) {
    value.fail(absl::StrCat("match needs exactly one of method, service or prefix (got ",
                            count == 0 ? "none" : "several", ")"));
  }
  Match match;
  if (method.present()) {
    match = {Match::kMethod, method.as_string()};
    check_method_path(method, match.value);
  } else if (service.present()) {
    match = {Match::kService, service.as_string()};
    check_service_name(service, match.value);
  } else {
    match = {Match::kPrefix, prefix.as_string()};
    if (!match.value.starts_with('/')) {
      prefix.fail(absl::StrCat("bad prefix \"", match.value,
                               "\" (method paths start with \"/\", so this would never match)"));
    }
  }
  return match;
}

std::string upstream_reference(const Value& value, const std::vector<Upstream>& upstreams) {
  std::string name = value.as_string();
  std::vector<absl::string_view> known;
  for (const Upstream& upstream : upstreams) {
    if (upstream.name == name) return name;
    known.push_back(upstream.name);
  }
  value.fail(absl::StrCat("unknown upstream \"", name, "\" (",
                          known.empty() ? "no upstreams are defined"
                                        : absl::StrCat("defined: ", absl::StrJoin(known, ", ")),
                          ")"));
}

Route decode_route(const Value& value, const RouteContext& context) {
  value.expect_keys({"name", "match", "upstream", "fanout", "timeout", "max_timeout", "min_budget",
                     "deadline_offset", "retry", "hedge", "mirror", "max_concurrent_calls"});
  Route route;
  route.name = value.require("name", "every route needs a name").as_string();
  route.match = decode_match(value.require("match", "a route needs a method, service or prefix"));

  const Value upstream = value.get("upstream");
  const Value fanout = value.get("fanout");
  if (upstream.present() && fanout.present()) {
    fanout.fail("a route has either upstream or fanout, not both");
  }
  if (upstream.present()) {
    route.upstream = upstream_reference(upstream, context.upstreams);
  } else if (fanout.present()) {
    route.fanout = decode_fanout(fanout, context.upstreams);
  } else {
    upstream.fail("required key missing (a route needs an upstream, or a fanout)");
  }

  if (const Value v = value.get("timeout"); v.present()) route.timeout = v.as_duration(true);
  if (const Value v = value.get("max_timeout"); v.present())
    route.max_timeout = v.as_duration(true);
  if (const Value v = value.get("min_budget"); v.present()) route.min_budget = v.as_duration();
  if (const Value v = value.get("deadline_offset"); v.present()) {
    route.deadline_offset = v.as_duration();
  }

  // The three knobs below are compared with the deadline a call gets when the caller sends
  // none; a config where they contradict it would reject or cut short every such call.
  const std::chrono::nanoseconds effective = route.timeout.value_or(context.default_timeout);
  if (route.max_timeout && *route.max_timeout < effective) {
    value.get("max_timeout")
        .fail(absl::StrCat(format_duration(*route.max_timeout), " is less than ",
                           effective_timeout_text(route, effective)));
  }
  if (route.min_budget >= effective) {
    value.get("min_budget")
        .fail(absl::StrCat(format_duration(route.min_budget), " is not less than ",
                           effective_timeout_text(route, effective),
                           ", so every call would fail at once"));
  }
  if (route.deadline_offset >= effective) {
    value.get("deadline_offset")
        .fail(absl::StrCat(format_duration(route.deadline_offset), " is not less than ",
                           effective_timeout_text(route, effective),
                           ", so no time would be left for upstream"));
  }

  if (const Value v = value.get("max_concurrent_calls"); v.present()) {
    route.max_concurrent_calls = static_cast<int>(v.as_int(1, INT_MAX));
    if (*route.max_concurrent_calls > context.max_concurrent_calls) {
      v.fail(absl::StrCat(*route.max_concurrent_calls,
                          " is more than the listener's limits.max_concurrent_calls (",
                          context.max_concurrent_calls, "), so it would never apply"));
    }
  }

  if (const Value v = value.get("retry"); v.present()) route.retry = decode_retry(v);
  if (const Value v = value.get("hedge"); v.present()) {
    if (!route.upstream.empty()) {
      route.hedge = decode_hedge(v, route.upstream);
    } else {
      v.fail("hedge is for a route with an upstream (a fanout hedges with mode: hedge)");
    }
    if (route.retry) v.fail("a route retries or hedges, not both");
  }
  if (const Value v = value.get("mirror"); v.present()) {
    route.mirror = decode_mirror(v, context.upstreams);
  }
  return route;
}

}  // namespace curfew::config::internal
