// CallMetrics: the per-call Prometheus metrics of curfew, derived from the CallReport of every
// call.
//
// Design: a sharded store. The proxy reports each call on that call's loop thread, so every thread
// that reports gets a shard of its own (found through a thread_local cache, created on the
// thread's first report). A shard is written only by its owning thread, with relaxed atomic
// loads and stores (single writer: no read-modify-write, no lock). Label sets — (listener, route)
// and, below them, upstreams — are resolved in the shard's own hash map; the shard's mutex is
// taken by the owner only when it adds a label set it has never seen, and by the scraper. At
// scrape time Collect() sums every shard into prometheus::MetricFamily objects.
//
// So the per-call cost is: one thread_local lookup, one hash lookup of (listener, route) per
// call_started / call_finished, a linear scan of the route's few upstreams per attempt, and a
// handful of relaxed stores. No lock, nothing shared between loop threads.
//
// Every family (name, type, labels, help) is declared in metrics/metric_families.h, and listed with
// its meaning in docs/metrics.md.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "sidecar/call_report.h"

namespace curfew::metrics {

// The route label of calls that matched no route (curfew answered UNIMPLEMENTED).
inline constexpr std::string_view kUnmatchedRoute = "unmatched";

// Histogram bucket upper bounds, in seconds (+Inf is implicit).
// Call latency: from sub-millisecond proxying to long streams.
inline constexpr double kLatencyBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
// Remaining deadline budget when the upstream call starts.
inline constexpr double kBudgetBuckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,     2.5,   5,    10,    30,   60,  300};
// From a cancellation's cause to the upstream cancel being issued: microseconds, normally.
inline constexpr double kPropagationBuckets[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                                 0.0005,  0.001,    0.0025,  0.005,  0.01,
                                                 0.025,   0.05,     0.1,     0.25,   1};

class CallMetrics final : public sidecar::CallObserver, public prometheus::Collectable {
 public:
  CallMetrics();
  ~CallMetrics() override;
  CallMetrics(const CallMetrics&) = delete;
  CallMetrics& operator=(const CallMetrics&) = delete;

  // CallObserver: called on the call's loop thread. Never throw, never block.
  void call_started(const std::string& listener, const std::string* route) override;
  void call_finished(const sidecar::CallReport& report) override;
  void shadow_finished(const std::string& listener, const std::string& route,
                       const sidecar::UpstreamAttempt& attempt) override;

  // Collectable: sums every shard. Any thread; concurrent with the observers.
  std::vector<prometheus::MetricFamily> Collect() const override;

  // Shards created so far (one per reporting thread, normally). For tests.
  size_t shard_count() const;

  struct Shard;  // defined in call_metrics.cc

 private:
  Shard& shard();
  Shard& new_shard();

  const uint64_t id_;  // unique per instance, never reused: keys the thread_local shard cache
  mutable std::mutex shards_mu_;  // guards shards_ (appended once per thread; read by scrapes)
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace curfew::metrics
