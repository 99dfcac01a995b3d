#include "metrics/server_metrics.h"

#include <chrono>

#include "metrics/metric_families.h"

namespace curfew::metrics {
namespace {

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A prometheus-cpp family registered in `r` as `d` declares it (metric_families.h).
template <typename Builder>
auto& register_family(const MetricFamilyDecl& d, Builder builder, prometheus::Registry& r) {
  return builder.Name(std::string(d.name)).Help(std::string(d.help)).Register(r);
}

prometheus::Family<prometheus::Counter>& counter_family(const MetricFamilyDecl& d,
                                                        prometheus::Registry& r) {
  return register_family(d, prometheus::BuildCounter(), r);
}

prometheus::Family<prometheus::Gauge>& gauge_family(const MetricFamilyDecl& d,
                                                    prometheus::Registry& r) {
  return register_family(d, prometheus::BuildGauge(), r);
}

// The one series of a family declared with one label.
prometheus::Labels label(const MetricFamilyDecl& d, const std::string& value) {
  return {{std::string(d.labels[0]), value}};
}

}  // namespace

ServerMetrics::ServerMetrics(const std::string& version)
    : reloads_ok_(counter_family(family::kConfigReloads, registry_)
                      .Add(label(family::kConfigReloads, "ok"))),
      reloads_error_(counter_family(family::kConfigReloads, registry_)
                         .Add(label(family::kConfigReloads, "error"))),
      last_reload_successful_(gauge_family(family::kConfigLastReloadSuccessful, registry_).Add({})),
      last_reload_success_time_(
          gauge_family(family::kConfigLastReloadSuccessTime, registry_).Add({})) {
  gauge_family(family::kBuildInfo, registry_).Add(label(family::kBuildInfo, version)).Set(1);
  gauge_family(family::kProcessStartTime, registry_).Add({}).Set(unix_seconds_now());
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
  ready.name = family::kReady.name;
  ready.help = family::kReady.help;
  ready.type = family::kReady.type;
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
