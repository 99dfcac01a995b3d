#include "sidecar/internal/admission.h"

#include <algorithm>

namespace curfew::sidecar {

std::vector<std::shared_ptr<ConcurrencyLimit>> RouteLimits::for_listener(
    const config::Listener& listener) {
  std::lock_guard<std::mutex> lock(mu_);
  // A route gone from the config needs its counter no more once nothing else holds it: no loop
  // still routing with an older routing, no call holding a slot (copies are only ever taken
  // from the map, under this mutex, or from those holders, so use_count() == 1 is final). A
  // counter still held stays, so the route's calls count against it if it comes back.
  std::erase_if(by_route_, [&](const auto& entry) {
    return entry.second.use_count() == 1 &&
           std::none_of(listener.routes.begin(), listener.routes.end(),
                        [&](const config::Route& r) { return r.name == entry.first; });
  });
  std::vector<std::shared_ptr<ConcurrencyLimit>> out;
  for (const config::Route& route : listener.routes) {
    std::shared_ptr<ConcurrencyLimit> limit;
    if (route.max_concurrent_calls) {
      auto& slot = by_route_[route.name];
      if (!slot) slot = std::make_shared<ConcurrencyLimit>();
      limit = slot;
    }
    out.push_back(std::move(limit));
  }
  return out;
}

size_t RouteLimits::kept() {
  std::lock_guard<std::mutex> lock(mu_);
  return by_route_.size();
}

std::string refusal_message(const config::Listener& listener, const config::Route* route,
                            Rejection why) {
  if (why == Rejection::kRouteLimit && route != nullptr && route->max_concurrent_calls) {
    return "curfew: route '" + route->name + "' is at its limit of " +
           std::to_string(*route->max_concurrent_calls) +
           " concurrent calls (max_concurrent_calls); the call was not forwarded";
  }
  return "curfew: listener '" + listener.name + "' is at its limit of " +
         std::to_string(listener.limits.max_concurrent_calls) +
         " concurrent calls (limits.max_concurrent_calls); the call was not forwarded";
}

}  // namespace curfew::sidecar
