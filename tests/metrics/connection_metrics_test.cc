// ConnectionMetrics on synthetic connection reports: the declared families, label values from the
// one table per enum, what each report turns into, exact totals under concurrent reporting
// threads and scrapes (run under TSan), and a valid text exposition (promtool, when installed).
#include "metrics/connection_metrics.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "exposition.h"
#include "metrics/metric_families.h"
#include "spawn_child.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using h2::CloseReason;
using metrics::ConnectionMetrics;
using sidecar::ConnectFailure;
using sidecar::ConnectionSide;

constexpr char kOpen[] = "curfew_connections";
constexpr char kClosed[] = "curfew_connections_closed_total";
constexpr char kConnectFailures[] = "curfew_upstream_connect_failures_total";

constexpr size_t kSides = std::size(sidecar::kConnectionSideLabels);
constexpr size_t kReasons = std::size(sidecar::kCloseReasonLabels);
constexpr size_t kFailures = std::size(sidecar::kConnectFailureLabels);

Exposition scrape(const ConnectionMetrics& m) { return Exposition(expose(m)); }

// `promtool check metrics` on `text`, as prometheus_test.cc runs it on a live scrape: its exit
// code (nullopt if it did not finish within 60 s) and its output.
std::pair<std::optional<int>, std::string> promtool_check_metrics(const std::string& promtool,
                                                                  const std::string& text) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::string base = "curfew-connection-metrics-" + std::to_string(getpid());
  const std::filesystem::path input = dir / (base + ".txt"), log = dir / (base + ".log");
  std::ofstream(input) << text;
  std::optional<int> exit_code;
  const pid_t pid = spawn_child({promtool, "check", "metrics"}, log.string(), input.string());
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (pid > 0) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::stringstream output;
  output << std::ifstream(log).rdbuf();
  std::filesystem::remove(input);
  std::filesystem::remove(log);
  return {exit_code, output.str()};
}

// The label names of one series, in order.
std::vector<std::string> label_names(const prometheus::ClientMetric& series) {
  std::vector<std::string> names;
  for (const auto& l : series.label) names.push_back(l.name);
  return names;
}

TEST(ConnectionMetrics, FamiliesAreTheContract) {
  // Collect() returns exactly the families of kConnectionFamilies (metrics/metric_families.h), in
  // the declared order, with the declared name, help and type; every series carries the declared
  // labels. Nothing reported: every series is there already.
  ConnectionMetrics m;
  const std::vector<prometheus::MetricFamily> families = m.Collect();
  ASSERT_EQ(families.size(), std::size(metrics::kConnectionFamilies));
  std::set<std::string> names;
  for (size_t i = 0; i < families.size(); ++i) {
    const metrics::MetricFamilyDecl& declared = *metrics::kConnectionFamilies[i];
    const prometheus::MetricFamily& f = families[i];
    EXPECT_EQ(f.name, declared.name);
    EXPECT_EQ(f.help, declared.help) << f.name;
    EXPECT_EQ(f.type, declared.type) << f.name;
    const std::vector<std::string> declared_labels(declared.labels.begin(), declared.labels.end());
    // Upstream names are not known in advance: that family's series appear with their first
    // ejection (EjectionsAreCountedByUpstream).
    if (f.name != metrics::family::kUpstreamEndpointEjections.name &&
        f.name != metrics::family::kUpstreamResolveFailures.name)
      EXPECT_FALSE(f.metric.empty()) << f.name << " has no series";
    for (const auto& series : f.metric) EXPECT_EQ(label_names(series), declared_labels) << f.name;
    names.insert(f.name);

    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(f.name.ends_with("_total")) << f.name;
    } else {
      EXPECT_FALSE(f.name.ends_with("_total")) << f.name;
    }
  }
  EXPECT_EQ(names.size(), families.size()) << "family names are unique";
  EXPECT_EQ(families[0].metric.size(), kSides);
  EXPECT_EQ(families[1].metric.size(), kSides * kReasons);
  EXPECT_EQ(families[2].metric.size(), kFailures);
}

