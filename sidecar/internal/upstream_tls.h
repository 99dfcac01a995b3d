// UpstreamTls: what curfew's own connections to one upstream need for TLS on the nghttp2 path.
// The context is built when the configuration is loaded (so a missing or bad file fails the
// start, or the reload, and the old configuration keeps serving), and `key` names its settings:
// connections are pooled per endpoint and settings, so a reload that keeps both keeps them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "tls/client_context.h"

namespace curfew::sidecar {

struct UpstreamTls {
  std::shared_ptr<const tls::ClientContext> context;
  std::string key;
};

// The TLS of `upstream` (tls.enabled). The error names the upstream, the setting and the file.
absl::StatusOr<std::shared_ptr<const UpstreamTls>> make_upstream_tls(
    const config::Upstream& upstream);

}  // namespace curfew::sidecar
