// The effective curfew configuration: plain structs with every default already applied.
//
// These types are what the sidecar consumes. They deliberately know nothing about YAML (see
// load.h for how they are produced), so the rest of curfew never depends on yaml-cpp.

#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace curfew::config {

// Match
//
// Selects calls by their full gRPC method path, e.g. "/shop.Inventory/Get".
struct Match {
  enum Kind {
    kMethod,   // `value` is one exact path: "/pkg.Service/Method".
    kService,  // `value` is a fully-qualified service, "pkg.Service"; matches all its methods.
    kPrefix,   // `value` is a path prefix; "/" matches everything.
  };
  Kind kind = kPrefix;
  std::string value;

  // Match::matches()
  //
  // Returns true if `method` (a full path such as "/pkg.Service/Method") is selected.
  bool matches(std::string_view method) const;

  // Match::covers()
  //
  // Returns true if every method `other` selects is also selected by this match, i.e. a route
  // using `other` placed after one using this match could never be chosen.
  bool covers(const Match& other) const;
};

// Retry
//
// Retries of one upstream call, all within the caller's deadline.
struct Retry {
  int attempts = 1;                            // Total tries including the first, in [1, 10].
  std::chrono::nanoseconds per_try_timeout{};  // Cap on each try; always > 0.
  std::chrono::nanoseconds backoff_base{};     // Backoff before the first retry.
  std::chrono::nanoseconds backoff_max{};      // Upper bound on any backoff; >= backoff_base.
  std::vector<int> on;                         // Retryable gRPC status codes (grpc::StatusCode).
  double budget_ratio = 0.2;                   // Max fraction of calls that may be retries.
};

// Fanout
//
// Sends each call to several upstreams instead of one.
struct Fanout {
  enum Mode {
    kAll,     // Scatter-gather: every upstream must succeed.
    kQuorum,  // Succeeds once `quorum` upstreams have succeeded.
    kHedge,   // Tries upstreams in order, starting the next after `delay`; first success wins.
  };
  enum Merge {
    kConcat,  // Response messages concatenated on the wire (protobuf merge semantics).
    kFirst,   // The first successful response is returned as is.
  };
  Mode mode = kAll;
  std::vector<std::string> upstreams;  // At least two, all distinct.
  Merge merge = kConcat;
  int quorum = 0;  // Successes needed: n for kAll, the configured quorum for kQuorum, 1 for kHedge.
  std::chrono::nanoseconds delay{};  // Hedge delay; zero for other modes.
};

// Hedge
//
// Hedging within one upstream: the call goes to one endpoint (address) of the upstream's set and,
// each `delay` without an answer (or at once after a retryable failure), to another one, up to
// `max_hedges` more; the first success wins and the others are cancelled, as a fan-out hedge
// across upstreams does. A route hedges or retries, not both (as gRPC's service config).
struct Hedge {
  std::chrono::nanoseconds delay{};
  int max_hedges = 1;  // In [1, 9]: tries after the first.
  // Derived: a hedge fan-out over `1 + max_hedges` copies of the route's upstream (the copies
  // live here, in the route, for as long as calls use the configuration).
  Fanout as_fanout;
};

// Mirror
//
// Copies a share of calls to another upstream; its responses are discarded.
struct Mirror {
  std::string upstream;
  double percent = 100;  // In [0, 100].
};

// Route
//
// How calls selected by `match` are forwarded and which deadline they get.
struct Route {
  std::string name;
  Match match;
  std::string upstream;  // Empty when `fanout` is set.
  // Deadline applied when the caller sent none; unset means the listener's default_timeout.
  std::optional<std::chrono::nanoseconds> timeout;
  // Cap on a deadline the caller did send; unset means the caller's deadline is kept.
  std::optional<std::chrono::nanoseconds> max_timeout;
  // Calls arriving with less than this remaining fail at once, without an upstream call.
  std::chrono::nanoseconds min_budget{0};
  // Subtracted from the budget sent upstream, so curfew can answer before the caller gives up.
  std::chrono::nanoseconds deadline_offset{0};
  std::optional<Retry> retry;
  std::optional<Fanout> fanout;
  std::optional<Hedge> hedge;  // only with `upstream`
  std::optional<Mirror> mirror;
  // Calls of this route in progress at once; one more is refused with RESOURCE_EXHAUSTED at once
  // (never queued). Unset: only the listener's limits.max_concurrent_calls applies. At most that.
  std::optional<int> max_concurrent_calls;
};

// Limits
//
// Per-listener resource limits protecting the sidecar itself.
// One caller connection's HTTP/2 defences (docs/security.md): a connection that breaks one is
// closed with GOAWAY and counted; the listener's other connections are not affected. Changing
// them takes a restart, as the listener's other limits do.
struct ConnectionLimits {
  // The preface and first SETTINGS within this (slowloris); 0: no limit.
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
  // A header block (HEADERS and its CONTINUATIONs) complete within this; 0: no limit.
  std::chrono::nanoseconds headers_timeout = std::chrono::seconds(10);
  // Frames that do no work (PING, SETTINGS, WINDOW_UPDATE, PRIORITY, empty DATA): a bucket of
  // this many, refilled at this rate and by the connection's own traffic.
  int control_frame_burst = 1000;
  int control_frames_per_second = 100;
  // A connection older than max_age (±10%) gets GOAWAY and its calls finish; max_age_grace later
  // what is left is closed. Callers reconnect, maybe to another replica, so long-lived
  // connections rebalance after a scale-up. 0s: never / no forced close.
  std::chrono::nanoseconds max_age = std::chrono::minutes(30);
  std::chrono::nanoseconds max_age_grace = std::chrono::minutes(5);
  // RST_STREAM frames a caller may send per second (burst as many): a bound for any caller.
  int resets_per_second = 10000;
  // Rapid reset (CVE-2023-44487): among the last 1000 streams opened, at least this many and this
  // share reset by the caller (or refused for oversized headers) before any work began.
  int rapid_reset_min_streams = 200;
  int rapid_reset_percent = 50;
  // CONTINUATION frames after one HEADERS (CVE-2024-28182).
  int max_continuations = 8;

