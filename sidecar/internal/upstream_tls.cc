#include "sidecar/internal/upstream_tls.h"

namespace curfew::sidecar {

absl::StatusOr<std::shared_ptr<const UpstreamTls>> make_upstream_tls(
    const config::Upstream& upstream) {
  const config::Upstream::Tls& t = upstream.tls;
  auto context = tls::ClientContext::create({.ca_file = t.ca_file,
                                             .cert_file = t.cert_file,
                                             .key_file = t.key_file,
                                             .server_name = t.server_name});
  if (!context.ok()) {
    return absl::Status(context.status().code(), "upstream '" + upstream.name + "': " +
                                                     std::string(context.status().message()));
  }
  auto out = std::make_shared<UpstreamTls>();
  out->context = *std::move(context);
  // NUL cannot occur in a path or a name: the fields cannot run into each other.
  out->key = std::string("tls") + '\0' + t.ca_file + '\0' + t.cert_file + '\0' + t.key_file + '\0' +
             t.server_name;
  return std::shared_ptr<const UpstreamTls>(std::move(out));
}

}  // namespace curfew::sidecar
