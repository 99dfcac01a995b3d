// EndpointSet: one upstream's addresses on one loop, and the choice of one of them per call.
//
// Every configured endpoint of the upstream (a target: "name:port", "dns:///name:port",
// "ipv4:a,b", "unix:/path", ...) contributes its addresses (a DNS name: all its A and AAAA
// records); each address is an Endpoint with its own connection, load and health:
//
//   - pick(): power of two choices over (outstanding calls + 1) x PeakEwma latency (Linkerd's
//     peak-EWMA), or round robin; endpoints the call already tried, ejected and draining ones are
//     passed over while others remain.
//   - outlier ejection: `consecutive_failures` failures in a row (connection failures,
//     UNAVAILABLE) eject an endpoint for base_ejection_time, doubled on each ejection that
//     follows soon after the previous one (up to max_ejection_time), never more than
//     max_ejection_percent of the set and never the last one standing. Back from an ejection, an
//     endpoint is on probation: its first failure ejects it again.
//   - update(): a resolution's answer for one target; new addresses join, addresses that left
//     drain (calls in flight finish, no new ones) and go once idle. An empty answer never
//     reaches update(): the last good set stays.
//
// The set holds no sockets and does no I/O: UpstreamPool resolves names and connects, and keeps
// the connection in Endpoint::session. Loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "config/config.h"
#include "h2/session.h"
#include "runtime/clock.h"
#include "runtime/event.h"
#include "runtime/socket.h"
#include "sidecar/connection_report.h"
#include "sidecar/internal/peak_ewma.h"
#include "sidecar/internal/upstream_target.h"
#include "sidecar/internal/upstream_tls.h"

namespace curfew::sidecar {

enum class EndpointState { kHealthy, kEjected, kDraining };
inline constexpr const char* kEndpointStateLabels[] = {"healthy", "ejected", "draining"};

struct Endpoint {
  uint64_t id = 0;  // unique within its set (TriedEndpoints remembers these)
  rt::SocketAddress address;
  std::string address_text;  // "127.0.0.2:50051": errors and the admin listing
  size_t target = 0;         // the configured endpoint it came from (EndpointSet::targets())

  // The connection (UpstreamPool): the one that takes streams, or none yet; while `connecting`,
  // other calls wait for `attempt_done`.
  std::shared_ptr<h2::Session> session;
  bool connecting = false;
  rt::Event attempt_done;
  // Why the last connect attempt failed, for the calls that waited on it; "" after a success or
  // an attempt abandoned by its cancelled call.
  std::string last_connect_error;

  // Load and health.
  int outstanding = 0;  // calls holding an EndpointLease on it
  PeakEwma latency;
  bool draining = false;  // left the resolution's answer (or the configuration)
  int consecutive_failures = 0;
  int ejections = 0;  // ejections in a row: the next one lasts base x 2^ejections
  bool probation = false;
  rt::TimePoint ejected_until{};
  rt::Duration last_ejection{};
  std::string last_error;

  bool ejected(rt::TimePoint now) const noexcept { return ejected_until > now; }
  EndpointState state(rt::TimePoint now) const noexcept {
    if (draining) return EndpointState::kDraining;
    return ejected(now) ? EndpointState::kEjected : EndpointState::kHealthy;
  }
};

// The endpoints one call has tried (its retries and hedges prefer others).
using TriedEndpoints = absl::InlinedVector<uint64_t, 4>;

class EndpointSet {
 public:
  // A configured endpoint and what its resolution knows.
  struct Target {
    std::string text;  // as configured
    UpstreamTarget target;
    std::string parse_error;  // the target is unusable (never resolved, never dialed)
    bool resolved = false;    // update() gave it addresses at least once
    bool resolving = false;
    rt::Event resolve_done;          // set whenever a resolution ends
    rt::TimePoint next_resolve{};    // due time of the next resolution
    std::string last_resolve_error;  // "" after a success
  };

  // What became of a failure: the endpoint was ejected, or not.
  struct FailureResult {
    bool ejected = false;
    rt::Duration ejected_for{};
  };

  EndpointSet(const config::Upstream& upstream, std::shared_ptr<const UpstreamTls> tls);
  EndpointSet(const EndpointSet&) = delete;
  EndpointSet& operator=(const EndpointSet&) = delete;

  // The newest settings of the same upstream (balancer, outlier detection, timeouts); the
  // endpoints and TLS settings are part of the set's identity and never change.
  void configure(const config::Upstream& upstream);
  const config::Upstream& settings() const noexcept { return settings_; }
  const std::shared_ptr<const UpstreamTls>& tls() const noexcept { return tls_; }
  void set_tls(std::shared_ptr<const UpstreamTls> tls) { tls_ = std::move(tls); }

