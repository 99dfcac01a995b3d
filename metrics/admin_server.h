// AdminServer: curfew's admin HTTP endpoints on `admin.address` (cpp-httplib, its own threads):
//
//   GET /metrics   Prometheus text exposition (format 0.0.4) of every collectable given
//   GET /healthz   200 "ok" while the process serves HTTP at all (liveness)
//   GET /readyz    200 "ready" when `ready()` says so (configuration loaded, not draining),
//                  503 "not ready" otherwise (readiness)
//
// Anything else: 404. The server never touches the proxy's loop threads; a scrape only reads
// the metrics shards (see call_metrics.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace curfew::metrics {

class AdminServer {
 public:
  struct Options {
    std::string address = "127.0.0.1:9901";  // host:port; port 0 picks a free port
    // Scraped in this order; each must outlive the server.
    std::vector<const prometheus::Collectable*> collectables;
    std::function<bool()> ready;  // null: never ready
    int threads = 4;              // HTTP worker threads
  };

  // Binds `options.address` and starts serving. An error says what could not be bound.
  static absl::StatusOr<std::unique_ptr<AdminServer>> start(Options options);
  ~AdminServer();  // stops
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The port bound (the one picked when the address said 0).
  int port() const noexcept { return port_; }

  // Stops accepting and waits for the server's threads. Idempotent.
  void stop();

  // The text exposition /metrics answers with (for tests and tools).
  std::string scrape() const;

 private:
  AdminServer() = default;

  Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// Splits "host:port" (IPv6 hosts in brackets; "*" for every interface) into what a socket bind
// takes. False if malformed.
bool split_admin_address(const std::string& address, std::string& host, int& port);

}  // namespace curfew::metrics
