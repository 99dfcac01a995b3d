// UpstreamPool: one loop's HTTP/2 connections to upstream endpoints (h2::Session, client role).
// One multiplexed connection per endpoint per loop, a new one only when it stops taking streams
// (GOAWAY, closed, stream ids used up). Keyed by the endpoint's target string, not by a Routing:
// a reload that keeps an endpoint keeps its connection.
//
// Names resolve with c-ares on the blocking pool (dns/), within the connect timeout. With an
// UpstreamTls, the connection runs TLS (tls/): pooled per endpoint and TLS settings.
//
// Loop thread only.
#pragma once

#include <memory>
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
#include "sidecar/internal/upstream_target.h"
#include "sidecar/internal/upstream_tls.h"

namespace curfew::sidecar {

// The keepalive an upstream's config asks for (config::Upstream::keepalive_time).
inline h2::Keepalive keepalive_of(const config::Upstream& upstream) {
  return {.time = upstream.keepalive_time, .timeout = upstream.keepalive_timeout};
}

// No connection to an upstream endpoint could be had; what() names the endpoint and the cause.
class UpstreamUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class UpstreamPool {
 public:
  explicit UpstreamPool(h2::SessionLimits limits, ConnectionObserver* observer = nullptr)
      : limits_(limits), observer_(observer) {}
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Runs the pool's connections until cancelled (then every connection closes).
  rt::Task<void> run();

  // A connection to `endpoint` that takes new streams: the pooled one, or a new one (connecting
  // within `connect_timeout`, keeping alive as `keepalive` says; concurrent callers wait for the
  // same attempt). Throws UpstreamUnavailable.
  rt::Task<std::shared_ptr<h2::Session>> session(const std::string& endpoint,
                                                 rt::Duration connect_timeout,
                                                 const UpstreamTls* tls = nullptr,
                                                 h2::Keepalive keepalive = {});

  // The :authority for `endpoint` (as gRPC would send it).
  const std::string& authority(const std::string& endpoint);

  size_t connections() const noexcept { return connections_; }

 private:
  struct Entry {
    UpstreamTarget target;
    std::shared_ptr<const UpstreamTls> tls;  // the newest context for these settings; null: none
    std::string parse_error;
    std::shared_ptr<h2::Session> session;
    bool connecting = false;
    rt::Event attempt_done;
  };
  Entry& entry(const std::string& endpoint, const UpstreamTls* tls = nullptr);
  // The transport of a new connection: the socket itself, or TLS over it (bounded by give_up).
  rt::Task<std::unique_ptr<h2::Transport>> secure(Entry& e, rt::Socket socket,
                                                  rt::TimePoint give_up);
  rt::Task<std::shared_ptr<h2::Session>> connect(const std::string& endpoint, Entry& e,
                                                 rt::Duration connect_timeout,
                                                 h2::Keepalive keepalive);
  rt::Task<void> serve_connection(std::shared_ptr<h2::Session> session);
  void connect_failed(ConnectFailure why) const {
    if (observer_ != nullptr) observer_->upstream_connect_failed(why);
  }

  h2::SessionLimits limits_;
  ConnectionObserver* observer_;    // may be null
  rt::TaskGroup* group_ = nullptr;  // while run() runs
  // unique_ptr: an Entry stays put while the map grows (callers hold it across waits). Entries
  // are kept for the pool's life: one per endpoint ever configured.
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  size_t connections_ = 0;
};

}  // namespace curfew::sidecar
