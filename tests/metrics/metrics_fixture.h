// Test fixture: an in-process curfew (Sidecar) reporting to CallMetrics, served by an AdminServer
// on 127.0.0.1:0, in front of real backends; scrapes go over HTTP like Prometheus'.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "exposition.h"
#include "metrics/admin_server.h"
#include "metrics/call_metrics.h"
#include "metrics/server_metrics.h"
#include "sidecar_fixture.h"

namespace curfew::testing {

class MetricsFixture : public ::testing::Test {
 protected:
  // Starts curfew on `yaml` with metrics and the admin server.
  void start(const std::string& yaml) {
    sidecar_ = start_sidecar(yaml, &calls_);
    ASSERT_NE(sidecar_, nullptr);
    server_.set_readiness([this] { return sidecar_ && sidecar_->ready(); });
    auto admin = metrics::AdminServer::start(
        {.address = "127.0.0.1:0", .collectables = {&server_, &calls_}, .ready = [this] {
           return sidecar_ && sidecar_->ready();
         }});
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = std::move(*admin);
  }

  void TearDown() override {
    admin_.reset();  // before the sidecar it asks about
    sidecar_.reset();
  }

  // GET /metrics over HTTP, parsed. Fails the test if the request fails.
  Exposition scrape() {
    httplib::Client c("127.0.0.1", admin_->port());
    c.set_read_timeout(5);
    auto res = c.Get("/metrics");
    EXPECT_TRUE(res && res->status == 200);
    return Exposition(res ? res->body : "");
  }

  int http_status(const std::string& path) {
    httplib::Client c("127.0.0.1", admin_->port());
    c.set_read_timeout(5);
    auto res = c.Get(path);
    return res ? res->status : -1;
  }

  // Waits (bounded) until every call made has been reported: a report is delivered when the
  // call's task ends, a moment after the caller has its status.
  bool all_reported(double calls, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return eventually([&] { return scrape().sum("curfew_requests_total") >= calls; }, limit);
  }

  metrics::ServerMetrics server_{"test"};
  metrics::CallMetrics calls_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::unique_ptr<metrics::AdminServer> admin_;
};

}  // namespace curfew::testing
