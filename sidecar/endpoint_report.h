// EndpointReport: what one loop knows of an upstream's endpoint set, for the admin listing
// (/upstreams) and the endpoint gauge (curfew_upstream_endpoints). A snapshot: taken on each
// loop thread, handed to whoever asked (Sidecar::upstream_reports()).
#pragma once

#include <string>
#include <vector>

namespace curfew::sidecar {

struct EndpointReport {
  std::string address;            // "127.0.0.2:50051"
  std::string target;             // the configured endpoint it came from
  const char* state = "healthy";  // kEndpointStateLabels: healthy, ejected, draining
  bool connected = false;         // a connection that takes streams
  int outstanding = 0;            // calls on it now
  double latency_ms = -1;         // peak-EWMA estimate now; -1 before the first observation
  int consecutive_failures = 0;
  int ejections = 0;         // ejections in a row (the next lasts base x 2^ejections)
  double ejected_for_s = 0;  // time left in the current ejection
  std::string last_error;    // "" after a success
};

struct UpstreamReport {
  std::string upstream;
  int loop = 0;  // the loop (worker) whose view this is
  const char* balancer = "";
  std::vector<EndpointReport> endpoints;
  std::vector<std::string> resolve_errors;  // "target: why", of targets whose last lookup failed
};

}  // namespace curfew::sidecar
