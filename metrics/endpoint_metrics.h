// EndpointMetrics: curfew_upstream_endpoints{upstream, state}, the addresses of each upstream's
// endpoint set by state, from the loops' own reports (sidecar::UpstreamReport) taken at scrape
// time. Several workers each keep their own view of a set: an address counts once, as ejected
// if any worker ejected it, as draining if any drains it (the state a caller may run into).
//
// The family is declared in metrics/metric_families.h (kEndpointFamilies) and listed in
// docs/metrics.md.
#pragma once

#include <functional>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "sidecar/endpoint_report.h"

namespace curfew::metrics {

class EndpointMetrics final : public prometheus::Collectable {
 public:
  // `reports` is called on each scrape (the admin server's scrape thread): it must be safe
  // there and return in bounded time (Sidecar::upstream_reports is).
  explicit EndpointMetrics(std::function<std::vector<sidecar::UpstreamReport>()> reports)
      : reports_(std::move(reports)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::function<std::vector<sidecar::UpstreamReport>()> reports_;
};

}  // namespace curfew::metrics
