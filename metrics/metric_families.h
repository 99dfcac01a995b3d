// Every metric family curfew exposes, declared once as data: its name, type, label names and
// help. The code that fills the families (call_metrics.cc, connection_metrics.cc,
// server_metrics.cc), the tests and the check that docs/metrics.md lists every metric
// (tests/metrics/dashboard_test.cc) all read these declarations, so a family is added, renamed or
// documented in one place (cf. Envoy's ALL_ROUTER_STATS).
//
// The label *values* of enum labels (cause, limit, mode) are the tables in sidecar/call_report.h,
// those of side and reason the tables in sidecar/connection_report.h; grpc_code's are
// config::kStatusCodeNames.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <string_view>

#include <prometheus/metric_type.h>

namespace curfew::metrics {

// The label names of a family, in the order of its series' labels (at most kMax).
class LabelNames {
 public:
  static constexpr size_t kMax = 3;

  constexpr LabelNames(std::initializer_list<std::string_view> names) {
    if (names.size() > kMax) throw "LabelNames: raise kMax";  // a compile error: constexpr data
    for (std::string_view n : names) names_[size_++] = n;
  }

  constexpr size_t size() const noexcept { return size_; }
  constexpr std::string_view operator[](size_t i) const noexcept { return names_[i]; }
  constexpr const std::string_view* begin() const noexcept { return names_.data(); }
  constexpr const std::string_view* end() const noexcept { return names_.data() + size_; }

