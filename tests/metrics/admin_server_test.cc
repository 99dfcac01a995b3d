// The admin HTTP server: /metrics, /healthz, /readyz on 127.0.0.1 (port 0 picks a free port).
#include "metrics/admin_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>

#include <gtest/gtest.h>

#include "exposition.h"
#include "metrics/call_metrics.h"
#include "metrics/metric_families.h"
#include "metrics/server_metrics.h"

namespace curfew::testing {
namespace {

using metrics::AdminServer;

std::unique_ptr<AdminServer> start_admin(AdminServer::Options options) {
  auto admin = AdminServer::start(std::move(options));
  EXPECT_TRUE(admin.ok()) << admin.status();
  return admin.ok() ? std::move(*admin) : nullptr;
}

httplib::Client client(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5);
  c.set_read_timeout(5);
  return c;
}

TEST(AdminServer, PortZeroPicksAFreePortAndHealthzAnswers) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  EXPECT_GT(admin->port(), 0);
  auto c = client(admin->port());
  auto res = c.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST(AdminServer, ReadyzFollowsTheReadinessFunction) {
  std::atomic<bool> ready{false};
  auto admin = start_admin({.address = "127.0.0.1:0", .ready = [&] { return ready.load(); }});
  ASSERT_NE(admin, nullptr);
  auto c = client(admin->port());
  auto not_ready = c.Get("/readyz");
  ASSERT_TRUE(not_ready);
  EXPECT_EQ(not_ready->status, 503);
  ready = true;
  auto is_ready = c.Get("/readyz");
  ASSERT_TRUE(is_ready);
  EXPECT_EQ(is_ready->status, 200);
  ready = false;
  auto again = c.Get("/readyz");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 503);
  // Liveness does not depend on readiness.
  auto alive = c.Get("/healthz");
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->status, 200);
}

TEST(AdminServer, NoReadinessFunctionMeansNotReady) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  auto res = client(admin->port()).Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
}

TEST(AdminServer, MetricsServesEveryCollectableInTextFormat) {
  metrics::ServerMetrics server("1.2.3");
  metrics::CallMetrics calls;
  const std::string listener = "inbound", route = "r";
  calls.call_started(listener, &route);
  server.set_readiness([] { return true; });
  server.reload_succeeded();
  server.reload_failed();
  server.reload_failed();
  auto admin = start_admin({.address = "127.0.0.1:0", .collectables = {&server, &calls}});
  ASSERT_NE(admin, nullptr);

  auto res = client(admin->port()).Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res->body.substr(0, 7), "# HELP ");
  Exposition e(res->body);
  EXPECT_EQ(e.value("curfew_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_EQ(e.value("curfew_config_reloads_total", {{"result", "ok"}}), 1);
  EXPECT_EQ(e.value("curfew_config_reloads_total", {{"result", "error"}}), 2);
  EXPECT_EQ(e.value("curfew_config_last_reload_successful"), 0);
  EXPECT_EQ(e.value("curfew_ready"), 1);
  EXPECT_GT(*e.value("process_start_time_seconds"), 1.6e9);
  EXPECT_EQ(e.value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "r"}}), 1);
  EXPECT_EQ(e.type("curfew_config_reloads_total"), "counter");
  EXPECT_EQ(e.type("curfew_request_duration_seconds"), "histogram");
  EXPECT_EQ(res->body, admin->scrape());
}

TEST(AdminServer, ReloadsAreCountedFromZeroAndTheLastResultIsKept) {
  metrics::ServerMetrics server("x");
  Exposition fresh(expose(server));
  EXPECT_EQ(fresh.value("curfew_config_reloads_total", {{"result", "ok"}}), 0);
  EXPECT_EQ(fresh.value("curfew_config_reloads_total", {{"result", "error"}}), 0);
  EXPECT_EQ(fresh.value("curfew_config_last_reload_successful"), 1) << "the start config applied";
  EXPECT_EQ(fresh.value("curfew_ready"), 0) << "no readiness function yet";
  server.reload_failed();
  server.reload_succeeded();
  Exposition after(expose(server));
  EXPECT_EQ(after.value("curfew_config_last_reload_successful"), 1);
  EXPECT_GE(*after.value("curfew_config_last_reload_success_timestamp_seconds"),
            *fresh.value("curfew_config_last_reload_success_timestamp_seconds"));
}

TEST(ServerMetrics, FamiliesAreTheDeclaredOnes) {
  // ServerMetrics exposes exactly the families of kServerFamilies (metrics/metric_families.h),
  // with the declared help, type and label names.
  metrics::ServerMetrics server("x");
  const auto families = server.Collect();
  ASSERT_EQ(families.size(), std::size(metrics::kServerFamilies));
  for (size_t i = 0; i < families.size(); ++i) {
    const metrics::MetricFamilyDecl& declared = *metrics::kServerFamilies[i];
    const prometheus::MetricFamily& f = families[i];
    EXPECT_EQ(f.name, declared.name);
    EXPECT_EQ(f.help, declared.help) << f.name;
    EXPECT_EQ(f.type, declared.type) << f.name;
    ASSERT_FALSE(f.metric.empty()) << f.name;
    for (const auto& series : f.metric) {
      ASSERT_EQ(series.label.size(), declared.labels.size()) << f.name;
      for (size_t l = 0; l < series.label.size(); ++l) {
        EXPECT_EQ(series.label[l].name, declared.labels[l]) << f.name;
      }
    }
  }
}

TEST(AdminServer, UnknownPathIs404) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  auto res = client(admin->port()).Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(AdminServer, AddressInUseIsAnError) {
  auto first = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(first, nullptr);
  auto second = AdminServer::start({.address = "127.0.0.1:" + std::to_string(first->port())});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen"), std::string::npos) << second.status();
}

TEST(AdminServer, BadAddressIsAnError) {
  for (const char* address :
       {"127.0.0.1", "127.0.0.1:http", ":9901", "127.0.0.1:70000", "::1:9901"}) {
    auto admin = AdminServer::start({.address = address});
    EXPECT_FALSE(admin.ok()) << address;
  }
}

TEST(AdminServer, SplitsAddresses) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(metrics::split_admin_address("[::1]:9901", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 9901);
  ASSERT_TRUE(metrics::split_admin_address("*:0", host, port));
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(metrics::split_admin_address("localhost:80", host, port));
  EXPECT_EQ(host, "localhost");
}

TEST(AdminServer, StopIsIdempotentAndClosesThePort) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  const int port = admin->port();
  {
    auto c = client(port);  // a keep-alive connection left open must not hold stop() up for long
    ASSERT_TRUE(c.Get("/healthz"));
    const auto start = std::chrono::steady_clock::now();
    admin->stop();
    admin->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  }
  auto c = client(port);
  c.set_connection_timeout(1);
  EXPECT_FALSE(c.Get("/healthz"));
}

TEST(AdminServer, ManyScrapesInParallel) {
  metrics::CallMetrics calls;
  auto admin = start_admin({.address = "127.0.0.1:0", .collectables = {&calls}});
  ASSERT_NE(admin, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      auto c = client(admin->port());
      for (int i = 0; i < 20; ++i) {
        if (auto res = c.Get("/metrics"); res && res->status == 200) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 120);
}

}  // namespace
}  // namespace curfew::testing