  // Never resized after construction: a Target reference stays put while the set lives.
  std::vector<Target>& targets() noexcept { return targets_; }
  const std::vector<Target>& targets() const noexcept { return targets_; }
  const std::vector<std::shared_ptr<Endpoint>>& endpoints() const noexcept { return endpoints_; }

  // Target `target`'s addresses are now `addresses` (non-empty): new ones join; the target's
  // endpoints not among them drain. Returns the endpoints to close now (idle drained ones,
  // already removed from the set).
  std::vector<std::shared_ptr<Endpoint>> update(size_t target,
                                                const std::vector<rt::SocketAddress>& addresses);

  // Every endpoint drains (the upstream left the configuration). Returns the idle ones, removed.
  std::vector<std::shared_ptr<Endpoint>> retire();

  // An endpoint for one call, or null when the set has none. Prefers, in order: healthy ones the
  // call has not tried, healthy ones, ejected ones (better than failing the call).
  std::shared_ptr<Endpoint> pick(const TriedEndpoints& tried, rt::TimePoint now,
                                 std::minstd_rand& random);

  // A call's outcome on `e` (see EndpointLease).
  void succeeded(Endpoint& e) noexcept;
  FailureResult failed(Endpoint& e, std::string why, rt::TimePoint now);

  // A call stopped using `e`. True when `e` is draining and now idle: it was removed from the
  // set and its connection should close.
  bool released(Endpoint& e);

  // Told of ejections (may be null).
  void set_observer(ConnectionObserver* observer) noexcept { observer_ = observer; }
  ConnectionObserver* observer() const noexcept { return observer_; }

  size_t count(EndpointState state, rt::TimePoint now) const noexcept;
  uint64_t ejections_total() const noexcept { return ejections_total_; }
  rt::TimePoint last_pick() const noexcept { return last_pick_; }
  bool retired() const noexcept { return retired_; }

 private:
  // A pick's candidates: on the stack for sets of up to 8 addresses (no allocation per call).
  using Candidates = absl::InlinedVector<Endpoint*, 8>;
  std::shared_ptr<Endpoint> choose(const Candidates& candidates, rt::TimePoint now,
                                   std::minstd_rand& random);
  void remove(const Endpoint& e);

  config::Upstream settings_;
  std::shared_ptr<const UpstreamTls> tls_;
  std::vector<Target> targets_;
  // shared_ptr: a call holds its endpoint across waits while updates reshape this vector.
  std::vector<std::shared_ptr<Endpoint>> endpoints_;
  uint64_t next_id_ = 1;
  size_t round_robin_ = 0;
  uint64_t ejections_total_ = 0;
  rt::TimePoint last_pick_{};
  bool retired_ = false;
  ConnectionObserver* observer_ = nullptr;
};

// One call's use of an endpoint: counted as outstanding while it lives. Report what happened
// with first_response() (latency) and succeeded()/failed(); a lease dropped without a verdict
// (cancelled) changes neither health nor latency, unless learn_if_cancelled(). Move-only.
class EndpointLease {
 public:
  // What a failed call teaches the balancer at least (see failed()).
  static constexpr rt::Duration kFailurePenalty = std::chrono::milliseconds(100);

  EndpointLease() = default;
  EndpointLease(std::shared_ptr<EndpointSet> set, std::shared_ptr<Endpoint> endpoint,
                std::shared_ptr<h2::Session> session, rt::TimePoint start);
  EndpointLease(EndpointLease&& other) noexcept = default;
  EndpointLease& operator=(EndpointLease&& other) noexcept;
  ~EndpointLease() { release(); }

  h2::Session& session() const noexcept { return *session_; }
  const Endpoint& endpoint() const noexcept { return *endpoint_; }
  const std::string& authority() const;
  explicit operator bool() const noexcept { return endpoint_ != nullptr; }

  // The latency the balancer learns (the first time only): a stream's response headers, or a
  // unary call's end.
  void first_response(rt::TimePoint now) noexcept;
  void succeeded(rt::TimePoint now) noexcept;
  void failed(std::string why, rt::TimePoint now);
  // For calls that are not expected to take long (buffered unary calls, hedges): if dropped
  // without an answer, the time it ran counts as latency when above the endpoint's estimate. Not
  // for proxied streams, which a caller may hold open (a long poll) long before any answer.
  void learn_if_cancelled() noexcept { learn_if_cancelled_ = true; }

 private:
  void release() noexcept;

  std::shared_ptr<EndpointSet> set_;
  std::shared_ptr<Endpoint> endpoint_;
  std::shared_ptr<h2::Session> session_;
  rt::TimePoint start_{};
  bool latency_seen_ = false;
  bool learn_if_cancelled_ = false;
};

}  // namespace curfew::sidecar
