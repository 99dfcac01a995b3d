#include "config/internal/address.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "config/internal/strings.h"

namespace curfew::config::internal {

bool HostPort::is_wildcard() const { return host == "0.0.0.0" || host == "[::]" || host == "*"; }

absl::Status split_host_port(std::string_view address, HostPort& out) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address \"", to_absl(address), "\" (", to_absl(why), ")"));
  };
  size_t colon;
  if (address.starts_with('[')) {
    const size_t close = address.find(']');
    if (close == std::string_view::npos) return bad("unterminated [ in IPv6 host");
    colon = close + 1;
    if (colon >= address.size() || address[colon] != ':') return bad("expected host:port");
  } else {
    colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port");
    if (address.substr(0, colon).find(':') != std::string_view::npos) {
      return bad("put IPv6 hosts in brackets, e.g. [::1]:15001");
    }
  }
  const std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.empty()) return bad("missing host; use 0.0.0.0 for every interface");
  for (char c : host) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '/') {
      return bad("expected host:port");
    }
  }
  int port_number;
  if (port.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(port[0])) ||
      !absl::SimpleAtoi(to_absl(port), &port_number) || port_number > 65535) {
    return bad("port must be a number in [0, 65535]");
  }
  out = HostPort{host, port_number};
  return absl::OkStatus();
}

absl::Status check_target(std::string_view target) {
  static constexpr std::string_view kSchemes[] = {
      "dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:"};
  for (std::string_view scheme : kSchemes) {
    if (!target.starts_with(scheme)) continue;
    std::string_view rest = target.substr(scheme.size());
    if (scheme == "dns:" && rest.starts_with("//")) {
      // Skip the optional authority (the DNS server to ask): "dns://8.8.8.8/name".
      const size_t slash = rest.find('/', 2);
      rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    }
    if (rest.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad endpoint \"", to_absl(target), "\" (nothing after \"", to_absl(scheme), "\")"));
    }
    return absl::OkStatus();
  }
  HostPort ignored;
  if (!split_host_port(target, ignored).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad endpoint \"", to_absl(target),
        "\" (expected host:port or a gRPC target such as dns:///name:port, ipv4:10.0.0.1:50051 "
        "or unix:/path/to.sock)"));
  }
  return absl::OkStatus();
}

}  // namespace curfew::config::internal
