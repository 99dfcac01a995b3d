// UpstreamPool: one loop's HTTP/2 connections to upstreams, organised as endpoint sets
// (EndpointSet: every address of every configured endpoint, each with its own connection, load
// and health). One multiplexed connection per address per loop, a new one only when it stops
// taking streams (GOAWAY, closed, stream ids used up).
//
// Sets are keyed by the upstream's name, endpoints and TLS settings, not by a Routing: a reload
// that leaves an upstream's definition unchanged keeps its set and connections; retain() drains
// the sets the configuration no longer has.
//
// Names resolve with c-ares on the blocking pool (dns/): the first call waits for it (within the
// connect timeout), and again every resolve_interval in the background (sooner after a connection
// failure); a failed or empty lookup keeps the last good set. With an UpstreamTls, connections
// run TLS (tls/), with the DNS name (not the address dialed) as server name.
//
// Loop thread only.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "h2/limits.h"
#include "h2/session.h"
#include "runtime/clock.h"
#include "runtime/event.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "sidecar/connection_report.h"
#include "sidecar/endpoint_report.h"
#include "sidecar/internal/endpoint_set.h"
#include "sidecar/internal/endpoint_set_key.h"
#include "sidecar/internal/routing.h"
#include "sidecar/internal/upstream_target.h"
#include "sidecar/internal/upstream_tls.h"

namespace curfew::sidecar {

// The keepalive an upstream's config asks for (config::Upstream::keepalive_time).
inline h2::Keepalive keepalive_of(const config::Upstream& upstream) {
  return {.time = upstream.keepalive_time, .timeout = upstream.keepalive_timeout};
}

// No connection to an upstream endpoint could be had; what() names the endpoint and the cause.
// No endpoint of the upstream could take the call (what(): "upstream 'NAME': WHY"), or, inside
// the pool, one attempt failed (what(): WHY).
class UpstreamUnavailable : public std::runtime_error {
 public:
  explicit UpstreamUnavailable(std::string why) : std::runtime_error(why), why_(std::move(why)) {}
  UpstreamUnavailable(const std::string& upstream, std::string why)
      : std::runtime_error("upstream '" + upstream + "': " + why), why_(std::move(why)) {}
  // Why, without the upstream's name (for messages that name it already).
  const std::string& why() const noexcept { return why_; }

 private:
  std::string why_;
};

class UpstreamPool {
 public:
  explicit UpstreamPool(h2::SessionLimits limits, ConnectionObserver* observer = nullptr)
      : limits_(limits), observer_(observer) {}
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Runs the pool's connections and resolutions until cancelled (then every connection closes).
  rt::Task<void> run();

  // An endpoint of `upstream`'s set, with a connection that takes streams, for one call: the set
  // is resolved first if it never was (within connect_timeout); the pick avoids the endpoints in
  // `tried` while others remain, and is added to it; an endpoint that cannot be connected to
  // (within connect_timeout) counts a failure and the next one is tried, three at most.
  // Throws UpstreamUnavailable naming the upstream and why. `upstream` and `tls` are borrowed
  // from the call's Routing, which the call keeps alive across this wait.
  rt::Task<EndpointLease> pick(const config::Upstream& upstream, const UpstreamTls* tls,
                               TriedEndpoints& tried);
  // pick() when it needs no wait, as most calls do: every endpoint of the set (that is not
  // draining) has a connection that takes streams. Then `lease` is the pick and true is
  // returned; else false, nothing was picked, and the caller co_awaits pick(). No coroutine.
  bool pick_connected(const config::Upstream& upstream, const UpstreamTls* tls,
                      TriedEndpoints& tried, EndpointLease& lease);

  // A reload: sets of upstreams `routing` no longer has (by name, endpoints and TLS settings)
  // drain, and their connections close as their calls end.
  void retain(const Routing& routing);

  size_t connections() const noexcept { return connections_; }
  // A snapshot of every set, as loop `loop` sees it.
  std::vector<UpstreamReport> report(int loop) const;

 private:
  std::shared_ptr<EndpointSet> set_for(const config::Upstream& upstream, const UpstreamTls* tls);
  // Starts a background lookup of each of the set's names that is due.
  void start_due_resolutions(const std::shared_ptr<EndpointSet>& set, rt::TimePoint now);
  // Resolves the set's names that are due: waits (until `give_up`) for those never resolved,
  // starts the others in the background.
  rt::Task<void> refresh(std::shared_ptr<EndpointSet> set, rt::TimePoint give_up);
  rt::Task<void> resolve(std::shared_ptr<EndpointSet> set, size_t target);
  void close_idle(const std::vector<std::shared_ptr<Endpoint>>& endpoints);
  // A connection to `e` that takes streams: its own, or a new one (concurrent callers wait for
  // the same attempt and share its failure). Throws UpstreamUnavailable (also when `e` left the
  // set). `dialled`: set when this call made the attempt (it alone counts the failure).
  rt::Task<std::shared_ptr<h2::Session>> connection(std::shared_ptr<EndpointSet> set,
                                                    std::shared_ptr<Endpoint> e,
                                                    rt::Duration connect_timeout,
                                                    h2::Keepalive keepalive, bool& dialled);
  rt::Task<std::shared_ptr<h2::Session>> connect(EndpointSet& set, Endpoint& e,
                                                 rt::Duration connect_timeout,
                                                 h2::Keepalive keepalive);
  // The transport of a new connection: the socket itself, or TLS over it (bounded by give_up).
  rt::Task<std::unique_ptr<h2::Transport>> secure(const EndpointSet& set, const Endpoint& e,
                                                  rt::Socket socket, rt::TimePoint give_up);
  rt::Task<void> serve_connection(std::shared_ptr<h2::Session> session);
  void connect_failed(ConnectFailure why) const {
    if (observer_ != nullptr) observer_->upstream_connect_failed(why);
  }
  void sweep(rt::TimePoint now);

  h2::SessionLimits limits_;
  ConnectionObserver* observer_;    // may be null
  rt::TaskGroup* group_ = nullptr;  // while run() runs
  // shared_ptr: a call holds its set across waits while reloads and sweeps reshape the map.
  std::unordered_map<std::string, std::shared_ptr<EndpointSet>, EndpointSetKey::Hash,
                     EndpointSetKey::Equal>
      sets_;
  std::minstd_rand random_{std::random_device{}()};
  rt::TimePoint next_sweep_{};
  size_t connections_ = 0;
};

}  // namespace curfew::sidecar
