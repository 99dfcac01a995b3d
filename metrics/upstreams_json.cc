#include "metrics/upstreams_json.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace curfew::metrics {
namespace {

// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped; other
// bytes as they are (error texts are UTF-8 or ASCII).
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

std::string upstreams_json(std::vector<sidecar::UpstreamReport> reports) {
  std::sort(reports.begin(), reports.end(), [](const auto& a, const auto& b) {
    return a.upstream != b.upstream ? a.upstream < b.upstream : a.loop < b.loop;
  });
  std::string out = "{\"upstreams\": [";
  for (size_t i = 0; i < reports.size(); ++i) {
    const sidecar::UpstreamReport& r = reports[i];
    absl::StrAppend(&out, i == 0 ? "\n  " : ",\n  ", "{\"upstream\": ", quoted(r.upstream),
                    ", \"worker\": ", r.loop, ", \"balancer\": ", quoted(r.balancer),
                    ", \"resolve_errors\": [");
    for (size_t k = 0; k < r.resolve_errors.size(); ++k)
      absl::StrAppend(&out, k == 0 ? "" : ", ", quoted(r.resolve_errors[k]));
    out += "], \"endpoints\": [";
    for (size_t k = 0; k < r.endpoints.size(); ++k) {
      const sidecar::EndpointReport& e = r.endpoints[k];
      absl::StrAppend(
          &out, k == 0 ? "\n    " : ",\n    ", "{\"address\": ", quoted(e.address),
          ", \"target\": ", quoted(e.target), ", \"state\": ", quoted(e.state),
          ", \"connected\": ", e.connected ? "true" : "false", ", \"outstanding\": ", e.outstanding,
          ", \"latency_ms\": ", e.latency_ms < 0 ? std::string("null") : number(e.latency_ms),
          ", \"consecutive_failures\": ", e.consecutive_failures, ", \"ejections\": ", e.ejections,
          ", \"ejected_for_s\": ", number(e.ejected_for_s),
          ", \"last_error\": ", quoted(e.last_error), "}");
    }
    out += r.endpoints.empty() ? "]}" : "\n  ]}";
  }
  out += reports.empty() ? "]}\n" : "\n]}\n";
  return out;
}

}  // namespace curfew::metrics
