#include "metrics/call_metrics.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "config/status_codes.h"
#include "metrics/internal/family.h"
#include "metrics/metric_families.h"

namespace curfew::metrics {
namespace {

using internal::Family;
using internal::HistogramTotals;
using internal::LabelIndex;
using sidecar::CallReport;
using sidecar::CancelCause;
using sidecar::EnumLabel;
using sidecar::TimeoutCause;
using sidecar::UpstreamAttempt;

// ---- label values ---------------------------------------------------------------------------
//
// Each enum label's values are one table (sidecar/call_report.h); the cells of a counter with
// such a label are an array in the table's order (LabelIndex, metrics/internal/family.h), and the
// scrape walks the table.

using TimeoutLabels = LabelIndex<sidecar::kTimeoutCauseLabels>;
using CancelLabels = LabelIndex<sidecar::kCancelCauseLabels>;
using LimitLabels = LabelIndex<sidecar::kRejectionLabels>;
using ModeLabels = LabelIndex<sidecar::kFanoutModeLabels>;

// grpc_code: config's names, indexed by the code (0..16, fixed by the gRPC protocol).
constexpr size_t kCodes = std::size(config::kStatusCodeNames);
static_assert(kCodes == 17 && static_cast<int>(grpc::StatusCode::UNAUTHENTICATED) == 16);
constexpr size_t kUnknownCode = static_cast<size_t>(grpc::StatusCode::UNKNOWN);

size_t code_index(grpc::StatusCode code) noexcept {
  const int c = static_cast<int>(code);
  return c >= 0 && c < static_cast<int>(kCodes) ? static_cast<size_t>(c) : kUnknownCode;
}

// curfew_hedges_total{outcome}: what became of a hedge try (metrics' own notion).
enum class HedgeOutcome { kWon, kLost, kFailed, kCancelled };
constexpr EnumLabel<HedgeOutcome> kHedgeOutcomeLabels[] = {
    {HedgeOutcome::kWon, "won"},
    {HedgeOutcome::kLost, "lost"},
    {HedgeOutcome::kFailed, "failed"},
    {HedgeOutcome::kCancelled, "cancelled"},
};
using OutcomeLabels = LabelIndex<kHedgeOutcomeLabels>;

// Why curfew cancelled an attempt, if it did: a cancelled attempt ends CANCELLED (call_report.h).
// An attempt that finished with an answer of its own is taken as not cancelled even when a cause
// was recorded for it (e.g. the fan-out child whose own result decided the group).
CancelCause cancelled_by_curfew(const UpstreamAttempt& a) noexcept {
  return a.code == grpc::StatusCode::CANCELLED ? a.cancelled : CancelCause::kNone;
}

HedgeOutcome hedge_outcome(const UpstreamAttempt& a) noexcept {
  if (a.won) return HedgeOutcome::kWon;
  switch (cancelled_by_curfew(a)) {
    case CancelCause::kHedgeLost:
      return HedgeOutcome::kLost;
    case CancelCause::kCaller:
    case CancelCause::kDeadline:
    case CancelCause::kShutdown:
    case CancelCause::kSibling:
      return HedgeOutcome::kCancelled;
    case CancelCause::kNone:
      break;
  }
  // An OK answer not used also lost.
  return a.code == grpc::StatusCode::OK ? HedgeOutcome::kLost : HedgeOutcome::kFailed;
}

// A fan-out child (or hedge try) that failed on its own account: it ended with an error that is
// not curfew's decision to cancel it (the group's outcome, the losing hedge, the caller leaving,
// shutdown). Children cut by the call's deadline are failures: they did not answer in time.
bool child_failed(const UpstreamAttempt& a) noexcept {
  if (a.role != UpstreamAttempt::Role::kFanoutChild && a.role != UpstreamAttempt::Role::kHedge) {
    return false;
  }
  if (a.code == grpc::StatusCode::OK) return false;
  const CancelCause cause = cancelled_by_curfew(a);
  return cause == CancelCause::kNone || cause == CancelCause::kDeadline;
}

// The call's upstream work was cut because curfew's deadline (or a retry's per-try deadline)
// passed. Counted whichever timer fired first: curfew's own (the proxy reports a cancellation by
// the deadline) or the upstream call's gRPC deadline, the same instant unless the route has a
// deadline_offset (the proxy reports the upstream's DEADLINE_EXCEEDED after the budget ran out).
bool deadline_cut_upstream(const CallReport& r) noexcept {
  if (r.cancel == CancelCause::kDeadline) return true;
  const bool curfews_deadline = r.timeout == TimeoutCause::kRoute ||
                                r.timeout == TimeoutCause::kCaller ||
                                r.timeout == TimeoutCause::kPerTry;
  return curfews_deadline && !r.attempts.empty();
}

// ---- single-writer cells --------------------------------------------------------------------

// A counter written by one thread only: a relaxed load and store, no read-modify-write.
class Count {
 public:
  void add(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Level {
 public:
  void add(int64_t n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class Sum {
 public:
  void add(double x) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + x, std::memory_order_relaxed);
  }
  double get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

template <size_t N>
constexpr std::array<int64_t, N> to_nanoseconds(const double (&seconds)[N]) {
  std::array<int64_t, N> ns{};
  for (size_t i = 0; i < N; ++i) {
    // Bounds are positive, and std::llround is not constexpr (C++23).
    ns[i] = static_cast<int64_t>(seconds[i] * 1e9 + 0.5);  // NOLINT(bugprone-incorrect-roundings)
  }
  return ns;
}

// A histogram over durations with the bucket bounds `Bounds` (seconds). Buckets are kept
// non-cumulative; the sample count is their sum, so a scrape always sees count == +Inf bucket.
template <const auto& Bounds>
class Histogram {
 public:
  static constexpr size_t kBounds = std::size(Bounds);
  static constexpr std::array<int64_t, kBounds> kBoundsNs = to_nanoseconds(Bounds);

  void observe(rt::Duration d) noexcept {
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    const size_t i = static_cast<size_t>(std::lower_bound(kBoundsNs.begin(), kBoundsNs.end(), ns) -
                                         kBoundsNs.begin());
    buckets_[i].add();  // i == kBounds: +Inf
    sum_.add(static_cast<double>(ns) / 1e9);
  }

  std::array<Count, kBounds + 1> buckets_;
  Sum sum_;
};

using LatencyHistogram = Histogram<kLatencyBuckets>;
using BudgetHistogram = Histogram<kBudgetBuckets>;
using PropagationHistogram = Histogram<kPropagationBuckets>;

// ---- per label set --------------------------------------------------------------------------

// Cells are cache-line aligned so that no two threads' cells ever share a line.
struct alignas(64) UpstreamCells {
  explicit UpstreamCells(std::string_view name) : upstream(name) {}
  const std::string upstream;
  std::array<Count, kCodes> requests;        // curfew_upstream_requests_total
  std::array<Count, kCodes> child_failures;  // curfew_fanout_child_failures_total
};

struct alignas(64) RouteCells {
  RouteCells(std::string_view l, std::string_view r) : listener(l), route(r) {}
  const std::string listener;
  const std::string route;
  std::atomic<bool> matched{false};  // a call matched a route of this name (not "unmatched")

  Level inflight;
  std::array<Count, kCodes> requests;
  LatencyHistogram duration;
  std::array<Count, LimitLabels::kSize> rejected;
  std::array<Count, TimeoutLabels::kSize> timeouts;
  std::array<Count, CancelLabels::kSize> cancellations;
  std::array<Count, ModeLabels::kSize> fanout_calls;  // calls per fan-out mode (says which exist)
  std::array<Count, ModeLabels::kSize> fanout_failures;
  std::array<Count, OutcomeLabels::kSize> hedges;
  Count retries;
  Count retry_budget_exhausted;
  Count faults;
  Count shadows_skipped;
  BudgetHistogram budget;
  // Appended by the owner under the shard's mutex; read by the owner freely and by the scraper
  // under the mutex. unique_ptr: addresses stay put.
  std::vector<std::unique_ptr<UpstreamCells>> upstreams;
};

// Views into the RouteCells it keys (stable: the cells live on the heap).
struct RouteKey {
  std::string_view listener;
  std::string_view route;
  bool operator==(const RouteKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const RouteKey& k) {
    return H::combine(std::move(h), k.listener, k.route);
  }
};

}  // namespace

struct alignas(64) CallMetrics::Shard {
  // Taken by the owner only to add a label set, and by the scraper for the whole of its read.
  mutable std::mutex mu;
  absl::flat_hash_map<RouteKey, std::unique_ptr<RouteCells>> routes;
  PropagationHistogram propagation;

  // Owner thread only.
  RouteCells& route(std::string_view listener, std::string_view route) {
    if (auto it = routes.find(RouteKey{listener, route}); it != routes.end()) return *it->second;
    auto cells = std::make_unique<RouteCells>(listener, route);
    RouteCells& added = *cells;
    std::lock_guard<std::mutex> lock(mu);
    routes.emplace(RouteKey{added.listener, added.route}, std::move(cells));
    return added;
  }

  // Owner thread only.
  UpstreamCells& upstream(RouteCells& cells, std::string_view name) {
    for (auto& u : cells.upstreams) {
      if (u->upstream == name) return *u;
    }
    auto added = std::make_unique<UpstreamCells>(name);
    UpstreamCells& ref = *added;
    std::lock_guard<std::mutex> lock(mu);
    cells.upstreams.push_back(std::move(added));
    return ref;
  }
};

namespace {

std::atomic<uint64_t> next_instance_id{1};

// The shards this thread owns, by CallMetrics instance id. A bounded cache: forgetting an entry
// only means the thread starts another shard for that instance (shards are summed, so counts stay
// exact); ids are never reused, so an entry of a destroyed instance is never matched again.
struct ShardCache {
  struct Entry {
    uint64_t id = 0;
    CallMetrics::Shard* shard = nullptr;
  };
  Entry last;
  std::array<Entry, 8> recent;
  size_t next = 0;
};
thread_local ShardCache t_shards;

}  // namespace

CallMetrics::CallMetrics() : id_(next_instance_id.fetch_add(1, std::memory_order_relaxed)) {}

CallMetrics::~CallMetrics() = default;

CallMetrics::Shard& CallMetrics::shard() {
  ShardCache& cache = t_shards;
  if (cache.last.id == id_) return *cache.last.shard;
  for (const auto& e : cache.recent) {
    if (e.id == id_) {
      cache.last = e;
      return *e.shard;
    }
  }
  return new_shard();
}

CallMetrics::Shard& CallMetrics::new_shard() {
  auto shard = std::make_unique<Shard>();
  Shard* raw = shard.get();
  {
    std::lock_guard<std::mutex> lock(shards_mu_);
    shards_.push_back(std::move(shard));
  }
  ShardCache& cache = t_shards;
  cache.last = {id_, raw};
  cache.recent[cache.next] = cache.last;
  cache.next = (cache.next + 1) % cache.recent.size();
  return *raw;
}

size_t CallMetrics::shard_count() const {
  std::lock_guard<std::mutex> lock(shards_mu_);
  return shards_.size();
}

void CallMetrics::call_started(const std::string& listener, const std::string* route) {
  try {
    shard().route(listener, route ? std::string_view(*route) : kUnmatchedRoute).inflight.add(1);
  } catch (...) {  // only allocation can fail; metrics never take a call down
  }
}

void CallMetrics::shadow_finished(const std::string& listener, const std::string& route,
                                  const UpstreamAttempt& attempt) {
  try {
    Shard& s = shard();
    RouteCells& c = s.route(listener, route);
    UpstreamCells& u = s.upstream(
        c, attempt.upstream ? std::string_view(*attempt.upstream) : std::string_view("unknown"));
    u.requests[code_index(attempt.code)].add();
  } catch (...) {  // only allocation can fail; metrics never take a call down
  }
}

void CallMetrics::call_finished(const CallReport& report) {
  try {
    Shard& s = shard();
    const std::string_view listener =
        report.listener ? std::string_view(*report.listener) : std::string_view("unknown");
    const bool matched = report.route != nullptr;
    RouteCells& c = s.route(listener, matched ? std::string_view(*report.route) : kUnmatchedRoute);

    c.inflight.add(-1);
    c.requests[code_index(report.code)].add();
    c.duration.observe(report.duration);
    if (const int l = LimitLabels::of(report.rejected); l >= 0) c.rejected[l].add();
    if (!matched) return;
    if (!c.matched.load(std::memory_order_relaxed))
      c.matched.store(true, std::memory_order_relaxed);

    if (const int t = TimeoutLabels::of(report.timeout); t >= 0) c.timeouts[t].add();
    // Call-level causes; sibling and hedge_lost are per attempt (below).
    if (report.cancel == CancelCause::kCaller || report.cancel == CancelCause::kShutdown) {
      c.cancellations[CancelLabels::of(report.cancel)].add();
    } else if (deadline_cut_upstream(report)) {
      c.cancellations[CancelLabels::of(CancelCause::kDeadline)].add();
    }
    if (report.budget_at_upstream_start) {
      c.budget.observe(std::max(*report.budget_at_upstream_start, rt::Duration::zero()));
    }
    if (report.cancel_propagation) {
      s.propagation.observe(std::max(*report.cancel_propagation, rt::Duration::zero()));
    }
    if (report.retries > 0) c.retries.add(static_cast<uint64_t>(report.retries));
    if (report.retry_budget_exhausted) c.retry_budget_exhausted.add();
    if (report.fault) c.faults.add();
    if (report.shadow_skipped) c.shadows_skipped.add();
    if (report.fanout_mode) {
      if (const int m = ModeLabels::of(*report.fanout_mode); m >= 0) {
        c.fanout_calls[m].add();
        if (report.fanout_failed) c.fanout_failures[m].add();
      }
    }

    bool first_hedge = true;
    for (const UpstreamAttempt& a : report.attempts) {
      UpstreamCells& u =
          s.upstream(c, a.upstream ? std::string_view(*a.upstream) : std::string_view("unknown"));
      const size_t code = code_index(a.code);
      u.requests[code].add();
      if (const CancelCause cause = cancelled_by_curfew(a);
          cause == CancelCause::kSibling || cause == CancelCause::kHedgeLost) {
        c.cancellations[CancelLabels::of(cause)].add();
      }
      if (child_failed(a)) {
        // A child cut by the deadline did not answer in time, whichever timer fired first.
        const bool cut = cancelled_by_curfew(a) == CancelCause::kDeadline;
        u.child_failures[cut ? code_index(grpc::StatusCode::DEADLINE_EXCEEDED) : code].add();
      }
      if (a.role == UpstreamAttempt::Role::kHedge) {
        if (first_hedge) {
          first_hedge = false;  // the first try is not a hedge
        } else {
          c.hedges[OutcomeLabels::of(hedge_outcome(a))].add();
        }
      }
    }
  } catch (...) {  // only allocation can fail; metrics never take a call down
  }
}

// ---- scrape ---------------------------------------------------------------------------------
//
// Collect() sums the shards into totals, then builds each family declared in kCallFamilies
// (metric_families.h) with its own collect<Family>() below, in the declared order.

namespace {

template <size_t N, const auto& Bounds>
void add(HistogramTotals<N>& to, const Histogram<Bounds>& from) {
  static_assert(Histogram<Bounds>::kBounds + 1 == N);
  for (size_t i = 0; i < N; ++i) to.buckets[i] += from.buckets_[i].get();
  to.sum += from.sum_.get();
}

template <size_t N>
void add(std::array<uint64_t, N>& to, const std::array<Count, N>& from) {
  for (size_t i = 0; i < N; ++i) to[i] += from[i].get();
}

struct ListenerRouteTotals {
  bool matched = false;
  int64_t inflight = 0;
  std::array<uint64_t, kCodes> requests{};
  std::array<uint64_t, LimitLabels::kSize> rejected{};
  HistogramTotals<std::size(kLatencyBuckets) + 1> duration;
};

struct UpstreamTotals {
  std::array<uint64_t, kCodes> requests{};
  std::array<uint64_t, kCodes> child_failures{};
};

struct RouteTotals {
  bool matched = false;
  std::array<uint64_t, TimeoutLabels::kSize> timeouts{};
  std::array<uint64_t, CancelLabels::kSize> cancellations{};
  std::array<uint64_t, ModeLabels::kSize> fanout_calls{};
  std::array<uint64_t, ModeLabels::kSize> fanout_failures{};
  std::array<uint64_t, OutcomeLabels::kSize> hedges{};
  uint64_t retries = 0;
  uint64_t retry_budget_exhausted = 0;
  uint64_t faults = 0;
  uint64_t shadows_skipped = 0;
  HistogramTotals<std::size(kBudgetBuckets) + 1> budget;
  std::map<std::string, UpstreamTotals> upstreams;
};

// Every shard summed: by (listener, route) for all calls; by route for calls that matched one.
struct Totals {
  std::map<std::pair<std::string, std::string>, ListenerRouteTotals> by_listener_route;
  std::map<std::string, RouteTotals> by_route;
  HistogramTotals<std::size(kPropagationBuckets) + 1> propagation;

  void add(const RouteCells& cells) {
    ListenerRouteTotals& lr = by_listener_route[{cells.listener, cells.route}];
    lr.inflight += cells.inflight.get();
    metrics::add(lr.requests, cells.requests);
    metrics::add(lr.rejected, cells.rejected);
    metrics::add(lr.duration, cells.duration);

    if (!cells.matched.load(std::memory_order_relaxed)) return;
    lr.matched = true;
    RouteTotals& r = by_route[cells.route];
    r.matched = true;
    metrics::add(r.timeouts, cells.timeouts);
    metrics::add(r.cancellations, cells.cancellations);
    metrics::add(r.fanout_calls, cells.fanout_calls);
    metrics::add(r.fanout_failures, cells.fanout_failures);
    metrics::add(r.hedges, cells.hedges);
    r.retries += cells.retries.get();
    r.retry_budget_exhausted += cells.retry_budget_exhausted.get();
    r.faults += cells.faults.get();
    r.shadows_skipped += cells.shadows_skipped.get();
    metrics::add(r.budget, cells.budget);
    for (const auto& u : cells.upstreams) {
      UpstreamTotals& ut = r.upstreams[u->upstream];
      metrics::add(ut.requests, u->requests);
      metrics::add(ut.child_failures, u->child_failures);
    }
  }
};

// Each family declared in kCallFamilies has one collector, collect(totals, family) below: an
// overload for its Family<D> (the primary template is deleted, so a declared family without a
// collector does not compile).
template <const MetricFamilyDecl& D>
void collect(const Totals& t, Family<D>& f) = delete;

// -- by listener and route

template <>
void collect(const Totals& t, Family<family::kRequests>& f) {
  for (const auto& [key, lr] : t.by_listener_route) {
    for (size_t code = 0; code < kCodes; ++code) {
      if (lr.requests[code] == 0) continue;  // codes never seen are not exposed
      f.counter({key.first, key.second, config::kStatusCodeNames[code]}, lr.requests[code]);
    }
  }
}

template <>
void collect(const Totals& t, Family<family::kRequestDuration>& f) {
  for (const auto& [key, lr] : t.by_listener_route) {
    f.histogram({key.first, key.second}, lr.duration, kLatencyBuckets);
  }
}

template <>
void collect(const Totals& t, Family<family::kInflight>& f) {
  for (const auto& [key, lr] : t.by_listener_route) {
    f.gauge({key.first, key.second}, static_cast<double>(lr.inflight));
  }
}

template <>
void collect(const Totals& t, Family<family::kRejected>& f) {
  for (const auto& [key, lr] : t.by_listener_route) {
    for (size_t l = 0; l < LimitLabels::kSize; ++l) {
      // Every route can hit both limits; calls that matched no route only the listener's.
      const auto& [limit, label] = sidecar::kRejectionLabels[l];
      if (limit == sidecar::Rejection::kRouteLimit && !lr.matched && lr.rejected[l] == 0) continue;
      f.counter({key.first, key.second, label}, lr.rejected[l]);
    }
  }
}

// -- by route (calls that matched one)

// A counter per value of an enum label, after the route label: {route, <label>}.
template <const MetricFamilyDecl& D, typename E, size_t N>
void per_label(Family<D>& f, const std::string& route, const EnumLabel<E> (&table)[N],
               const std::array<uint64_t, N>& counts) {
  for (size_t i = 0; i < N; ++i) f.counter({route, table[i].label}, counts[i]);
}

template <>
void collect(const Totals& t, Family<family::kTimeouts>& f) {
  for (const auto& [route, r] : t.by_route) {
    per_label(f, route, sidecar::kTimeoutCauseLabels, r.timeouts);
  }
}

template <>
void collect(const Totals& t, Family<family::kCancellations>& f) {
  for (const auto& [route, r] : t.by_route) {
    per_label(f, route, sidecar::kCancelCauseLabels, r.cancellations);
  }
}

template <>
void collect(const Totals& t, Family<family::kFanoutFailures>& f) {
  for (const auto& [route, r] : t.by_route) {
    for (size_t m = 0; m < ModeLabels::kSize; ++m) {
      if (r.fanout_calls[m] == 0 && r.fanout_failures[m] == 0) continue;  // not this route's mode
      f.counter({route, sidecar::kFanoutModeLabels[m].label}, r.fanout_failures[m]);
    }
  }
}

// {route, upstream, grpc_code}; codes never seen are not exposed.
template <const MetricFamilyDecl& D>
void per_upstream_code(const Totals& t, Family<D>& f,
                       std::array<uint64_t, kCodes> UpstreamTotals::*counts) {
  for (const auto& [route, r] : t.by_route) {
    for (const auto& [upstream, u] : r.upstreams) {
      for (size_t code = 0; code < kCodes; ++code) {
        if ((u.*counts)[code] == 0) continue;
        f.counter({route, upstream, config::kStatusCodeNames[code]}, (u.*counts)[code]);
      }
    }
  }
}

template <>
void collect(const Totals& t, Family<family::kFanoutChildFailures>& f) {
  per_upstream_code(t, f, &UpstreamTotals::child_failures);
}

template <>
void collect(const Totals& t, Family<family::kUpstreamRequests>& f) {
  per_upstream_code(t, f, &UpstreamTotals::requests);
}

// {route}
template <const MetricFamilyDecl& D>
void per_route(const Totals& t, Family<D>& f, uint64_t RouteTotals::*count) {
  for (const auto& [route, r] : t.by_route) f.counter({route}, r.*count);
}

template <>
void collect(const Totals& t, Family<family::kRetries>& f) {
  per_route(t, f, &RouteTotals::retries);
}

template <>
void collect(const Totals& t, Family<family::kRetryBudgetExhausted>& f) {
  per_route(t, f, &RouteTotals::retry_budget_exhausted);
}

template <>
void collect(const Totals& t, Family<family::kCallFaults>& f) {
  per_route(t, f, &RouteTotals::faults);
}

template <>
void collect(const Totals& t, Family<family::kMirrorSkipped>& f) {
  per_route(t, f, &RouteTotals::shadows_skipped);
}

template <>
void collect(const Totals& t, Family<family::kHedges>& f) {
  constexpr int kHedgeMode = ModeLabels::of(sidecar::FanoutMode::kHedge);
  for (const auto& [route, r] : t.by_route) {
    if (r.fanout_calls[kHedgeMode] == 0) continue;  // not a hedge route
    per_label(f, route, kHedgeOutcomeLabels, r.hedges);
  }
}

template <>
void collect(const Totals& t, Family<family::kDeadlineBudget>& f) {
  for (const auto& [route, r] : t.by_route) f.histogram({route}, r.budget, kBudgetBuckets);
}

// -- unlabelled

template <>
void collect(const Totals& t, Family<family::kCancelPropagation>& f) {
  f.histogram({}, t.propagation, kPropagationBuckets);
}

}  // namespace

std::vector<prometheus::MetricFamily> CallMetrics::Collect() const {
  std::vector<const Shard*> shards;
  {
    std::lock_guard<std::mutex> lock(shards_mu_);
    for (const auto& s : shards_) shards.push_back(s.get());
  }
  Totals totals;
  for (const Shard* s : shards) {
    std::lock_guard<std::mutex> lock(s->mu);
    add(totals.propagation, s->propagation);
    for (const auto& [key, cells] : s->routes) totals.add(*cells);
  }

  return internal::build_families<kCallFamilies>(totals);
}

}  // namespace curfew::metrics
