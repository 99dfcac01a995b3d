#include "config/config.h"

namespace curfew::config {
namespace {

// Every match selects either a set of paths sharing a prefix (prefix and service matches) or a
// single path (method matches). Reducing to that form makes covers() a two-case comparison.
struct PathSet {
  std::string_view text;
  bool is_prefix;
};

std::string service_prefix(std::string_view service) { return "/" + std::string(service) + "/"; }

}  // namespace

bool Match::matches(std::string_view method) const {
  switch (kind) {
    case kMethod:
      return method == value;
    case kService:
      // Compare piecewise rather than building "/service/" on every call: this is the hot path.
      return method.size() >= value.size() + 2 && method[0] == '/' &&
             method.substr(1, value.size()) == value && method[value.size() + 1] == '/';
    case kPrefix:
      return method.starts_with(value);
  }
  return false;
}

bool Match::covers(const Match& other) const {
  const std::string mine_text = kind == kService ? service_prefix(value) : value;
  const std::string theirs_text =
      other.kind == kService ? service_prefix(other.value) : other.value;
  const PathSet mine{mine_text, kind != kMethod};
  const PathSet theirs{theirs_text, other.kind != kMethod};
  if (!mine.is_prefix) {
    // One exact path only covers that same exact path.
    return !theirs.is_prefix && mine.text == theirs.text;
  }
  // Everything starting with `theirs` (or `theirs` itself) also starts with `mine`.
  return theirs.text.starts_with(mine.text);
}

const Route* Listener::route_for(std::string_view method) const {
  for (const Route& route : routes) {
    if (route.match.matches(method)) return &route;
  }
  return nullptr;
}

const char* balancer_name(Upstream::Balancer balancer) noexcept {
  switch (balancer) {
    case Upstream::Balancer::kPeakEwma:
      return "peak_ewma";
    case Upstream::Balancer::kRoundRobin:
      return "round_robin";
  }
  return "?";
}

const Upstream* Config::find_upstream(std::string_view name) const {
  for (const Upstream& upstream : upstreams) {
    if (upstream.name == name) return &upstream;
  }
  return nullptr;
}

}  // namespace curfew::config
