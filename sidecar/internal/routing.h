// Routing: everything a call needs to be routed — the configuration and the TLS contexts of the
// upstreams it names. Immutable; a reload builds a new one and swaps it in; each in-flight call
// keeps the Routing it started with, so a reload never changes a call's route mid-flight.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "sidecar/internal/upstream_tls.h"

namespace curfew::sidecar {

struct Routing {
  config::Config config;
  // The TLS per upstream name (upstreams with tls.enabled only).
  std::unordered_map<std::string, std::shared_ptr<const UpstreamTls>> tls;

  // Builds the TLS contexts of `config`'s upstreams; an error names the upstream and file.
  static absl::StatusOr<std::shared_ptr<const Routing>> build(config::Config config);

  // The TLS of the upstream called `name`, or nullptr (plaintext).
  const UpstreamTls* tls_for(const std::string& name) const;
  // The listener called `name`, or nullptr.
  const config::Listener* listener(std::string_view name) const;
};

}  // namespace curfew::sidecar
