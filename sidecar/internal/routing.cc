#include "sidecar/internal/routing.h"

namespace curfew::sidecar {

absl::StatusOr<std::shared_ptr<const Routing>> Routing::build(config::Config config) {
  auto routing = std::make_shared<Routing>();
  for (const config::Upstream& u : config.upstreams) {
    if (!u.tls.enabled) continue;
    auto tls = make_upstream_tls(u);
    if (!tls.ok()) return tls.status();
    routing->tls.emplace(u.name, *std::move(tls));
  }
  routing->config = std::move(config);
  return std::shared_ptr<const Routing>(std::move(routing));
}

const UpstreamTls* Routing::tls_for(const std::string& name) const {
  auto it = tls.find(name);
  return it == tls.end() ? nullptr : it->second.get();
}

const config::Listener* Routing::listener(std::string_view name) const {
  for (const auto& l : config.listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

}  // namespace curfew::sidecar
