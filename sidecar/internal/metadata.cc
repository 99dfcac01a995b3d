#include "sidecar/internal/metadata.h"

#include <string_view>

namespace curfew::sidecar {
namespace {

std::string_view view(grpc::string_ref s) { return std::string_view(s.data(), s.size()); }

std::string str(grpc::string_ref s) { return std::string(s.data(), s.size()); }

}  // namespace

bool is_hop_by_hop(grpc::string_ref key) noexcept {
  const std::string_view k = view(key);
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

void forward_request_metadata(const std::multimap<grpc::string_ref, grpc::string_ref>& from,
                              grpc::ClientContext& to) {
  for (const auto& [key, value] : from) {
    if (!is_hop_by_hop(key)) to.AddMetadata(str(key), str(value));
  }
}

void forward_initial_metadata(const std::multimap<grpc::string_ref, grpc::string_ref>& from,
                              grpc::ServerContextBase& to) {
  for (const auto& [key, value] : from) {
    if (!is_hop_by_hop(key)) to.AddInitialMetadata(str(key), str(value));
  }
}

void forward_trailing_metadata(const std::multimap<grpc::string_ref, grpc::string_ref>& from,
                               grpc::ServerContextBase& to) {
  for (const auto& [key, value] : from) {
    if (!is_hop_by_hop(key)) to.AddTrailingMetadata(str(key), str(value));
  }
}

}  // namespace curfew::sidecar
