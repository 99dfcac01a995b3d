#include "sidecar/internal/routing.h"

namespace curfew::sidecar {

absl::StatusOr<std::shared_ptr<const Routing>> Routing::build(config::Config config) {
  auto upstreams = Upstreams::open(config);
  if (!upstreams.ok()) return upstreams.status();
  auto routing = std::make_shared<Routing>();
  if (config.data_path == config::DataPath::kNghttp2) {
    for (const config::Upstream& u : config.upstreams) {
      if (!u.tls.enabled) continue;
      auto tls = make_upstream_tls(u);
      if (!tls.ok()) return tls.status();
      routing->tls.emplace(u.name, *std::move(tls));
    }
  }
  routing->config = std::move(config);
  routing->upstreams = std::move(*upstreams);
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
