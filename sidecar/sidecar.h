// Sidecar: curfew's lifecycle — start every listener, reload the routing atomically, drain on
// shutdown. Knows nothing of YAML or signals (main.cc does).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/config.h"
#include "sidecar/call_report.h"
#include "sidecar/connection_report.h"
#include "sidecar/endpoint_report.h"

namespace curfew::sidecar {

class H2DataPlane;

class H2ListenerServer;  // sidecar/internal/h2_listener_server.h
struct Routing;          // sidecar/internal/routing.h

class Sidecar {
 public:
  // Starts the data path's loops and binds every listener. An error names what failed.
  static absl::StatusOr<std::unique_ptr<Sidecar>> start(config::Config config,
                                                        CallObserver* observer = nullptr,
                                                        ConnectionObserver* connections = nullptr);
  ~Sidecar();

  // Swaps in a new configuration: calls already in flight keep their route, new calls use the
  // new one. Listeners (names, addresses, limits) cannot change without a restart: such a
  // config is refused and the current one keeps serving.
  absl::Status reload(config::Config config);

  // Graceful stop: not ready any more, no new calls, calls in flight get until the drain
  // timeout, then are cancelled (and their upstream calls with them). Blocking.
  void drain();

  // Ready: a configuration is loaded and the sidecar is not draining.
  bool ready() const noexcept { return !shutting_down_.load(std::memory_order_relaxed); }

  // Port a listener is bound to (useful with ":0" addresses); 0 if unknown.
  int port(const std::string& listener) const;

  // The configuration serving new calls (it stays valid while held, across reloads).
  std::shared_ptr<const config::Config> config() const;

  // Each loop's view of its upstreams' endpoint sets (endpoint_report.h): asks every loop and
  // waits for the answers, at most `limit`. Any thread but a loop's; not on a hot path.
  std::vector<UpstreamReport> upstream_reports(
      std::chrono::milliseconds limit = std::chrono::milliseconds(1000)) const;

 private:
  std::shared_ptr<const Routing> routing() const;

  Sidecar() = default;

  mutable std::mutex mu_;  // guards routing_ (reload vs. readers of the admin side)
  std::shared_ptr<const Routing> routing_;
  // The data path's loops, shared by every listener: destroyed after them.
  std::unique_ptr<H2DataPlane> plane_;
  std::vector<std::unique_ptr<H2ListenerServer>> listeners_;
  std::atomic<bool> shutting_down_{false};
  ConnectionObserver* connections_ = nullptr;  // may be null
};

// OK when a reload can switch from `before` to `after`: the same listeners with the same limits,
// and the same busy_poll; otherwise says what needs a restart.
absl::Status reloadable(const config::Config& before, const config::Config& after);

}  // namespace curfew::sidecar
