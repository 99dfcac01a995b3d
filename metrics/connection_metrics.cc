#include "metrics/connection_metrics.h"

#include <utility>

#include "metrics/internal/family.h"
#include "metrics/metric_families.h"

namespace curfew::metrics {
namespace {

using internal::Family;
using internal::LabelIndex;

using SideLabels = LabelIndex<sidecar::kConnectionSideLabels>;
using ReasonLabels = LabelIndex<sidecar::kCloseReasonLabels>;
using FailureLabels = LabelIndex<sidecar::kConnectFailureLabels>;

static_assert(SideLabels::kSize == ConnectionMetrics::kSides);
static_assert(ReasonLabels::kSize == ConnectionMetrics::kCloseReasons);
static_assert(FailureLabels::kSize == ConnectionMetrics::kConnectFailures);
static_assert(ReasonLabels::of(h2::CloseReason::kOpen) < 0, "a running connection has no reason");

// Every cell loaded once, at the start of a scrape.
struct Totals {
  std::array<int64_t, ConnectionMetrics::kSides> open{};
  std::array<std::array<uint64_t, ConnectionMetrics::kCloseReasons>, ConnectionMetrics::kSides>
      closed{};
  std::array<uint64_t, ConnectionMetrics::kConnectFailures> connect_failures{};
  std::map<std::string, uint64_t> ejections;
  std::map<std::string, uint64_t> resolve_failures;
};

// Each family declared in kConnectionFamilies has one collector, collect(totals, family) below
// (the primary template is deleted, so a declared family without a collector does not compile).
//
// Every series of every family is exposed from the start, zeros included: the label sets are
// fixed and few (2 sides, 2 × 7 closes, 4 connect failures), and a series that exists before its
// first event lets dashboards show it and rate() / increase() count that first event.
template <const MetricFamilyDecl& D>
void collect(const Totals& t, Family<D>& f) = delete;

template <>
void collect(const Totals& t, Family<family::kConnections>& f) {
  for (size_t s = 0; s < SideLabels::kSize; ++s) {
    f.gauge({sidecar::kConnectionSideLabels[s].label}, static_cast<double>(t.open[s]));
  }
}

template <>
void collect(const Totals& t, Family<family::kConnectionsClosed>& f) {
  for (size_t s = 0; s < SideLabels::kSize; ++s) {
    for (size_t r = 0; r < ReasonLabels::kSize; ++r) {
      f.counter({sidecar::kConnectionSideLabels[s].label, sidecar::kCloseReasonLabels[r].label},
                t.closed[s][r]);
    }
  }
}

template <>
void collect(const Totals& t, Family<family::kUpstreamConnectFailures>& f) {
  for (size_t r = 0; r < FailureLabels::kSize; ++r) {
    f.counter({sidecar::kConnectFailureLabels[r].label}, t.connect_failures[r]);
  }
}

// By upstream, from its first ejection on (upstream names are not known in advance).
template <>
void collect(const Totals& t, Family<family::kUpstreamEndpointEjections>& f) {
  for (const auto& [upstream, n] : t.ejections) f.counter({upstream}, n);
}

// By upstream, from its first failed lookup on.
template <>
void collect(const Totals& t, Family<family::kUpstreamResolveFailures>& f) {
  for (const auto& [upstream, n] : t.resolve_failures) f.counter({upstream}, n);
}

}  // namespace

// Relaxed: each cell is a count on its own; nothing else is published through it. fetch_add,
// not the load-and-store of CallMetrics' single-writer cells: here several threads write a cell.

void ConnectionMetrics::connection_opened(sidecar::ConnectionSide side) noexcept {
  const int s = SideLabels::of(side);
  if (s < 0) return;
  open_[static_cast<size_t>(s)].fetch_add(1, std::memory_order_relaxed);
}

void ConnectionMetrics::connection_closed(sidecar::ConnectionSide side,
                                          h2::CloseReason reason) noexcept {
  const int s = SideLabels::of(side);
  if (s < 0) return;
  // The gauge never goes below 0: a connection is closed on the thread that opened it, after it
  // opened, so its decrement follows its increment in the cell's modification order.
  open_[static_cast<size_t>(s)].fetch_sub(1, std::memory_order_relaxed);
  if (const int r = ReasonLabels::of(reason); r >= 0) {
    closed_[static_cast<size_t>(s)][static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
}

void ConnectionMetrics::upstream_connect_failed(sidecar::ConnectFailure why) noexcept {
  const int r = FailureLabels::of(why);
  if (r < 0) return;
  connect_failures_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
}

void ConnectionMetrics::endpoint_ejected(const std::string& upstream) {
  std::lock_guard lock(ejections_mu_);
  ++ejections_[upstream];
}

void ConnectionMetrics::upstream_resolve_failed(const std::string& upstream) {
  std::lock_guard lock(ejections_mu_);
  ++resolve_failures_[upstream];
}

std::vector<prometheus::MetricFamily> ConnectionMetrics::Collect() const {
  Totals totals;
  {
    std::lock_guard lock(ejections_mu_);
    totals.ejections = ejections_;
    totals.resolve_failures = resolve_failures_;
  }
  for (size_t s = 0; s < kSides; ++s) {
    totals.open[s] = open_[s].load(std::memory_order_relaxed);
    for (size_t r = 0; r < kCloseReasons; ++r) {
      totals.closed[s][r] = closed_[s][r].load(std::memory_order_relaxed);
    }
  }
  for (size_t r = 0; r < kConnectFailures; ++r) {
    totals.connect_failures[r] = connect_failures_[r].load(std::memory_order_relaxed);
  }

  return internal::build_families<kConnectionFamilies>(totals);
}

}  // namespace curfew::metrics
