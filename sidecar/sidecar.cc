#include "sidecar/sidecar.h"

#include "runtime/cpu_budget.h"
#include "sidecar/internal/h2_data_plane.h"
#include "sidecar/internal/h2_listener_server.h"
#include "sidecar/internal/routing.h"
#include "sidecar/log.h"

#include <thread>

namespace curfew::sidecar {

absl::Status reloadable(const config::Config& before, const config::Config& after) {
  auto describe = [](const config::Listener& l) { return "'" + l.name + "' on " + l.address; };
  if (before.listeners.size() != after.listeners.size()) {
    return absl::FailedPreconditionError(
        "the set of listeners changed; restart curfew to apply it");
  }
  for (size_t i = 0; i < before.listeners.size(); ++i) {
    const auto& a = before.listeners[i];
    const auto& b = after.listeners[i];
    if (a.name != b.name || a.address != b.address) {
      return absl::FailedPreconditionError("listener " + describe(a) + " became " + describe(b) +
                                           "; restart curfew to apply it");
    }
    if (a.limits.max_message_bytes != b.limits.max_message_bytes ||
        a.limits.max_metadata_bytes != b.limits.max_metadata_bytes ||
        a.limits.max_concurrent_streams_per_connection !=
            b.limits.max_concurrent_streams_per_connection ||
        a.limits.connection != b.limits.connection) {
      return absl::FailedPreconditionError("limits of listener " + describe(a) +
                                           " changed; restart curfew to apply them");
    }
  }
  if (before.busy_poll != after.busy_poll) {
    return absl::FailedPreconditionError("busy_poll changed; restart curfew to apply it");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Sidecar>> Sidecar::start(config::Config config,
                                                        CallObserver* observer,
                                                        ConnectionObserver* connections) {
  int workers = config.worker_threads;
  if (workers <= 0) {  // one per CPU the container may use
    const rt::CpuBudget budget = rt::cpu_budget(rt::cpu_budget_sources_from_environment());
    workers = budget.cpus;
    log(LogLevel::kInfo, "workers: " + std::to_string(workers) + " (" + budget.reason + ")");
  } else {
    log(LogLevel::kInfo, "workers: " + std::to_string(workers) + " (configured)");
  }
  auto routing = Routing::build(std::move(config));
  if (!routing.ok()) return routing.status();

  auto sidecar = std::unique_ptr<Sidecar>(new Sidecar());
  sidecar->routing_ = *routing;
  sidecar->connections_ = connections;
  sidecar->plane_ = std::make_unique<H2DataPlane>(
      H2DataPlane::Options{.loops = workers,
                           .upstream_limits = upstream_session_limits((*routing)->config),
                           .connections = connections,
                           .busy_poll = (*routing)->config.busy_poll});
  for (const config::Listener& l : (*routing)->config.listeners) {
    H2ListenerServer::Options options{sidecar->plane_.get(), observer, &sidecar->shutting_down_};
    auto listener = H2ListenerServer::start(*routing, l.name, options);
    if (!listener.ok()) return listener.status();
    sidecar->listeners_.push_back(std::move(*listener));
  }
  return sidecar;
}

Sidecar::~Sidecar() {
  shutting_down_ = true;
  for (auto& l : listeners_) l->shutdown(std::chrono::system_clock::now());
}

absl::Status Sidecar::reload(config::Config config) {
  std::shared_ptr<const Routing> current = routing();
  if (absl::Status ok = reloadable(current->config, config); !ok.ok()) return ok;
  auto routing = Routing::build(std::move(config));
  if (!routing.ok()) return routing.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    routing_ = *routing;
  }
  for (auto& l : listeners_) l->set_routing(*routing);
  return absl::OkStatus();
}

void Sidecar::drain() {
  shutting_down_ = true;
  const auto drain_timeout = routing()->config.drain_timeout;
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(drain_timeout);
  // Every listener drains at once, within the same deadline.
  std::vector<std::thread> drains;
  for (auto& l : listeners_) drains.emplace_back([&l, deadline] { l->shutdown(deadline); });
  for (auto& t : drains) t.join();
}

int Sidecar::port(const std::string& listener) const {
  for (const auto& l : listeners_) {
    if (l->name() == listener) return l->port();
  }
  return 0;
}

std::shared_ptr<const config::Config> Sidecar::config() const {
  std::shared_ptr<const Routing> current = routing();
  return std::shared_ptr<const config::Config>(current, &current->config);  // shares ownership
}

std::vector<UpstreamReport> Sidecar::upstream_reports(std::chrono::milliseconds limit) const {
  return plane_ ? plane_->upstream_reports(limit) : std::vector<UpstreamReport>{};
}

std::shared_ptr<const Routing> Sidecar::routing() const {
  std::lock_guard<std::mutex> lock(mu_);
  return routing_;
}

}  // namespace curfew::sidecar
