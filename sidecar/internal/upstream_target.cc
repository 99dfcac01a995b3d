#include "sidecar/internal/upstream_target.h"

#include <arpa/inet.h>

#include "absl/status/status.h"

namespace curfew::sidecar {
namespace {

absl::Status bad(std::string_view target, std::string_view why) {
  return absl::InvalidArgumentError("upstream endpoint \"" + std::string(target) +
                                    "\": " + std::string(why));
}

bool is_ip_literal(const std::string& host) {
  in6_addr buf{};
  return ::inet_pton(AF_INET, host.c_str(), &buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

// "host:port" or "[v6]:port" into host and port; the host keeps no brackets.
bool split_host_port(std::string_view hp, std::string& host, std::string& port) {
  if (hp.starts_with("[")) {
    const size_t close = hp.find(']');
    if (close == std::string_view::npos || close + 1 >= hp.size() || hp[close + 1] != ':')
      return false;
    host = std::string(hp.substr(1, close - 1));
    port = std::string(hp.substr(close + 2));
  } else {
    const size_t colon = hp.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(hp.substr(0, colon));
    port = std::string(hp.substr(colon + 1));
  }
  return !host.empty() && !port.empty() &&
         port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5 &&
         std::stoi(port) <= 65535;
}

absl::StatusOr<UpstreamTarget> host_port(std::string_view target, std::string_view hp) {
  UpstreamTarget out;
  if (!split_host_port(hp, out.host, out.port)) return bad(target, "expected host:port");
  out.authority = std::string(hp);
  if (is_ip_literal(out.host)) {
    const bool v6 = out.host.find(':') != std::string::npos;
    out.addresses.push_back(rt::SocketAddress::parse(v6 ? "[" + out.host + "]:" + out.port
                                                        : out.host + ":" + out.port));
    out.host.clear();
    out.port.clear();
  }
  return out;
}

}  // namespace

absl::StatusOr<UpstreamTarget> parse_upstream_target(std::string_view target) {
  if (target.starts_with("unix:") || target.starts_with("unix-abstract:") ||
      target.starts_with("vsock:")) {
    std::string text(target);
    if (text.starts_with("unix://")) text = "unix:" + text.substr(7);  // unix:///path
    UpstreamTarget out;
    out.authority = "localhost";
    try {
      out.addresses.push_back(rt::SocketAddress::parse(text));
    } catch (const std::invalid_argument& e) {
      return bad(target, e.what());
    }
    return out;
  }
  if (target.starts_with("ipv4:") || target.starts_with("ipv6:")) {
    UpstreamTarget out;
    out.authority = std::string(target.substr(5));
    std::string_view list = target.substr(5);
    for (size_t start = 0; start <= list.size();) {
      size_t comma = list.find(',', start);
      if (comma == std::string_view::npos) comma = list.size();
      const std::string_view part = list.substr(start, comma - start);
      start = comma + 1;
      std::string host, port;
      if (!split_host_port(part, host, port) || !is_ip_literal(host))
        return bad(target, "\"" + std::string(part) + "\" is not an IP address and port");
      const bool v6 = host.find(':') != std::string::npos;
      out.addresses.push_back(
          rt::SocketAddress::parse(v6 ? "[" + host + "]:" + port : host + ":" + port));
    }
    return out;
  }
  if (target.starts_with("dns:")) {
    std::string_view rest = target.substr(4);
    std::string server;
    if (rest.starts_with("//")) {
      rest.remove_prefix(2);
      const size_t slash = rest.find('/');
      if (slash == std::string_view::npos) return bad(target, "expected dns://[server]/name:port");
      server = std::string(rest.substr(0, slash));
      rest.remove_prefix(slash + 1);
    }
    auto out = host_port(target, rest);
    if (out.ok()) out->dns_server = server;
    return out;
  }
  return host_port(target, target);
}

}  // namespace curfew::sidecar
