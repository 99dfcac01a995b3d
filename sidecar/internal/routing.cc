#include "sidecar/internal/routing.h"

namespace curfew::sidecar {

absl::StatusOr<std::shared_ptr<const Routing>> Routing::build(config::Config config) {
  auto upstreams = Upstreams::open(config);
  if (!upstreams.ok()) return upstreams.status();
  auto routing = std::make_shared<Routing>();
  routing->config = std::move(config);
  routing->upstreams = std::move(*upstreams);
  return std::shared_ptr<const Routing>(std::move(routing));
}

const config::Listener* Routing::listener(std::string_view name) const {
  for (const auto& l : config.listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

}  // namespace curfew::sidecar