TEST(ConnectionMetrics, EnumLabelValuesComeFromTheOneTablePerEnum) {
  // Each side, close reason and connect failure is exposed under the label its table
  // (sidecar/connection_report.h) gives, and no other series exists. Every (side, reason) is
  // reported a different number of times, so a cell counted under a neighbour's label shows.
  ConnectionMetrics m;
  for (size_t s = 0; s < kSides; ++s) {
    for (size_t r = 0; r < kReasons; ++r) {
      for (size_t n = 0; n < s * kReasons + r + 1; ++n) {
        m.connection_opened(sidecar::kConnectionSideLabels[s].value);
        m.connection_closed(sidecar::kConnectionSideLabels[s].value,
                            sidecar::kCloseReasonLabels[r].value);
      }
    }
    for (size_t n = 0; n < s + 1; ++n) m.connection_opened(sidecar::kConnectionSideLabels[s].value);
  }
  for (size_t r = 0; r < kFailures; ++r) {
    for (size_t n = 0; n < r + 1; ++n)
      m.upstream_connect_failed(sidecar::kConnectFailureLabels[r].value);
  }

  Exposition e = scrape(m);
  for (size_t s = 0; s < kSides; ++s) {
    const std::string side = sidecar::kConnectionSideLabels[s].label;
    EXPECT_EQ(e.value(kOpen, {{"side", side}}), s + 1) << side;
    for (size_t r = 0; r < kReasons; ++r) {
      const std::string reason = sidecar::kCloseReasonLabels[r].label;
      EXPECT_EQ(e.value(kClosed, {{"side", side}, {"reason", reason}}), s * kReasons + r + 1)
          << side << " " << reason;
    }
  }
  for (size_t r = 0; r < kFailures; ++r) {
    const std::string reason = sidecar::kConnectFailureLabels[r].label;
    EXPECT_EQ(e.value(kConnectFailures, {{"reason", reason}}), r + 1) << reason;
  }
  EXPECT_EQ(e.count(kOpen), kSides);
  EXPECT_EQ(e.count(kClosed), kSides * kReasons);
  EXPECT_EQ(e.count(kConnectFailures), kFailures);

  // The close reasons are h2's names for them.
  for (const auto& [reason, label] : sidecar::kCloseReasonLabels) {
    EXPECT_STREQ(label, h2::close_reason_name(reason));
  }
  EXPECT_EQ(sidecar::label_of(sidecar::kCloseReasonLabels, CloseReason::kOpen), nullptr);
  EXPECT_STREQ(sidecar::label_of(sidecar::kConnectFailureLabels, ConnectFailure::kNoSettings),
               "no_settings");
}

TEST(ConnectionMetrics, EverySeriesExistsFromTheStartAtZero) {
  ConnectionMetrics m;
  Exposition e = scrape(m);
  EXPECT_EQ(e.type(kOpen), "gauge");
  EXPECT_EQ(e.type(kClosed), "counter");
  EXPECT_EQ(e.type(kConnectFailures), "counter");
  EXPECT_EQ(e.count(kOpen), kSides);
  EXPECT_EQ(e.count(kClosed), kSides * kReasons);
  EXPECT_EQ(e.count(kConnectFailures), kFailures);
  EXPECT_EQ(e.value(kOpen, {{"side", "caller"}}), 0);
  EXPECT_EQ(e.value(kOpen, {{"side", "upstream"}}), 0);
  EXPECT_EQ(e.value(kClosed, {{"side", "upstream"}, {"reason", "rapid_reset"}}), 0);
  EXPECT_EQ(e.value(kConnectFailures, {{"reason", "tls"}}), 0);
  EXPECT_EQ(e.sum(kClosed), 0);
  EXPECT_EQ(e.sum(kConnectFailures), 0);
}

