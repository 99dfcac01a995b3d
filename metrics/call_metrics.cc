#include "metrics/call_metrics.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace curfew::metrics {
namespace {

using sidecar::CallReport;
using sidecar::CancelCause;
using sidecar::TimeoutCause;
using sidecar::UpstreamAttempt;

// ---- label values ---------------------------------------------------------------------------

constexpr size_t kCodes = 17;  // gRPC status codes 0..16
constexpr const char* kCodeNames[kCodes] = {
    "OK",        "CANCELLED",          "UNKNOWN",      "INVALID_ARGUMENT",  "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE", "UNIMPLEMENTED",     "INTERNAL",
    "UNAVAILABLE", "DATA_LOSS",        "UNAUTHENTICATED",
};
constexpr size_t kUnknownCode = 2;

size_t code_index(grpc::StatusCode code) noexcept {
  const int c = static_cast<int>(code);
  return c >= 0 && c < static_cast<int>(kCodes) ? static_cast<size_t>(c) : kUnknownCode;
}

// curfew_timeouts_total{cause}
constexpr size_t kTimeoutCauses = 5;
constexpr const char* kTimeoutCauseNames[kTimeoutCauses] = {"route", "caller", "budget", "per_try",
                                                            "upstream"};
constexpr int timeout_index(TimeoutCause cause) noexcept {
  switch (cause) {
    case TimeoutCause::kNone: return -1;
    case TimeoutCause::kRoute: return 0;
    case TimeoutCause::kCaller: return 1;
    case TimeoutCause::kBudget: return 2;
    case TimeoutCause::kPerTry: return 3;
    case TimeoutCause::kUpstream: return 4;
  }
  return -1;
}

// curfew_cancellations_total{cause}
constexpr size_t kCancelCauses = 5;
constexpr const char* kCancelCauseNames[kCancelCauses] = {"caller", "deadline", "sibling",
                                                          "hedge_lost", "shutdown"};
constexpr int cancel_index(CancelCause cause) noexcept {
  switch (cause) {
    case CancelCause::kNone: return -1;
    case CancelCause::kCaller: return 0;
    case CancelCause::kDeadline: return 1;
    case CancelCause::kSibling: return 2;
    case CancelCause::kHedgeLost: return 3;
    case CancelCause::kShutdown: return 4;
  }
  return -1;
}

// curfew_rejected_total{limit}
constexpr size_t kLimits = 2;
constexpr const char* kLimitNames[kLimits] = {"listener", "route"};
constexpr int limit_index(sidecar::Rejection rejection) noexcept {
  switch (rejection) {
    case sidecar::Rejection::kNone: return -1;
    case sidecar::Rejection::kListenerLimit: return 0;
    case sidecar::Rejection::kRouteLimit: return 1;
  }
  return -1;
}

// curfew_fanout_failures_total{mode}
constexpr size_t kModes = 3;
constexpr const char* kModeNames[kModes] = {"all", "quorum", "hedge"};
int mode_index(const char* mode) noexcept {
  if (mode == nullptr) return -1;
  for (size_t i = 0; i < kModes; ++i) {
    if (std::strcmp(mode, kModeNames[i]) == 0) return static_cast<int>(i);
  }
  return -1;
}

// Why curfew cancelled an attempt, if it did: a cancelled attempt ends CANCELLED (call_report.h).
// An attempt that finished with an answer of its own is taken as not cancelled even when a cause
// was recorded for it (e.g. the fan-out child whose own result decided the group).
CancelCause cancelled_by_curfew(const UpstreamAttempt& a) noexcept {
  return a.code == grpc::StatusCode::CANCELLED ? a.cancelled : CancelCause::kNone;
}

// curfew_hedges_total{outcome}
constexpr size_t kOutcomes = 4;
constexpr const char* kOutcomeNames[kOutcomes] = {"won", "lost", "failed", "cancelled"};
constexpr size_t kWon = 0, kLost = 1, kFailed = 2, kCancelled = 3;

size_t hedge_outcome(const UpstreamAttempt& a) noexcept {
  if (a.won) return kWon;
  switch (cancelled_by_curfew(a)) {
    case CancelCause::kHedgeLost: return kLost;
    case CancelCause::kCaller:
    case CancelCause::kDeadline:
    case CancelCause::kShutdown:
    case CancelCause::kSibling: return kCancelled;
    case CancelCause::kNone: break;
  }
  return a.code == grpc::StatusCode::OK ? kLost : kFailed;  // an OK answer not used also lost
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
  for (size_t i = 0; i < N; ++i) ns[i] = static_cast<int64_t>(seconds[i] * 1e9 + 0.5);
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
    const size_t i = static_cast<size_t>(
        std::lower_bound(kBoundsNs.begin(), kBoundsNs.end(), ns) - kBoundsNs.begin());
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
  std::array<Count, kLimits> rejected;
  std::array<Count, kTimeoutCauses> timeouts;
  std::array<Count, kCancelCauses> cancellations;
  std::array<Count, kModes> fanout_calls;  // calls per fan-out mode (says which modes exist)
  std::array<Count, kModes> fanout_failures;
  std::array<Count, kOutcomes> hedges;
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
    if (const int l = limit_index(report.rejected); l >= 0) c.rejected[l].add();
    if (!matched) return;
    if (!c.matched.load(std::memory_order_relaxed)) c.matched.store(true, std::memory_order_relaxed);

    if (const int t = timeout_index(report.timeout); t >= 0) c.timeouts[t].add();
    // Call-level causes; sibling and hedge_lost are per attempt (below).
    if (report.cancel == CancelCause::kCaller || report.cancel == CancelCause::kShutdown) {
      c.cancellations[cancel_index(report.cancel)].add();
    } else if (deadline_cut_upstream(report)) {
      c.cancellations[cancel_index(CancelCause::kDeadline)].add();
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
    if (const int m = mode_index(report.fanout_mode); m >= 0) {
      c.fanout_calls[m].add();
      if (report.fanout_failed) c.fanout_failures[m].add();
    }

    bool first_hedge = true;
    for (const UpstreamAttempt& a : report.attempts) {
      UpstreamCells& u =
          s.upstream(c, a.upstream ? std::string_view(*a.upstream) : std::string_view("unknown"));
      const size_t code = code_index(a.code);
      u.requests[code].add();
      if (const CancelCause cause = cancelled_by_curfew(a);
          cause == CancelCause::kSibling || cause == CancelCause::kHedgeLost) {
        c.cancellations[cancel_index(cause)].add();
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
          c.hedges[hedge_outcome(a)].add();
        }
      }
    }
  } catch (...) {  // only allocation can fail; metrics never take a call down
  }
}

