// WorkerState: what a listener's loop thread keeps across calls — retry budgets and a random
// generator. One per worker, touched only by its thread: no lock on the per-call path.
#pragma once

#include <random>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "sidecar/retry.h"

namespace curfew::sidecar {

struct WorkerState {
  // By route name, so a budget survives reloads that keep the route.
  absl::flat_hash_map<std::string, RetryBudget> retry_budgets;
  std::minstd_rand random{std::random_device{}()};

  RetryBudget& retry_budget(const std::string& route, double ratio) {
    auto [it, inserted] = retry_budgets.try_emplace(route, ratio);
    if (!inserted) it->second.set_ratio(ratio);
    return it->second;
  }
};

}  // namespace curfew::sidecar
