#include "sidecar/internal/metadata.h"

namespace curfew::sidecar {

bool is_hop_by_hop(std::string_view k) noexcept {
  if (k.empty() || k.front() == ':') return true;
  if (k == "te" || k == "content-type" || k == "user-agent" || k == "host" || k == "connection" ||
      k == "content-length") {
    return true;
  }
  // grpc-* keys are the protocol's (grpc-timeout, grpc-encoding, grpc-status...), except the
  // tracing/tagging ones that exist precisely to travel with the call.
  if (k.substr(0, 5) == "grpc-") return k != "grpc-trace-bin" && k != "grpc-tags-bin";
  return false;
}

}  // namespace curfew::sidecar
