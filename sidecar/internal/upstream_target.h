// UpstreamTarget: what curfew's own client connections make of a configured upstream endpoint
// (a gRPC target string), and the :authority it sends, as gRPC does for the same target.
//
//   "127.0.0.1:50051", "[::1]:50051"   an address                 authority: the target
//   "name:50051", "dns:///name:50051"  a DNS name                 authority: "name:50051"
//   "dns://server:53/name:50051"       a DNS name (that server)   authority: "name:50051"
//   "ipv4:1.2.3.4:80,5.6.7.8:80"       addresses                  authority:
//   "1.2.3.4:80,5.6.7.8:80" "ipv6:[::1]:80"                    addresses authority: "[::1]:80"
//   "unix:/path", "unix:///path"       a unix socket              authority: "localhost"
//   "unix-abstract:name"               an abstract unix socket    authority: "localhost"
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/socket.h"

namespace curfew::sidecar {

struct UpstreamTarget {
  std::string authority;
  // Either addresses to dial...
  std::vector<rt::SocketAddress> addresses;
  // ...or a DNS name and port to resolve first.
  std::string host;
  std::string port;
  std::string dns_server;  // "" : the system's resolver

  bool needs_resolution() const noexcept { return addresses.empty(); }
};

// Parses a configured endpoint. The error names the target and what is wrong with it.
absl::StatusOr<UpstreamTarget> parse_upstream_target(std::string_view target);

}  // namespace curfew::sidecar