 private:
  std::array<std::string_view, kMax> names_{};
  size_t size_ = 0;
};

struct MetricFamilyDecl {
  std::string_view name;
  prometheus::MetricType type;
  LabelNames labels;
  std::string_view help;
};

namespace family {

using prometheus::MetricType;

// ---- per call (CallMetrics), in scrape order ---------------------------------------------------

inline constexpr MetricFamilyDecl kRequests{
    .name = "curfew_requests_total",
    .type = MetricType::Counter,
    .labels = {"listener", "route", "grpc_code"},
    .help = "Calls curfew answered, by listener, route and the gRPC status code the caller got.",
};
inline constexpr MetricFamilyDecl kRequestDuration{
    .name = "curfew_request_duration_seconds",
    .type = MetricType::Histogram,
    .labels = {"listener", "route"},
    .help = "Time from a call's arrival at curfew to its end, by listener and route.",
};
inline constexpr MetricFamilyDecl kInflight{
    .name = "curfew_inflight_requests",
    .type = MetricType::Gauge,
    .labels = {"listener", "route"},
    .help = "Calls in progress, by listener and route.",
};
inline constexpr MetricFamilyDecl kRejected{
    .name = "curfew_rejected_total",
    .type = MetricType::Counter,
    .labels = {"listener", "route", "limit"},
    .help =
        "Calls refused at once with RESOURCE_EXHAUSTED because a concurrency limit was "
        "reached, by listener, route and limit: listener (limits.max_concurrent_calls) or "
        "route (the route's max_concurrent_calls).",
};
inline constexpr MetricFamilyDecl kTimeouts{
    .name = "curfew_timeouts_total",
    .type = MetricType::Counter,
    .labels = {"route", "cause"},
    .help =
        "Calls answered DEADLINE_EXCEEDED, by route and cause: route (curfew's deadline), "
        "caller (the caller's own deadline), budget (min_budget fast-fail), per_try (a "
        "retry's per-try timeout), upstream (the upstream answered DEADLINE_EXCEEDED).",
};
inline constexpr MetricFamilyDecl kCancellations{
    .name = "curfew_cancellations_total",
    .type = MetricType::Counter,
    .labels = {"route", "cause"},
    .help =
        "Upstream work curfew cancelled, by route and cause: caller, deadline, shutdown (per "
        "call); sibling, hedge_lost (per upstream attempt).",
};
inline constexpr MetricFamilyDecl kFanoutFailures{
    .name = "curfew_fanout_failures_total",
    .type = MetricType::Counter,
    .labels = {"route", "mode"},
    .help = "Fan-out calls whose group as a whole failed, by route and mode.",
};
inline constexpr MetricFamilyDecl kFanoutChildFailures{
    .name = "curfew_fanout_child_failures_total",
    .type = MetricType::Counter,
    .labels = {"route", "upstream", "grpc_code"},
    .help =
        "Fan-out children and hedge tries that failed, by route, upstream and gRPC status "
        "code.",
};
inline constexpr MetricFamilyDecl kUpstreamRequests{
    .name = "curfew_upstream_requests_total",
    .type = MetricType::Counter,
    .labels = {"route", "upstream", "grpc_code"},
    .help =
        "Upstream calls curfew made (primaries, retries, fan-out children, hedges, mirrors), "
        "by route, upstream and gRPC status code.",
};
inline constexpr MetricFamilyDecl kRetries{
    .name = "curfew_retries_total",
    .type = MetricType::Counter,
    .labels = {"route"},
    .help = "Retries made, by route.",
};
inline constexpr MetricFamilyDecl kRetryBudgetExhausted{
    .name = "curfew_retry_budget_exhausted_total",
    .type = MetricType::Counter,
    .labels = {"route"},
    .help = "Retries refused because the route's retry budget was spent, by route.",
};
inline constexpr MetricFamilyDecl kCallFaults{
    .name = "curfew_call_faults_total",
    .type = MetricType::Counter,
    .labels = {"route"},
    .help =
        "Calls failed alone by curfew's per-call fault boundary (an internal error: the caller "
        "got INTERNAL, the worker's other calls went on), by route.",
};
inline constexpr MetricFamilyDecl kMirrorSkipped{
    .name = "curfew_mirror_skipped_total",
    .type = MetricType::Counter,
    .labels = {"route"},
    .help =
        "Mirrored calls sent without their shadow copy because the worker already had the "
        "most shadows in flight it allows (256), by route.",
};
inline constexpr MetricFamilyDecl kHedges{
    .name = "curfew_hedges_total",
    .type = MetricType::Counter,
    .labels = {"route", "outcome"},
    .help =
        "Hedged tries sent (after the first try), by route and outcome: won, lost, failed, "
        "cancelled.",
};
inline constexpr MetricFamilyDecl kDeadlineBudget{
    .name = "curfew_deadline_budget_seconds",
    .type = MetricType::Histogram,
    .labels = {"route"},
    .help = "Time left until the call's deadline when the upstream call starts, by route.",
};
inline constexpr MetricFamilyDecl kCancelPropagation{
    .name = "curfew_cancel_propagation_seconds",
    .type = MetricType::Histogram,
    .labels = {},
    .help =
        "Time from a cancellation's cause (caller gone, deadline passed, shutdown) to curfew "
        "issuing the upstream cancel.",
};

// ---- per HTTP/2 connection (ConnectionMetrics) ---------------------------------------------

inline constexpr MetricFamilyDecl kConnections{
    .name = "curfew_connections",
    .type = MetricType::Gauge,
    .labels = {"side"},
    .help =
        "Open HTTP/2 connections, by side: caller (accepted from callers) or upstream (curfew's "
        "own, to upstream endpoints).",
};
inline constexpr MetricFamilyDecl kConnectionsClosed{
    .name = "curfew_connections_closed_total",
    .type = MetricType::Counter,
    .labels = {"side", "reason"},
    .help =
        "HTTP/2 connections closed, by side and reason: peer_closed (the peer closed it), goaway "
        "(GOAWAY exchanged, last stream done), protocol_error (nghttp2 found the peer's bytes "
        "invalid and sent GOAWAY), flooded (nghttp2's flood limits: SETTINGS, PING ACKs, resets, "
        "CONTINUATION), rapid_reset (curfew's rapid-reset rule, GOAWAY ENHANCE_YOUR_CALM), "
        "oversized_headers and refused_streams (the same rule, tripped by header lists over the "
        "limit or streams over the stream limit), "
        "control_flood (PING, SETTINGS, WINDOW_UPDATE, PRIORITY or empty DATA frames beyond "
        "the connection's budget), handshake_timeout (no preface and SETTINGS in time), "
        "headers_timeout (a header block left incomplete), socket_error (a read or write failed), "
        "keepalive_timeout (an upstream answered no "
        "keepalive PING), cancelled (curfew stopping), internal_error (a failure inside curfew, "
        "logged), max_age (a caller connection past limits.connection.max_age, drained).",
};
inline constexpr MetricFamilyDecl kUpstreamConnectFailures{
    .name = "curfew_upstream_connect_failures_total",
    .type = MetricType::Counter,
    .labels = {"reason"},
    .help =
        "Failed attempts to connect to an upstream endpoint, by reason: resolve (the name did "
        "not resolve in time), connect (TCP connect failed or timed out), tls (the TLS handshake "
        "failed), no_settings (no HTTP/2 SETTINGS within connect_timeout).",
};

inline constexpr MetricFamilyDecl kUpstreamEndpointEjections{
    .name = "curfew_upstream_endpoint_ejections_total",
    .type = MetricType::Counter,
    .labels = {"upstream"},
    .help =
        "Endpoints (addresses) of an upstream ejected by outlier detection: consecutive "
        "connection failures or UNAVAILABLE answers (upstreams[].outlier_detection).",
};

inline constexpr MetricFamilyDecl kUpstreamResolveFailures{
    .name = "curfew_upstream_resolve_failures_total",
    .type = MetricType::Counter,
    .labels = {"upstream"},
    .help =
        "DNS lookups of an upstream's names that failed or answered nothing; its last good "
        "addresses keep serving (a name that never resolved fails its calls UNAVAILABLE).",
};

// ---- per upstream endpoint set (EndpointMetrics) ----------------------------------------------

inline constexpr MetricFamilyDecl kUpstreamEndpoints{
    .name = "curfew_upstream_endpoints",
    .type = MetricType::Gauge,
    .labels = {"upstream", "state"},
    .help =
        "Addresses in an upstream's endpoint set, by state: healthy, ejected (outlier detection) "
        "or draining (gone from DNS or from the configuration; calls in flight finish). An "
        "address ejected on any worker counts as ejected.",
};

// ---- per process (ServerMetrics) ---------------------------------------------------------------

inline constexpr MetricFamilyDecl kConfigReloads{
    .name = "curfew_config_reloads_total",
    .type = MetricType::Counter,
    .labels = {"result"},
    .help =
        "Configuration reloads (SIGHUP or a change of the file), by result: ok (applied) or "
        "error (refused; the previous configuration keeps serving).",
};
inline constexpr MetricFamilyDecl kConfigLastReloadSuccessful{
    .name = "curfew_config_last_reload_successful",
    .type = MetricType::Gauge,
    .labels = {},
    .help = "1 if the last configuration load or reload was applied, 0 if it was refused.",
};
inline constexpr MetricFamilyDecl kConfigLastReloadSuccessTime{
    .name = "curfew_config_last_reload_success_timestamp_seconds",
    .type = MetricType::Gauge,
    .labels = {},
    .help = "Unix time of the last configuration applied (at start or by a reload).",
};
inline constexpr MetricFamilyDecl kBuildInfo{
    .name = "curfew_build_info",
    .type = MetricType::Gauge,
    .labels = {"version"},
    .help = "Always 1; the version label says which curfew is running.",
};
inline constexpr MetricFamilyDecl kProcessStartTime{
    .name = "process_start_time_seconds",
    .type = MetricType::Gauge,
    .labels = {},
    .help = "Start time of the process since unix epoch in seconds.",
};
inline constexpr MetricFamilyDecl kReady{
    .name = "curfew_ready",
    .type = MetricType::Gauge,
    .labels = {},
    .help = "1 when curfew is ready for traffic (configuration loaded, not draining), else 0.",
};

}  // namespace family

// The families of CallMetrics::Collect(), in the order it returns them.
inline constexpr const MetricFamilyDecl* kCallFamilies[] = {
    &family::kRequests,
    &family::kRequestDuration,
    &family::kInflight,
    &family::kRejected,
    &family::kTimeouts,
    &family::kCancellations,
    &family::kFanoutFailures,
    &family::kFanoutChildFailures,
    &family::kUpstreamRequests,
    &family::kRetries,
    &family::kRetryBudgetExhausted,
    &family::kCallFaults,
    &family::kMirrorSkipped,
    &family::kHedges,
    &family::kDeadlineBudget,
    &family::kCancelPropagation,
};

// The families of ConnectionMetrics::Collect(), in the order it returns them.
inline constexpr const MetricFamilyDecl* kConnectionFamilies[] = {
    &family::kConnections,
    &family::kConnectionsClosed,
    &family::kUpstreamConnectFailures,
    &family::kUpstreamEndpointEjections,
    &family::kUpstreamResolveFailures,
};

// The families of EndpointMetrics::Collect().
inline constexpr const MetricFamilyDecl* kEndpointFamilies[] = {
    &family::kUpstreamEndpoints,
};

// The families of ServerMetrics::Collect().
inline constexpr const MetricFamilyDecl* kServerFamilies[] = {
    &family::kConfigReloads,
    &family::kConfigLastReloadSuccessful,
    &family::kConfigLastReloadSuccessTime,
    &family::kBuildInfo,
    &family::kProcessStartTime,
    &family::kReady,
};

// ---- the naming rules, checked at compile time ------------------------------------------------

namespace family_rules {

constexpr bool valid(const MetricFamilyDecl& f) {
  const bool counter = f.type == prometheus::MetricType::Counter;
  if (f.help.empty() || counter != f.name.ends_with("_total")) return false;
  if (f.type == prometheus::MetricType::Histogram && !f.name.ends_with("_seconds")) return false;
  for (size_t i = 0; i < f.labels.size(); ++i) {
    if (f.labels[i].empty()) return false;
    for (size_t j = 0; j < i; ++j) {
      if (f.labels[i] == f.labels[j]) return false;
    }
  }
  return true;
}

template <size_t N>
constexpr bool valid_and_distinct(const MetricFamilyDecl* const (&families)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (!valid(*families[i])) return false;
    for (size_t j = 0; j < i; ++j) {
      if (families[i]->name == families[j]->name) return false;
    }
  }
  return true;
}

// No family of `a` shares its name with one of `b` (the lists are exposed side by side).
template <size_t N, size_t M>
constexpr bool disjoint(const MetricFamilyDecl* const (&a)[N],
                        const MetricFamilyDecl* const (&b)[M]) {
  for (const MetricFamilyDecl* x : a) {
    for (const MetricFamilyDecl* y : b) {
      if (x->name == y->name) return false;
    }
  }
  return true;
}

}  // namespace family_rules

static_assert(family_rules::valid_and_distinct(kCallFamilies));
static_assert(family_rules::valid_and_distinct(kServerFamilies));
static_assert(family_rules::valid_and_distinct(kConnectionFamilies));
static_assert(family_rules::valid_and_distinct(kEndpointFamilies));
static_assert(family_rules::disjoint(kEndpointFamilies, kCallFamilies) &&
              family_rules::disjoint(kEndpointFamilies, kConnectionFamilies) &&
              family_rules::disjoint(kEndpointFamilies, kServerFamilies));
static_assert(family_rules::disjoint(kCallFamilies, kServerFamilies) &&
              family_rules::disjoint(kCallFamilies, kConnectionFamilies) &&
              family_rules::disjoint(kConnectionFamilies, kServerFamilies));

}  // namespace curfew::metrics
