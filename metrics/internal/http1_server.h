// Http1Server: a small HTTP/1.1 GET server on one epoll thread, built so that no client can
// starve it:
//   - every connection is non-blocking, and bounded in time (its request head must be complete
//     within `request_timeout` of the connection or of the request's first byte; a kept-alive
//     connection with no request goes after `idle_timeout`; a response not taken within
//     `write_timeout` ends it) and in size (a head over `max_request_bytes`: 431, closed);
//   - the number of connections is bounded, and a newcomer evicts the connection that has
//     waited longest for a request instead of being refused (a prober always gets in);
//   - slow handlers (a scrape) run on a worker thread of their own, one computation shared by
//     every request waiting for it, so quick handlers (probes) never wait behind them.
//
// GET only (another method on a route: 405); no request bodies (a request with one is answered
// and its connection closed); keep-alive and pipelining for HTTP/1.1.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace curfew::metrics::internal {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class Http1Server {
 public:
  struct Limits {
    std::chrono::milliseconds request_timeout{2000};  // connect or first byte -> end of head
    std::chrono::milliseconds idle_timeout{10000};    // kept alive, no request yet
    std::chrono::milliseconds write_timeout{10000};   // a response not taken by then: closed
    int max_connections = 64;
    size_t max_request_bytes = 8192;  // the request head; over it: 431 and closed
  };
  struct Route {
    std::string path;
    std::function<HttpResponse()> handler;
    // Runs on the worker thread; requests that arrive while it runs share the next run.
    bool slow = false;
  };

  // Binds host:port and serves `routes` (other paths: 404). Host "::" is every address: IPv6
  // and IPv4 on one dual-stack socket, or 0.0.0.0 where the platform has no IPv6. Port 0 picks
  // a free port. Quick handlers run on the connection thread and must not block; all handlers
  // must be thread-safe and outlive the server. An error says why the address could not be
  // bound (strerror).
  static absl::StatusOr<std::unique_ptr<Http1Server>> start(const std::string& host, int port,
                                                            std::vector<Route> routes,
                                                            Limits limits);
  ~Http1Server();  // stops
  Http1Server(const Http1Server&) = delete;
  Http1Server& operator=(const Http1Server&) = delete;

  int port() const noexcept;
  // Stops serving, closes every connection and waits for the threads (a slow handler running
  // finishes first). Idempotent.
  void stop();

  class Impl;

 private:
  explicit Http1Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace curfew::metrics::internal
