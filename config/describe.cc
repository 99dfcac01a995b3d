// describe(): the effective configuration as text, for `curfew --check-config`.

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/config.h"
#include "config/duration.h"
#include "config/status_codes.h"

namespace curfew::config {
namespace {

using Row = std::vector<std::string>;

// Renders rows as left-aligned columns two spaces apart; the first row is the header.
std::string table(const std::vector<Row>& rows) {
  std::vector<size_t> widths;
  for (const Row& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string match_text(const Match& match) {
  switch (match.kind) {
    case Match::kMethod:
      return absl::StrCat("method ", match.value);
    case Match::kService:
      return absl::StrCat("service ", match.value);
    case Match::kPrefix:
      return absl::StrCat("prefix ", match.value);
  }
  return "";
}

std::string fanout_text(const Fanout& fanout) {
  const char* merge = fanout.merge == Fanout::kConcat ? "concat" : "first";
  switch (fanout.mode) {
    case Fanout::kAll:
      return absl::StrCat("fanout all, merge ", merge);
    case Fanout::kQuorum:
      return absl::StrCat("fanout quorum ", fanout.quorum, "/", fanout.upstreams.size(), ", merge ",
                          merge);
    case Fanout::kHedge:
      return absl::StrCat("hedge after ", format_duration(fanout.delay), ", merge ", merge);
  }
  return "";
}

std::string retry_text(const Retry& retry) {
  std::vector<std::string> codes;
  for (int code : retry.on) codes.emplace_back(status_code_name(code));
  return absl::StrCat("retry ", retry.attempts, "x ", format_duration(retry.per_try_timeout),
                      "/try on ", absl::StrJoin(codes, ","), ", backoff ",
                      format_duration(retry.backoff_base), "..", format_duration(retry.backoff_max),
                      ", budget ", retry.budget_ratio * 100, "%");
}

std::string policy_text(const Route& route) {
  std::vector<std::string> parts;
  if (route.fanout) parts.push_back(fanout_text(*route.fanout));
  if (route.retry) parts.push_back(retry_text(*route.retry));
  if (route.hedge) {
    parts.push_back(absl::StrCat("hedge up to ", route.hedge->max_hedges, " more endpoint",
                                 route.hedge->max_hedges == 1 ? "" : "s", " every ",
                                 format_duration(route.hedge->delay)));
  }
  if (route.mirror) {
    parts.push_back(
        absl::StrCat("mirror ", route.mirror->percent, "% to ", route.mirror->upstream));
  }
  if (route.max_concurrent_calls) {
    parts.push_back(absl::StrCat("max ", *route.max_concurrent_calls, " concurrent"));
  }
  if (route.deadline_offset.count() != 0) {
    parts.push_back(absl::StrCat("deadline_offset ", format_duration(route.deadline_offset)));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, "; ");
}

std::string optional_duration(const std::optional<std::chrono::nanoseconds>& d) {
  return d ? format_duration(*d) : "-";
}

}  // namespace

std::string describe(const Config& config) {
  std::string out = absl::StrCat(
      "config ", config.source_path.empty() ? "(unnamed)" : config.source_path, ": admin on ",
      config.admin.address, ", drain_timeout ", format_duration(config.drain_timeout), ", ",
      config.worker_threads == 0 ? std::string("one worker per CPU the container may use")
                                 : absl::StrCat(config.worker_threads, " workers"),
      config.busy_poll > std::chrono::nanoseconds::zero()
          ? absl::StrCat(", busy_poll ", format_duration(config.busy_poll))
          : std::string(),
      "\n\n");

  std::vector<Row> routes = {
      {"LISTENER", "ROUTE", "MATCH", "UPSTREAM", "TIMEOUT", "MAX_TIMEOUT", "MIN_BUDGET", "POLICY"}};
  for (const Listener& listener : config.listeners) {
    absl::StrAppend(&out, "listener ", listener.name, " on ", listener.address,
                    ": default_timeout ", format_duration(listener.default_timeout),
                    ", max_concurrent_calls ", listener.limits.max_concurrent_calls, "\n");
    for (const Route& route : listener.routes) {
      // "(default)" flags timeouts inherited from the listener: the usual surprise in review.
      std::string timeout = format_duration(listener.effective_timeout(route));
      if (!route.timeout) timeout += " (default)";
      routes.push_back({listener.name, route.name, match_text(route.match),
                        route.fanout ? absl::StrJoin(route.fanout->upstreams, ",") : route.upstream,
                        timeout, optional_duration(route.max_timeout),
                        format_duration(route.min_budget), policy_text(route)});
    }
  }
  absl::StrAppend(&out, "\n", table(routes));

  std::vector<Row> upstreams = {
      {"UPSTREAM", "ENDPOINTS", "CONNECT_TIMEOUT", "TLS", "BALANCER", "RESOLVE", "EJECT"}};
  for (const Upstream& upstream : config.upstreams) {
    const Upstream::OutlierDetection& o = upstream.outlier_detection;
    upstreams.push_back(
        {upstream.name, absl::StrJoin(upstream.endpoints, ","),
         format_duration(upstream.connect_timeout), upstream.tls.enabled ? "on" : "off",
         balancer_name(upstream.balancer), format_duration(upstream.resolve_interval),
         o.consecutive_failures == 0 ? std::string("off")
                                     : absl::StrCat("after ", o.consecutive_failures, " failures, ",
                                                    format_duration(o.base_ejection_time), "..",
                                                    format_duration(o.max_ejection_time), ", max ",
                                                    o.max_ejection_percent, "%")});
  }
  absl::StrAppend(&out, "\n", table(upstreams));
  return out;
}

}  // namespace curfew::config
