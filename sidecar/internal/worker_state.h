// WorkerState: what a listener's loop thread keeps across calls — retry budgets, a random
// generator and the shadow copies of mirrored calls. One per worker, touched only by its thread:
// no lock on the per-call path.
#pragma once

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "config/config.h"
#include "runtime/task_group.h"
#include "sidecar/internal/retry.h"

namespace curfew::sidecar {

class WorkerState {
 public:
  // The retry budget of `route`, created on its first use. Shared: a call keeps its budget alive
  // across its suspensions however the map changes meanwhile (another route's first call
  // rehashes it; a reload prunes it), so no call ever holds a reference into the map.
  std::shared_ptr<RetryBudget> retry_budget(const std::string& route, double ratio) {
    auto [it, inserted] = retry_budgets_.try_emplace(route);
    if (inserted) {
      it->second = std::make_shared<RetryBudget>(ratio);
    } else {
      it->second->set_ratio(ratio);
    }
    return it->second;
  }

  // Forgets the budgets of routes `listener` no longer has (a reload renamed or removed them),
  // so reloads cannot grow the map without bound. Calls still using one keep it.
  void prune(const config::Listener& listener) {
    absl::erase_if(retry_budgets_, [&](const auto& entry) {
      return std::none_of(listener.routes.begin(), listener.routes.end(),
                          [&](const config::Route& r) { return r.name == entry.first; });
    });
  }

  size_t retry_budgets() const noexcept { return retry_budgets_.size(); }

  std::minstd_rand random{std::random_device{}()};

  // Shadows (sidecar/internal/shadow.h): the group they run in while the worker serves (null
  // otherwise), how many are in flight, and handles to cancel them when the listener shuts down.
  rt::TaskGroup* shadows = nullptr;
  int shadows_in_flight = 0;
  void reserve_shadow_handle() {
    std::erase_if(shadow_handles_, [](const rt::TaskHandle<void>& h) { return h.done(); });
    shadow_handles_.reserve(shadow_handles_.size() + 1);
  }
  void track_shadow(rt::TaskHandle<void> shadow) noexcept {  // after reserve_shadow_handle()
    shadow_handles_.push_back(std::move(shadow));
  }
  void cancel_shadows() {
    for (rt::TaskHandle<void>& h : shadow_handles_) h.cancel("listener shutting down");
    shadow_handles_.clear();
  }

 private:
  std::vector<rt::TaskHandle<void>> shadow_handles_;
  // By route name, so a budget survives reloads that keep the route.
  absl::flat_hash_map<std::string, std::shared_ptr<RetryBudget>> retry_budgets_;
};

}  // namespace curfew::sidecar