// ---- scrape ---------------------------------------------------------------------------------

namespace {

template <size_t N>
struct HistogramTotals {
  std::array<uint64_t, N> buckets{};  // non-cumulative, last = +Inf
  double sum = 0;

  template <const auto& Bounds>
  void add(const Histogram<Bounds>& h) {
    static_assert(Histogram<Bounds>::kBounds + 1 == N);
    for (size_t i = 0; i < N; ++i) buckets[i] += h.buckets_[i].get();
    sum += h.sum_.get();
  }
};

template <size_t N>
void add(std::array<uint64_t, N>& to, const std::array<Count, N>& from) {
  for (size_t i = 0; i < N; ++i) to[i] += from[i].get();
}

struct ListenerRouteTotals {
  bool matched = false;
  int64_t inflight = 0;
  std::array<uint64_t, kCodes> requests{};
  std::array<uint64_t, kLimits> rejected{};
  HistogramTotals<std::size(kLatencyBuckets) + 1> duration;
};

struct UpstreamTotals {
  std::array<uint64_t, kCodes> requests{};
  std::array<uint64_t, kCodes> child_failures{};
};

struct RouteTotals {
  bool matched = false;
  std::array<uint64_t, kTimeoutCauses> timeouts{};
  std::array<uint64_t, kCancelCauses> cancellations{};
  std::array<uint64_t, kModes> fanout_calls{};
  std::array<uint64_t, kModes> fanout_failures{};
  std::array<uint64_t, kOutcomes> hedges{};
  uint64_t retries = 0;
  uint64_t retry_budget_exhausted = 0;
  uint64_t faults = 0;
  uint64_t shadows_skipped = 0;
  HistogramTotals<std::size(kBudgetBuckets) + 1> budget;
  std::map<std::string, UpstreamTotals> upstreams;
};

using Label = prometheus::ClientMetric::Label;

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add_counter(prometheus::MetricFamily& f, std::vector<Label> labels, uint64_t value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  f.metric.push_back(std::move(m));
}

void add_gauge(prometheus::MetricFamily& f, std::vector<Label> labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

template <size_t N, size_t B>
void add_histogram(prometheus::MetricFamily& f, std::vector<Label> labels,
                   const HistogramTotals<N>& h, const double (&bounds)[B]) {
  static_assert(B + 1 == N);
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < B; ++i) {
    cumulative += h.buckets[i];
    m.histogram.bucket.push_back({cumulative, bounds[i]});
  }
  cumulative += h.buckets[B];
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = h.sum;
  f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<prometheus::MetricFamily> CallMetrics::Collect() const {
  std::map<std::pair<std::string, std::string>, ListenerRouteTotals> by_listener_route;
  std::map<std::string, RouteTotals> by_route;
  HistogramTotals<std::size(kPropagationBuckets) + 1> propagation;

  std::vector<const Shard*> shards;
  {
    std::lock_guard<std::mutex> lock(shards_mu_);
    for (const auto& s : shards_) shards.push_back(s.get());
  }
  for (const Shard* s : shards) {
    std::lock_guard<std::mutex> lock(s->mu);
    propagation.add(s->propagation);
    for (const auto& [key, cells] : s->routes) {
      ListenerRouteTotals& lr = by_listener_route[{cells->listener, cells->route}];
      lr.inflight += cells->inflight.get();
      add(lr.requests, cells->requests);
      add(lr.rejected, cells->rejected);
      lr.duration.add(cells->duration);

      if (!cells->matched.load(std::memory_order_relaxed)) continue;
      lr.matched = true;
      RouteTotals& r = by_route[cells->route];
      r.matched = true;
      add(r.timeouts, cells->timeouts);
      add(r.cancellations, cells->cancellations);
      add(r.fanout_calls, cells->fanout_calls);
      add(r.fanout_failures, cells->fanout_failures);
      add(r.hedges, cells->hedges);
      r.retries += cells->retries.get();
      r.retry_budget_exhausted += cells->retry_budget_exhausted.get();
      r.faults += cells->faults.get();
      r.shadows_skipped += cells->shadows_skipped.get();
      r.budget.add(cells->budget);
      for (const auto& u : cells->upstreams) {
        UpstreamTotals& ut = r.upstreams[u->upstream];
        add(ut.requests, u->requests);
        add(ut.child_failures, u->child_failures);
      }
    }
  }

  using prometheus::MetricType;
  auto requests = family("curfew_requests_total",
                         "Calls curfew answered, by listener, route and the gRPC status code the "
                         "caller got.",
                         MetricType::Counter);
  auto duration = family("curfew_request_duration_seconds",
                         "Time from a call's arrival at curfew to its end, by listener and route.",
                         MetricType::Histogram);
  auto inflight = family("curfew_inflight_requests", "Calls in progress, by listener and route.",
                         MetricType::Gauge);
  auto rejected = family("curfew_rejected_total",
                         "Calls refused at once with RESOURCE_EXHAUSTED because a concurrency limit "
                         "was reached, by listener, route and limit: listener "
                         "(limits.max_concurrent_calls) or route (the route's "
                         "max_concurrent_calls).",
                         MetricType::Counter);
  for (const auto& [key, t] : by_listener_route) {
    const auto& [listener, route] = key;
    for (size_t code = 0; code < kCodes; ++code) {
      if (t.requests[code] == 0) continue;
      add_counter(requests, {{"listener", listener}, {"route", route}, {"grpc_code", kCodeNames[code]}},
                  t.requests[code]);
    }
    add_histogram(duration, {{"listener", listener}, {"route", route}}, t.duration, kLatencyBuckets);
    add_gauge(inflight, {{"listener", listener}, {"route", route}}, static_cast<double>(t.inflight));
    for (size_t l = 0; l < kLimits; ++l) {
      // Every route can hit both limits; calls that matched no route only the listener's.
      if (l == 1 && !t.matched && t.rejected[l] == 0) continue;
      add_counter(rejected, {{"listener", listener}, {"route", route}, {"limit", kLimitNames[l]}},
                  t.rejected[l]);
    }
  }

  auto timeouts = family("curfew_timeouts_total",
                         "Calls answered DEADLINE_EXCEEDED, by route and cause: route (curfew's "
                         "deadline), caller (the caller's own deadline), budget (min_budget "
                         "fast-fail), per_try (a retry's per-try timeout), upstream (the upstream "
                         "answered DEADLINE_EXCEEDED).",
                         MetricType::Counter);
  auto cancellations = family("curfew_cancellations_total",
                              "Upstream work curfew cancelled, by route and cause: caller, deadline, "
                              "shutdown (per call); sibling, hedge_lost (per upstream attempt).",
                              MetricType::Counter);
  auto fanout_failures = family("curfew_fanout_failures_total",
                                "Fan-out calls whose group as a whole failed, by route and mode.",
                                MetricType::Counter);
  auto child_failures = family("curfew_fanout_child_failures_total",
                               "Fan-out children and hedge tries that failed, by route, upstream "
                               "and gRPC status code.",
                               MetricType::Counter);
  auto upstream_requests = family("curfew_upstream_requests_total",
                                  "Upstream calls curfew made (primaries, retries, fan-out children, "
                                  "hedges, mirrors), by route, upstream and gRPC status code.",
                                  MetricType::Counter);
  auto retries = family("curfew_retries_total", "Retries made, by route.", MetricType::Counter);
  auto exhausted = family("curfew_retry_budget_exhausted_total",
                          "Retries refused because the route's retry budget was spent, by route.",
                          MetricType::Counter);
  auto faults = family("curfew_call_faults_total",
                       "Calls failed alone by curfew's per-call fault boundary (an internal "
                       "error: the caller got INTERNAL, the worker's other calls went on), by "
                       "route.",
                       MetricType::Counter);
  auto shadows_skipped = family("curfew_mirror_skipped_total",
                                "Mirrored calls sent without their shadow copy because the worker "
                                "already had the most shadows in flight it allows (256), by route.",
                                MetricType::Counter);
  auto hedges = family("curfew_hedges_total",
                       "Hedged tries sent (after the first try), by route and outcome: won, lost, "
                       "failed, cancelled.",
                       MetricType::Counter);
  auto budget = family("curfew_deadline_budget_seconds",
                       "Time left until the call's deadline when the upstream call starts, by "
                       "route.",
                       MetricType::Histogram);
  for (const auto& [route, t] : by_route) {
    for (size_t i = 0; i < kTimeoutCauses; ++i) {
      add_counter(timeouts, {{"route", route}, {"cause", kTimeoutCauseNames[i]}}, t.timeouts[i]);
    }
    for (size_t i = 0; i < kCancelCauses; ++i) {
      add_counter(cancellations, {{"route", route}, {"cause", kCancelCauseNames[i]}},
                  t.cancellations[i]);
    }
    for (size_t m = 0; m < kModes; ++m) {
      if (t.fanout_calls[m] == 0 && t.fanout_failures[m] == 0) continue;
      add_counter(fanout_failures, {{"route", route}, {"mode", kModeNames[m]}}, t.fanout_failures[m]);
    }
    for (const auto& [upstream, u] : t.upstreams) {
      for (size_t code = 0; code < kCodes; ++code) {
        if (u.requests[code] != 0) {
          add_counter(upstream_requests,
                      {{"route", route}, {"upstream", upstream}, {"grpc_code", kCodeNames[code]}},
                      u.requests[code]);
        }
        if (u.child_failures[code] != 0) {
          add_counter(child_failures,
                      {{"route", route}, {"upstream", upstream}, {"grpc_code", kCodeNames[code]}},
                      u.child_failures[code]);
        }
      }
    }
    add_counter(retries, {{"route", route}}, t.retries);
    add_counter(exhausted, {{"route", route}}, t.retry_budget_exhausted);
    add_counter(faults, {{"route", route}}, t.faults);
    add_counter(shadows_skipped, {{"route", route}}, t.shadows_skipped);
    constexpr size_t kHedgeMode = 2;
    if (t.fanout_calls[kHedgeMode] != 0) {
      for (size_t i = 0; i < kOutcomes; ++i) {
        add_counter(hedges, {{"route", route}, {"outcome", kOutcomeNames[i]}}, t.hedges[i]);
      }
    }
    add_histogram(budget, {{"route", route}}, t.budget, kBudgetBuckets);
  }

  auto propagation_family = family("curfew_cancel_propagation_seconds",
                                   "Time from a cancellation's cause (caller gone, deadline passed, "
                                   "shutdown) to curfew issuing the upstream cancel.",
                                   MetricType::Histogram);
  add_histogram(propagation_family, {}, propagation, kPropagationBuckets);

  std::vector<prometheus::MetricFamily> out;
  for (auto* f : {&requests, &duration, &inflight, &rejected, &timeouts, &cancellations,
                  &fanout_failures, &child_failures, &upstream_requests, &retries, &exhausted,
                  &faults, &shadows_skipped, &hedges, &budget, &propagation_family}) {
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace curfew::metrics