TEST(ConnectionMetrics, CountsFollowTheReports) {
  ConnectionMetrics m;
  for (int i = 0; i < 3; ++i) m.connection_opened(ConnectionSide::kCaller);
  for (int i = 0; i < 2; ++i) m.connection_opened(ConnectionSide::kUpstream);
  Exposition opened = scrape(m);
  EXPECT_EQ(opened.value(kOpen, {{"side", "caller"}}), 3);
  EXPECT_EQ(opened.value(kOpen, {{"side", "upstream"}}), 2);
  EXPECT_EQ(opened.sum(kClosed), 0);

  m.connection_closed(ConnectionSide::kCaller, CloseReason::kPeerClosed);
  m.connection_closed(ConnectionSide::kCaller, CloseReason::kRapidReset);
  m.connection_closed(ConnectionSide::kUpstream, CloseReason::kGoaway);
  m.upstream_connect_failed(ConnectFailure::kConnect);
  m.upstream_connect_failed(ConnectFailure::kConnect);
  m.upstream_connect_failed(ConnectFailure::kNoSettings);

  Exposition e = scrape(m);
  EXPECT_EQ(e.value(kOpen, {{"side", "caller"}}), 1);
  EXPECT_EQ(e.value(kOpen, {{"side", "upstream"}}), 1);
  EXPECT_EQ(e.value(kClosed, {{"side", "caller"}, {"reason", "peer_closed"}}), 1);
  EXPECT_EQ(e.value(kClosed, {{"side", "caller"}, {"reason", "rapid_reset"}}), 1);
  EXPECT_EQ(e.value(kClosed, {{"side", "upstream"}, {"reason", "goaway"}}), 1);
  EXPECT_EQ(e.sum(kClosed, {{"side", "caller"}}), 2);
  EXPECT_EQ(e.sum(kClosed, {{"side", "upstream"}}), 1);
  EXPECT_EQ(e.value(kConnectFailures, {{"reason", "connect"}}), 2);
  EXPECT_EQ(e.value(kConnectFailures, {{"reason", "no_settings"}}), 1);
  EXPECT_EQ(e.sum(kConnectFailures), 3);

  // Each close reason, on each side, lands in its own series.
  for (const auto& [side, side_label] : sidecar::kConnectionSideLabels) {
    for (const auto& [reason, reason_label] : sidecar::kCloseReasonLabels) {
      const Labels labels{{"side", side_label}, {"reason", reason_label}};
      const double before = scrape(m).counter(kClosed, labels);
      const double sum_before = scrape(m).sum(kClosed);
      m.connection_opened(side);
      m.connection_closed(side, reason);
      Exposition after = scrape(m);
      EXPECT_EQ(after.counter(kClosed, labels), before + 1) << side_label << " " << reason_label;
      EXPECT_EQ(after.sum(kClosed), sum_before + 1) << side_label << " " << reason_label;
    }
  }
  // Each connect failure reason likewise.
  for (const auto& [why, label] : sidecar::kConnectFailureLabels) {
    const double before = scrape(m).counter(kConnectFailures, {{"reason", label}});
    m.upstream_connect_failed(why);
    EXPECT_EQ(scrape(m).counter(kConnectFailures, {{"reason", label}}), before + 1) << label;
  }
  Exposition end = scrape(m);
  EXPECT_EQ(end.value(kOpen, {{"side", "caller"}}), 1) << "every connection opened was closed";
  EXPECT_EQ(end.value(kOpen, {{"side", "upstream"}}), 1);
  EXPECT_EQ(end.sum(kClosed), 3 + kSides * kReasons);
  EXPECT_EQ(end.sum(kConnectFailures), 3 + kFailures);
}

TEST(ConnectionMetrics, EjectionsAreCountedByUpstream) {
  ConnectionMetrics m;
  const std::string name(metrics::family::kUpstreamEndpointEjections.name);
  EXPECT_EQ(scrape(m).sum(name), 0);
  m.endpoint_ejected("pods");
  m.endpoint_ejected("pods");
  m.endpoint_ejected("payments");
  Exposition e = scrape(m);
  EXPECT_EQ(e.value(name, {{"upstream", "pods"}}), 2);
  EXPECT_EQ(e.value(name, {{"upstream", "payments"}}), 1);
  EXPECT_EQ(e.sum(name), 3);
  m.upstream_resolve_failed("pods");
  const std::string failures(metrics::family::kUpstreamResolveFailures.name);
  EXPECT_EQ(scrape(m).value(failures, {{"upstream", "pods"}}), 1);
}

TEST(ConnectionMetrics, ACloseWithoutAReasonLabelOnlyTakesTheConnectionOffTheGauge) {
  // kOpen is not a reason a connection ends with (kCloseReasonLabels has no label for it): should
  // one be reported, the connection still ends, but no closed_total series counts it.
  ConnectionMetrics m;
  m.connection_opened(ConnectionSide::kUpstream);
  m.connection_closed(ConnectionSide::kUpstream, CloseReason::kOpen);
  Exposition e = scrape(m);
  EXPECT_EQ(e.value(kOpen, {{"side", "upstream"}}), 0);
  EXPECT_EQ(e.sum(kClosed), 0);
  EXPECT_EQ(e.count(kClosed), kSides * kReasons);
}

