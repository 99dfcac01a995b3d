// upstreams_json(): the admin endpoint /upstreams — each loop's view of each upstream's endpoint
// set (sidecar::UpstreamReport) as JSON, for people and scripts debugging balancing:
//
//   {"upstreams": [{"upstream": "payments", "worker": 0, "balancer": "peak_ewma",
//                   "resolve_errors": [],
//                   "endpoints": [{"address": "10.1.2.3:50051", "target": "dns:///pay:50051",
//                                  "state": "healthy", "connected": true, "outstanding": 2,
//                                  "latency_ms": 1.25, "consecutive_failures": 0,
//                                  "ejections": 0, "ejected_for_s": 0, "last_error": ""}]}]}
//
// latency_ms is null before the first observation. Sorted by upstream, then worker.
#pragma once

#include <string>
#include <vector>

#include "sidecar/endpoint_report.h"

namespace curfew::metrics {

std::string upstreams_json(std::vector<sidecar::UpstreamReport> reports);

}  // namespace curfew::metrics