  bool operator==(const ConnectionLimits&) const = default;
};

struct Limits {
  // Calls in progress at once on the listener; one more is refused with RESOURCE_EXHAUSTED at
  // once (never queued). Reloadable.
  int max_concurrent_calls = 10000;
  int max_message_bytes = 64 << 20;
  int max_metadata_bytes = 64 << 10;
  int max_concurrent_streams_per_connection = 1000;
  ConnectionLimits connection;
};

// Listener
//
// One address curfew accepts calls on, with its ordered route table.
struct Listener {
  std::string name;
  std::string address;  // "host:port".
  std::chrono::nanoseconds default_timeout = std::chrono::seconds(1);
  std::vector<Route> routes;  // Order matters: the first match wins.
  Limits limits;

  // Listener::route_for()
  //
  // Returns the first route whose match selects `method`, or nullptr if none does. The pointer
  // stays valid as long as this listener is neither modified nor destroyed.
  const Route* route_for(std::string_view method) const;

  // Listener::effective_timeout()
  //
  // Returns the deadline given to `route`'s calls when the caller sent none.
  std::chrono::nanoseconds effective_timeout(const Route& route) const {
    return route.timeout.value_or(default_timeout);
  }
};

// Upstream
//
// A named group of backend endpoints.
struct Upstream {
  struct Tls {
    bool enabled = false;
    std::string ca_file;    // Empty: the system roots.
    std::string cert_file;  // Client certificate (mTLS); set together with key_file.
    std::string key_file;
    std::string server_name;  // Empty: derived from the endpoint.
  };
  std::string name;
  // gRPC target strings: "host:port", "dns:///name:port", "ipv4:...", "unix:..." and so on.
  std::vector<std::string> endpoints;
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(1);
  Tls tls;
  // HTTP/2 keepalive on this upstream's connections (nghttp2 data path): while calls are open
  // and nothing arrived for `keepalive_time`, a PING; no answer within `keepalive_timeout` ends
  // the connection and fails its calls (UNAVAILABLE) instead of leaving them to their deadlines.
  // Default 5 minutes: what gRPC servers accept (more frequent pings draw GOAWAY
  // too_many_pings unless the server allows them). 0: off; else at least 10 s (as gRPC clients).
  // Set per connection when it is made: a reload's new values apply to new connections, and
  // upstreams sharing an endpoint share its connection's.
  std::chrono::nanoseconds keepalive_time = std::chrono::minutes(5);
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(20);

  // Endpoint set: every address of every endpoint (a DNS name resolves to all its A and AAAA
  // records) gets its own connection, and each call picks one of them.
  enum class Balancer {
    kPeakEwma,    // power of two choices over outstanding calls x a peak-EWMA of latency
    kRoundRobin,  // each address in turn
  };
  Balancer balancer = Balancer::kPeakEwma;
  // DNS names are resolved again this often (and soon after a connection to one fails).
  std::chrono::nanoseconds resolve_interval = std::chrono::seconds(5);
  // An address whose calls keep failing (connection failures, UNAVAILABLE) is ejected: no call
  // picks it for a while, longer each time it is ejected again.
  struct OutlierDetection {
    int consecutive_failures = 5;  // 0: never eject
    std::chrono::nanoseconds base_ejection_time = std::chrono::seconds(10);
    std::chrono::nanoseconds max_ejection_time = std::chrono::seconds(300);
    int max_ejection_percent = 50;  // never more of the set ejected at once (at least 1 kept)
  };
  OutlierDetection outlier_detection;
};
const char* balancer_name(Upstream::Balancer balancer) noexcept;

// Admin
//
// The admin HTTP server (/metrics, /healthz, /readyz).
struct Admin {
  std::string address = "127.0.0.1:9901";
};

// Config
//
// The whole effective configuration. Produced by load_config_file() / load_config_string(),
// which guarantee it is valid: names are unique, every referenced upstream exists, and so on.
struct Config {
  Admin admin;
  std::vector<Listener> listeners;  // At least one.
  std::vector<Upstream> upstreams;
  // How long in-flight calls may take to finish after shutdown starts.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(10);
  int worker_threads = 0;  // 0: one per CPU the container may use (runtime/cpu_budget.h).
  // How long a worker keeps polling for the next event after one, instead of sleeping (0: never
  // spins). Saves a thread wake-up per hop at low concurrency, at the price of a spinning core.
  std::chrono::nanoseconds busy_poll{0};
  std::string source_path;  // The file (or source name) the config was loaded from.

  // Config::find_upstream()
  //
  // Returns the upstream called `name`, or nullptr if there is none.
  const Upstream* find_upstream(std::string_view name) const;
};

// describe()
//
// Returns a human-readable table of the effective routes of every listener (match, upstreams,
// effective timeouts, retry/fan-out/mirror policy), as printed by `curfew --check-config`.
std::string describe(const Config& config);

}  // namespace curfew::config
