#include "metrics/server_metrics.h"

#include <chrono>

namespace curfew::metrics {
namespace {

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

prometheus::Family<prometheus::Counter>& reloads_family(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("curfew_config_reloads_total")
      .Help("Configuration reloads (SIGHUP or a change of the file), by result: ok (applied) or "
            "error (refused; the previous configuration keeps serving).")
      .Register(r);
}

}  // namespace

ServerMetrics::ServerMetrics(const std::string& version)
    : reloads_ok_(reloads_family(registry_).Add({{"result", "ok"}})),
      reloads_error_(reloads_family(registry_).Add({{"result", "error"}})),
      last_reload_successful_(
          prometheus::BuildGauge()
              .Name("curfew_config_last_reload_successful")
              .Help("1 if the last configuration load or reload was applied, 0 if it was refused.")
              .Register(registry_)
              .Add({})),
      last_reload_success_time_(
          prometheus::BuildGauge()
              .Name("curfew_config_last_reload_success_timestamp_seconds")
              .Help("Unix time of the last configuration applied (at start or by a reload).")
              .Register(registry_)
              .Add({})) {
  prometheus::BuildGauge()
      .Name("curfew_build_info")
      .Help("Always 1; the version label says which curfew is running.")
      .Register(registry_)
      .Add({{"version", version}})
      .Set(1);
  prometheus::BuildGauge()
      .Name("process_start_time_seconds")
      .Help("Start time of the process since unix epoch in seconds.")
      .Register(registry_)
      .Add({})
      .Set(unix_seconds_now());
  // The configuration curfew started with was applied (it does not start otherwise).
  last_reload_successful_.Set(1);
  last_reload_success_time_.Set(unix_seconds_now());
}

void ServerMetrics::reload_succeeded() {
  reloads_ok_.Increment();
  last_reload_successful_.Set(1);
  last_reload_success_time_.Set(unix_seconds_now());
}

void ServerMetrics::reload_failed() {
  reloads_error_.Increment();
  last_reload_successful_.Set(0);
}

void ServerMetrics::set_readiness(std::function<bool()> ready) {
  std::lock_guard<std::mutex> lock(ready_mu_);
  ready_ = std::move(ready);
}

std::vector<prometheus::MetricFamily> ServerMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> families = registry_.Collect();
  prometheus::MetricFamily ready;
  ready.name = "curfew_ready";
  ready.help = "1 when curfew is ready for traffic (configuration loaded, not draining), else 0.";
  ready.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric value;
  {
    std::lock_guard<std::mutex> lock(ready_mu_);
    value.gauge.value = ready_ && ready_() ? 1 : 0;
  }
  ready.metric.push_back(std::move(value));
  families.push_back(std::move(ready));
  return families;
}

}  // namespace curfew::metrics
