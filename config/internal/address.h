// Syntax checks for listen addresses and upstream endpoints.

#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace curfew::config::internal {

// HostPort
//
// An address split into its parts; IPv6 hosts keep their brackets ("[::1]"). `host` views the
// string that was split.
struct HostPort {
  std::string_view host;
  int port = 0;

  // HostPort::is_wildcard()
  //
  // Returns true for hosts that bind every interface (0.0.0.0, [::], *).
  bool is_wildcard() const;
};

// split_host_port()
//
// Parses "host:port" (port in [0, 65535]; IPv6 hosts in brackets, "[::1]:15001"). On failure
// returns InvalidArgumentError describing what is wrong.
absl::Status split_host_port(std::string_view address, HostPort& out);

// check_target()
//
// Accepts a gRPC target string: "host:port", or one of the schemes gRPC resolves itself
// ("dns:[//authority/]name[:port]", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:") with a
// non-empty remainder.
absl::Status check_target(std::string_view target);

}  // namespace curfew::config::internal
