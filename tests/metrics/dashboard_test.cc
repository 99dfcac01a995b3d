// The Grafana dashboard (deploy/prometheus/curfew-dashboard.json): valid JSON with the panels the
// issue asks for, unique panel ids, every query on the data source variable, and every query
// naming only metrics curfew exposes (so a renamed metric cannot leave a panel silently empty).
// That the queries are valid PromQL is checked against a real Prometheus (prometheus_test.cc).
#include "dashboard.h"

#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "config/status_codes.h"
#include "exposition.h"
#include "metrics/call_metrics.h"
#include "metrics/connection_metrics.h"
#include "metrics/metric_families.h"
#include "metrics/server_metrics.h"

namespace curfew::testing {
namespace {

const std::string kDashboard =
    std::string(CURFEW_SOURCE_DIR) + "/deploy/prometheus/curfew-dashboard.json";

Dashboard load() {
  std::string error;
  auto d = load_dashboard(kDashboard, &error);
  EXPECT_TRUE(d) << kDashboard << ": " << error;
  return d.value_or(Dashboard{});
}

// Every family curfew exposes.
std::set<std::string> exposed_families() {
  std::set<std::string> names;
  metrics::CallMetrics calls;
  metrics::ConnectionMetrics connections;
  metrics::ServerMetrics server("x");
  for (const auto& f : calls.Collect()) names.insert(f.name);
  for (const auto& f : connections.Collect()) names.insert(f.name);
  for (const auto& f : server.Collect()) names.insert(f.name);
  return names;
}

TEST(Dashboard, IsValidJsonWithTitleAndUid) {
  Dashboard d = load();
  EXPECT_EQ(d.title, "curfew");
  EXPECT_FALSE(d.uid.empty());
  EXPECT_GE(d.panels.size(), 10u);
}

TEST(Dashboard, HasThePanelsTheIssueAsksFor) {
  Dashboard d = load();
  const std::pair<const char*, const char*> wanted[] = {
      {"Timeouts by cause", "curfew_timeouts_total"},
      {"Cancellations by cause", "curfew_cancellations_total"},
      {"Fan-out failures by route and mode", "curfew_fanout_failures_total"},
      {"Latency p50 / p99 by route", "curfew_request_duration_seconds_bucket"},
      {"In flight by route", "curfew_inflight_requests"},
  };
  for (const auto& [title, metric] : wanted) {
    const DashboardPanel* panel = nullptr;
    for (const auto& p : d.panels) {
      if (p.title == title) panel = &p;
    }
    ASSERT_NE(panel, nullptr) << "no panel '" << title << "'";
    bool queries_metric = false;
    for (const auto& q : panel->queries) queries_metric |= q.expr.find(metric) != std::string::npos;
    EXPECT_TRUE(queries_metric) << title << " does not query " << metric;
  }
  // p50 and p99 both.
  for (const auto& p : d.panels) {
    if (p.title != "Latency p50 / p99 by route") continue;
    ASSERT_EQ(p.queries.size(), 2u);
    EXPECT_NE(p.queries[0].expr.find("histogram_quantile(0.5,"), std::string::npos);
    EXPECT_NE(p.queries[1].expr.find("histogram_quantile(0.99,"), std::string::npos);
  }
}

TEST(Dashboard, PanelsHaveUniqueIdsPositionsAndQueries) {
  Dashboard d = load();
  std::set<double> ids;
  for (const auto& p : d.panels) {
    EXPECT_TRUE(ids.insert(p.id).second) << "duplicate panel id " << p.id;
    EXPECT_TRUE(p.has_grid_pos) << p.title;
    if (p.type != "row") EXPECT_FALSE(p.queries.empty()) << p.title;
  }
}

TEST(Dashboard, QueriesUseTheDataSourceVariableAndKnownVariables) {
  Dashboard d = load();
  const std::set<std::string> variables(d.variables.begin(), d.variables.end());
  EXPECT_TRUE(variables.contains("datasource"));
  static const std::regex kVariable(R"(\$(\w+))");
  for (const auto& p : d.panels) {
    for (const auto& q : p.queries) {
      EXPECT_EQ(q.datasource_uid, "${datasource}") << p.title << " " << q.ref_id;
      for (auto it = std::sregex_iterator(q.expr.begin(), q.expr.end(), kVariable);
           it != std::sregex_iterator(); ++it) {
        const std::string var = (*it)[1];
        if (var.starts_with("__")) continue;  // Grafana's own ($__rate_interval)
        EXPECT_TRUE(variables.contains(var)) << p.title << ": unknown variable $" << var;
      }
    }
  }
}

TEST(Dashboard, QueriesNameOnlyMetricsCurfewExposes) {
  Dashboard d = load();
  const std::set<std::string> families = exposed_families();
  static const std::regex kMetric(R"(\b((?:curfew|process)_[a-z_]+))");
  int checked = 0;
  for (const auto& p : d.panels) {
    for (const auto& q : p.queries) {
      for (auto it = std::sregex_iterator(q.expr.begin(), q.expr.end(), kMetric);
           it != std::sregex_iterator(); ++it) {
        std::string name = (*it)[1];
        for (const char* suffix : {"_bucket", "_count", "_sum"}) {
          if (!families.contains(name) && name.ends_with(suffix))
            name.resize(name.size() - std::strlen(suffix));
        }
        EXPECT_TRUE(families.contains(name))
            << p.title << ": " << (*it)[1] << " is not a curfew metric";
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 20);
}

// Every family curfew declares (metrics/metric_families.h): the per-call ones, the connections',
// then the process's.
std::vector<const metrics::MetricFamilyDecl*> declared_families() {
  std::vector<const metrics::MetricFamilyDecl*> all(std::begin(metrics::kCallFamilies),
                                                    std::end(metrics::kCallFamilies));
  all.insert(all.end(), std::begin(metrics::kConnectionFamilies),
             std::end(metrics::kConnectionFamilies));
  all.insert(all.end(), std::begin(metrics::kServerFamilies), std::end(metrics::kServerFamilies));
  return all;
}

std::string type_name(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter:
      return "counter";
    case prometheus::MetricType::Gauge:
      return "gauge";
    case prometheus::MetricType::Histogram:
      return "histogram";
    case prometheus::MetricType::Summary:
      return "summary";
    case prometheus::MetricType::Untyped:
      return "untyped";
  }
  return "?";
}

// "`a`, `b`, `c`"; "—" for none.
template <typename Names>
std::string backquoted_list(const Names& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "`" : ", `") + std::string(n) + "`";
  return out.empty() ? "—" : out;
}

TEST(Dashboard, EveryExposedMetricIsDocumented) {
  // docs/metrics.md lists every metric, as declared in metrics/metric_families.h: its table row
  // reads | `name` | type | labels | ... Keep it so.
  std::ifstream in(std::string(CURFEW_SOURCE_DIR) + "/docs/metrics.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string docs = text.str();
  std::set<std::string> declared;
  for (const metrics::MetricFamilyDecl* f : declared_families()) {
    const std::string name(f->name);
    EXPECT_TRUE(declared.insert(name).second) << name << " is declared twice";
    const std::string row =
        "| `" + name + "` | " + type_name(f->type) + " | " + backquoted_list(f->labels) + " |";
    EXPECT_NE(docs.find(row), std::string::npos)
        << name << " is not in docs/metrics.md as declared; expected a row starting " << row;
  }
  // What curfew exposes is what it declares.
  EXPECT_EQ(exposed_families(), declared);

  // The label values of the enum labels, from their tables (sidecar/call_report.h,
  // sidecar/connection_report.h, config).
  auto labels_of = [](const auto& table) {
    std::vector<std::string> out;
    for (const auto& e : table) out.push_back(e.label);
    return out;
  };
  for (const std::string& row :
       {"| `mode` | " + backquoted_list(labels_of(sidecar::kFanoutModeLabels)) + " |",
        "| `limit` | " + backquoted_list(labels_of(sidecar::kRejectionLabels)) + " |",
        "| `side` | " + backquoted_list(labels_of(sidecar::kConnectionSideLabels)) + " |",
        "| `grpc_code` | the canonical status code name: " +
            backquoted_list(config::kStatusCodeNames) + " "}) {
    EXPECT_NE(docs.find(row), std::string::npos) << "docs/metrics.md has no row starting " << row;
  }
  // `reason` differs by metric: each value is in its metric's row.
  auto row_of = [&docs](std::string_view family) {
    const size_t start = docs.find("| `" + std::string(family) + "` |");
    return start == std::string::npos ? std::string()
                                      : docs.substr(start, docs.find('\n', start) - start);
  };
  const std::string closed = row_of(metrics::family::kConnectionsClosed.name);
  for (const std::string& reason : labels_of(sidecar::kCloseReasonLabels)) {
    EXPECT_NE(closed.find("`" + reason + "`"), std::string::npos)
        << "the docs' row of curfew_connections_closed_total does not name reason " << reason;
  }
  const std::string failures = row_of(metrics::family::kUpstreamConnectFailures.name);
  for (const std::string& reason : labels_of(sidecar::kConnectFailureLabels)) {
    EXPECT_NE(failures.find("`" + reason + "`"), std::string::npos)
        << "the docs' row of curfew_upstream_connect_failures_total does not name reason "
        << reason;
  }
}

}  // namespace
}  // namespace curfew::testing
