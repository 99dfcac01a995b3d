#include "metrics/endpoint_metrics.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "metrics/internal/family.h"
#include "metrics/metric_families.h"

namespace curfew::metrics {
namespace {

using internal::Family;

constexpr const char* kStates[] = {"healthy", "ejected", "draining"};

int rank(const char* state) {
  for (int i = 0; i < 3; ++i)
    if (std::strcmp(state, kStates[i]) == 0) return i;
  return 0;
}

// upstream -> address -> the worst state any loop reports (healthy < ejected < draining). A
// struct of this namespace, so that build_families finds collect() below.
struct Totals {
  std::map<std::string, std::map<std::string, int>> upstreams;
};

template <const MetricFamilyDecl& D>
void collect(const Totals& t, Family<D>& f) = delete;

// Every state of every upstream with a set, zeros included.
template <>
void collect(const Totals& t, Family<family::kUpstreamEndpoints>& f) {
  for (const auto& [upstream, addresses] : t.upstreams) {
    int counts[3] = {};
    for (const auto& [address, state] : addresses) ++counts[state];
    for (int s = 0; s < 3; ++s) f.gauge({upstream, kStates[s]}, counts[s]);
  }
}

}  // namespace

std::vector<prometheus::MetricFamily> EndpointMetrics::Collect() const {
  Totals totals;
  const std::vector<sidecar::UpstreamReport> reports =
      reports_ ? reports_() : std::vector<sidecar::UpstreamReport>{};
  for (const sidecar::UpstreamReport& r : reports) {
    auto& addresses = totals.upstreams[r.upstream];
    for (const sidecar::EndpointReport& e : r.endpoints) {
      auto [it, inserted] = addresses.try_emplace(e.address, rank(e.state));
      if (!inserted) it->second = std::max(it->second, rank(e.state));
    }
  }
  return internal::build_families<kEndpointFamilies>(totals);
}

}  // namespace curfew::metrics
