// AdminServer: curfew's admin HTTP endpoints on `admin.address`:
//
//   GET /metrics   Prometheus text exposition (format 0.0.4) of every collectable given
//   GET /healthz   200 "ok" while the process serves HTTP at all (liveness)
//   GET /readyz    200 "ready" when `ready()` says so (configuration loaded, not draining),
//                  503 "not ready" otherwise (readiness)
//   GET /upstreams `upstreams()`'s JSON (metrics/upstreams_json.h): each upstream's endpoints,
//                  their state, load, latency estimate and last error (404 without one)
//
// Another method on these paths: 405; any other path: 404. One epoll thread serves every
// connection without blocking (metrics/internal/http1_server.h): stalled or slow clients are
// bounded in time and number, a newcomer evicts the longest-stalled connection rather than
// being refused, and scrapes are computed on a worker thread (once for all the requests waiting
// for one), so a probe never waits behind a scrape or a stalled client. The server never
// touches the proxy's loop threads; a scrape only reads the metrics shards.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"

namespace curfew::metrics {

namespace internal {
class Http1Server;
}

class AdminServer {
 public:
  struct Options {
    // host:port; port 0 picks a free port. "*" and "[::]" are every address: IPv6 and IPv4 on
    // one dual-stack socket, or IPv4's (0.0.0.0) where the platform has no IPv6.
    std::string address = "127.0.0.1:9901";
    // Scraped in this order; each must outlive the server.
    std::vector<const prometheus::Collectable*> collectables;
    std::function<bool()> ready;  // null: never ready
    // /upstreams' body; computed on the scrape thread, like /metrics. Null: no such page.
    std::function<std::string()> upstreams;
    // `ready` and the probes run on the server's connection thread: `ready` must not block.
    //
    // Limits per connection, so that no client holds the server: a request head must be
    // complete within request_timeout of the connection (or of the request's first byte on a
    // kept-alive one); a kept-alive connection without a request is closed after idle_timeout;
    // a response not taken within write_timeout ends its connection. At most max_connections at
    // once: a newcomer is never refused, it evicts the connection that has waited longest for a
    // request.
    std::chrono::milliseconds request_timeout{2000};
    std::chrono::milliseconds idle_timeout{10000};
    std::chrono::milliseconds write_timeout{10000};
    int max_connections = 64;
  };

  // Binds `options.address` and starts serving. An error says what could not be bound.
  static absl::StatusOr<std::unique_ptr<AdminServer>> start(Options options);
  ~AdminServer();  // stops
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The port bound (the one picked when the address said 0).
  int port() const noexcept;

  // Stops accepting, closes every connection and waits for the server's threads. Idempotent.
  void stop();

  // The text exposition /metrics answers with (for tests and tools).
  std::string scrape() const;

 private:
  AdminServer() = default;

  Options options_;
  std::unique_ptr<internal::Http1Server> server_;
};

// Splits "host:port" (IPv6 hosts in brackets; "*" for every address, given back as "::") into
// what a socket bind takes. False if malformed.
bool split_admin_address(const std::string& address, std::string& host, int& port);

}  // namespace curfew::metrics