TEST(ConnectionMetrics, ConcurrentReportersAndScrapersAreExact) {
  // 4 loop threads report 10,000 events of each kind at once while a scraper reads: every event
  // is counted, counters never go down and the gauge never goes below 0.
  ConnectionMetrics m;
  constexpr int kThreads = 4;
  constexpr int kEvents = 10'000;
  constexpr int kLeftOpen = 10;  // per thread and side: opened, never closed
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    double last_closed = 0, last_failures = 0;
    while (!done.load()) {
      Exposition e = scrape(m);
      const double closed = e.sum(kClosed);
      const double failures = e.sum(kConnectFailures);
      EXPECT_GE(closed, last_closed);
      EXPECT_GE(failures, last_failures);
      for (const char* side : {"caller", "upstream"}) {
        const double open = *e.value(kOpen, {{"side", side}});
        EXPECT_GE(open, 0) << side;
        EXPECT_LE(open, kThreads * kEvents) << side;
      }
      last_closed = closed;
      last_failures = failures;
      scrapes.fetch_add(1);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Make sure scrapes do run while the reporters report (bounded waits).
      auto wait_for_scrapes = [&](int n) {
        const auto until = std::chrono::steady_clock::now() + 5s;
        while (scrapes.load() < n && std::chrono::steady_clock::now() < until)
          std::this_thread::yield();
      };
      wait_for_scrapes(1);
      for (int i = 0; i < kEvents; ++i) {
        if (i == kEvents / 2) wait_for_scrapes(3);
        const ConnectionSide side = sidecar::kConnectionSideLabels[(i + t) % kSides].value;
        m.connection_opened(side);
        // Each side leaves its first kLeftOpen connections open.
        if (i >= static_cast<int>(kSides) * kLeftOpen) {
          m.connection_closed(side, sidecar::kCloseReasonLabels[i % kReasons].value);
        }
        m.upstream_connect_failed(sidecar::kConnectFailureLabels[i % kFailures].value);
      }
    });
  }
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();
  EXPECT_GE(scrapes.load(), 3);

  Exposition e = scrape(m);
  constexpr int kClosedPerThread = kEvents - static_cast<int>(kSides) * kLeftOpen;
  EXPECT_EQ(e.value(kOpen, {{"side", "caller"}}), kThreads * kLeftOpen);
  EXPECT_EQ(e.value(kOpen, {{"side", "upstream"}}), kThreads * kLeftOpen);
  EXPECT_EQ(e.sum(kClosed), kThreads * kClosedPerThread);
  EXPECT_EQ(e.sum(kConnectFailures), kThreads * kEvents);
  // Per label, what the events above add up to.
  double closed[kSides][kReasons] = {};
  double failures[kFailures] = {};
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEvents; ++i) {
      if (i >= static_cast<int>(kSides) * kLeftOpen) closed[(i + t) % kSides][i % kReasons] += 1;
      failures[i % kFailures] += 1;
    }
  }
  for (size_t s = 0; s < kSides; ++s) {
    for (size_t r = 0; r < kReasons; ++r) {
      const Labels labels{{"side", sidecar::kConnectionSideLabels[s].label},
                          {"reason", sidecar::kCloseReasonLabels[r].label}};
      EXPECT_EQ(e.value(kClosed, labels), closed[s][r])
          << labels.at("side") << " " << labels.at("reason");
    }
  }
  for (size_t r = 0; r < kFailures; ++r) {
    EXPECT_EQ(e.value(kConnectFailures, {{"reason", sidecar::kConnectFailureLabels[r].label}}),
              failures[r]);
  }
}

TEST(ConnectionMetrics, ExpositionIsValidPrometheusText) {
  ConnectionMetrics m;
  m.connection_opened(ConnectionSide::kCaller);
  m.connection_opened(ConnectionSide::kUpstream);
  m.connection_closed(ConnectionSide::kCaller, CloseReason::kFlooded);
  m.upstream_connect_failed(ConnectFailure::kTls);
  const std::string text = expose(m);

  // Our reader parses every line (it throws on one it cannot), and each family has its HELP and
  // TYPE, then its samples.
  Exposition e(text);
  EXPECT_EQ(e.samples().size(), kSides + kSides * kReasons + kFailures);
  for (const metrics::MetricFamilyDecl* f : metrics::kConnectionFamilies) {
    const std::string name(f->name);
    EXPECT_NE(text.find("# HELP " + name + " " + std::string(f->help) + "\n"), std::string::npos)
        << name;
    const char* type = f->type == prometheus::MetricType::Gauge ? "gauge" : "counter";
    EXPECT_NE(text.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name;
  }

  // promtool (Debian's prometheus package) lints it as prometheus_test.cc lints a live scrape.
  const std::string promtool = PROMTOOL;
  if (promtool.empty() || !std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed: only our own reader checked the exposition";
  }
  const auto [exit_code, output] = promtool_check_metrics(promtool, text);
  EXPECT_EQ(exit_code, 0) << output << "\n--- exposition:\n" << text;
  EXPECT_EQ(output, "") << "promtool reports lint problems";
}

}  // namespace
}  // namespace curfew::testing
