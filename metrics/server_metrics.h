// ServerMetrics: curfew's process-level metrics — build info, configuration reloads, readiness —
// in a prometheus::Registry. Updated by the main thread only (start, reloads), so prometheus-cpp's
// own metrics and their locks are fine here; per-call metrics live in CallMetrics.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace curfew::metrics {

class ServerMetrics final : public prometheus::Collectable {
 public:
  explicit ServerMetrics(const std::string& version);

  // A configuration reload (SIGHUP or a file change) was applied / refused.
  void reload_succeeded();
  void reload_failed();

  // The value of curfew_ready at scrape time (1 when `ready()` is true). Unset: 0.
  void set_readiness(std::function<bool()> ready);

  prometheus::Registry& registry() noexcept { return registry_; }

  // Collectable: the registry's families plus curfew_ready.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  prometheus::Registry registry_;
  prometheus::Counter& reloads_ok_;
  prometheus::Counter& reloads_error_;
  prometheus::Gauge& last_reload_successful_;
  prometheus::Gauge& last_reload_success_time_;
  mutable std::mutex ready_mu_;
  std::function<bool()> ready_;
};

}  // namespace curfew::metrics
