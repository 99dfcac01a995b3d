// The real curfew binary's admin endpoints: /healthz, /readyz (503 while draining, /metrics still
// served), reload counters for SIGHUP and file changes, per-call metrics of real calls.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "curfew_admin_process.h"
#include "demo_backend.h"
#include "exposition.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

// Polls `pred` every 20 ms for at most `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::string config_text(int listen_port, int backend_port, const std::string& drain = "5s") {
  return "drain_timeout: " + drain + R"(
admin: {address: 127.0.0.1:0}
listeners:
  - name: inbound
    address: 127.0.0.1:)" +
         std::to_string(listen_port) + R"(
    routes:
      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 10s}
      - {name: rest, match: {prefix: /}, upstream: demo, timeout: 5s}
upstreams:
  - {name: demo, endpoints: [127.0.0.1:)" +
         std::to_string(backend_port) + "]}\n";
}

class Binary : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    port_ = free_port();
    curfew_ = std::make_unique<CurfewWithAdmin>(dir_, config_text(port_, backend_->port()));
    ASSERT_TRUE(curfew_->ok()) << curfew_->process().output();
    ASSERT_TRUE(curfew_->process().wait_listening(port_)) << curfew_->process().output();
    stub_ = demo::Demo::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                    grpc::InsecureChannelCredentials()));
  }

  int status(const std::string& path) { return curfew_->status(path); }
  std::optional<Exposition> scrape() { return curfew_->scrape(); }
  double metric(const std::string& name, const Labels& labels = {}) {
    return curfew_->metric(name, labels);
  }
  std::string output() { return curfew_->process().output(); }

  grpc::Status echo() {
    grpc::ClientContext ctx;
    demo::EchoRequest request;
    demo::EchoReply reply;
    return stub_->Echo(&ctx, request, &reply);
  }

  TempDir dir_;
  std::unique_ptr<DemoBackend> backend_;
  int port_ = 0;
  std::unique_ptr<CurfewWithAdmin> curfew_;
  std::unique_ptr<demo::Demo::Stub> stub_;
};

TEST_F(Binary, HealthReadinessAndMetricsAnswer) {
  EXPECT_EQ(status("/healthz"), 200);
  EXPECT_EQ(status("/readyz"), 200);
  auto e = scrape();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->count("curfew_build_info"), 1u);
  EXPECT_EQ(e->value("curfew_ready"), 1);
  EXPECT_EQ(e->value("curfew_config_reloads_total", {{"result", "ok"}}), 0);
  EXPECT_EQ(e->value("curfew_config_reloads_total", {{"result", "error"}}), 0);
  EXPECT_EQ(e->value("curfew_config_last_reload_successful"), 1);
}

TEST_F(Binary, RealCallsAreCounted) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(echo().ok());
  EXPECT_TRUE(eventually([&] {
    return metric("curfew_requests_total",
                  {{"listener", "inbound"}, {"route", "rest"}, {"grpc_code", "OK"}}) == 4;
  }));
  EXPECT_EQ(metric("curfew_upstream_requests_total",
                   {{"route", "rest"}, {"upstream", "demo"}, {"grpc_code", "OK"}}),
            4);
}

TEST_F(Binary, UpstreamsListsEachEndpointAndTheGaugeCountsIt) {
  // Sets are made by the first call of an upstream: nothing listed before.
  auto before = curfew_->get("/upstreams");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 200);
  EXPECT_EQ(before->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(before->body, "{\"upstreams\": []}\n");
  ASSERT_TRUE(echo().ok());
  auto after = curfew_->get("/upstreams");
  ASSERT_TRUE(after);
  const std::string address = "127.0.0.1:" + std::to_string(backend_->port());
  // The worker that served the call lists it (one of several when the machine has more CPUs).
  EXPECT_NE(after->body.find("{\"upstream\": \"demo\", \"worker\": "), std::string::npos)
      << after->body;
  EXPECT_NE(after->body.find(", \"balancer\": \"peak_ewma\", \"resolve_errors\": [], "
                             "\"endpoints\": ["),
            std::string::npos)
      << after->body;
  EXPECT_NE(after->body.find("{\"address\": \"" + address + "\", \"target\": \"" + address +
                             "\", \"state\": \"healthy\", \"connected\": true, "
                             "\"outstanding\": 0, \"latency_ms\": "),
            std::string::npos)
      << after->body;
  EXPECT_EQ(metric("curfew_upstream_endpoints", {{"upstream", "demo"}, {"state", "healthy"}}), 1);
  EXPECT_EQ(metric("curfew_upstream_endpoints", {{"upstream", "demo"}, {"state", "ejected"}}), 0);
}

TEST_F(Binary, ReloadsAreCountedByResult) {
  curfew_->process().signal(SIGHUP);
  EXPECT_TRUE(eventually([&] {
    return metric("curfew_config_reloads_total", {{"result", "ok"}}) == 1;
  })) << output();
  // A broken file (noticed by the watcher): refused, counted as an error.
  replace_file(curfew_->config_path(), "listeners:\n  - name: inbound\n    adress: oops\n");
  EXPECT_TRUE(eventually([&] {
    return metric("curfew_config_reloads_total", {{"result", "error"}}) == 1;
  })) << output();
  EXPECT_EQ(metric("curfew_config_last_reload_successful"), 0);
  EXPECT_EQ(status("/readyz"), 200) << "the previous configuration keeps serving";
  // Fixed again.
  replace_file(curfew_->config_path(), config_text(port_, backend_->port()));
  EXPECT_TRUE(eventually([&] {
    return metric("curfew_config_reloads_total", {{"result", "ok"}}) == 2;
  })) << output();
  EXPECT_EQ(metric("curfew_config_last_reload_successful"), 1);
  EXPECT_EQ(metric("curfew_config_reloads_total", {{"result", "error"}}), 1);
}

TEST_F(Binary, SigtermMakesReadyzFailWhileMetricsServeThroughTheDrain) {
  auto in_flight = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    demo::SlowRequest request;
    request.set_delay_ms(1500);
    demo::EchoReply reply;
    return stub_->Slow(&ctx, request, &reply);
  });
  ASSERT_TRUE(eventually([&] { return backend_->calls_started() == 1; }));
  curfew_->process().signal(SIGTERM);
  EXPECT_TRUE(eventually([&] { return status("/readyz") == 503; }, 1200ms)) << output();
  EXPECT_EQ(status("/healthz"), 200) << "alive while draining";
  auto e = scrape();
  ASSERT_TRUE(e) << "/metrics must keep answering during the drain";
  EXPECT_EQ(e->value("curfew_ready"), 0);
  EXPECT_EQ(e->value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "slow"}}), 1);
  EXPECT_TRUE(in_flight.get().ok());
  EXPECT_EQ(curfew_->process().wait_exit(), 0) << output();
  EXPECT_EQ(status("/healthz"), -1) << "the admin server stops with the process";
}

// A TCP connection to 127.0.0.1:port that sends `bytes` and is then left alone (-1 on failure).
int connect_and_send(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  if (!bytes.empty()) (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  return fd;
}

// Issue 17: 64 admin connections stalled in their request line and 64 that say nothing (more
// than the admin server holds at once) do not delay /readyz: the kubelet's probe (1 s timeout)
// keeps passing. The earlier server answered after 20 s with 8 such connections.
TEST_F(Binary, StalledAdminConnectionsDoNotDelayReadyz) {
  std::vector<int> hostile;
  for (int i = 0; i < 64; ++i) {
    hostile.push_back(
        connect_and_send(curfew_->admin_port(), "GET /readyz HTTP/1.1\r\nHost: x\r\n"));
    hostile.push_back(connect_and_send(curfew_->admin_port(), ""));
  }
  for (int fd : hostile) EXPECT_GE(fd, 0);
  auto slowest = std::chrono::steady_clock::duration::zero();
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(status("/readyz"), 200);
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
    std::this_thread::sleep_for(20ms);
  }
  const auto slowest_ms = std::chrono::duration_cast<std::chrono::milliseconds>(slowest);
  std::printf(
      "[ admin ] curfew binary, 128 stalled admin connections: slowest of 20 /readyz "
      "%lld ms\n",
      static_cast<long long>(slowest_ms.count()));
  EXPECT_LT(slowest_ms, 1000ms);
  EXPECT_EQ(status("/healthz"), 200);
  for (int fd : hostile) {
    if (fd >= 0) close(fd);
  }
}

// admin.address "*:PORT" (what the Helm chart writes) answers on IPv4 and, where the platform has
// it, IPv6.
TEST(BinaryStart, AdminOnStarAnswersOnIPv4AndIPv6) {
  TempDir dir;
  CurfewWithAdmin curfew(dir, R"(admin: {address: "*:0"}
listeners:
  - name: inbound
    address: 127.0.0.1:0
    routes:
      - {name: all, match: {prefix: /}, upstream: demo}
upstreams:
  - {name: demo, endpoints: [127.0.0.1:1]}
)");
  ASSERT_TRUE(curfew.ok()) << curfew.process().output();
  EXPECT_EQ(curfew.status("/readyz"), 200);
  const int v6 = socket(AF_INET6, SOCK_STREAM, 0);
  if (v6 < 0) GTEST_SKIP() << "no IPv6 here";
  close(v6);
  httplib::Client client("::1", curfew.admin_port());
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  auto res = client.Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

TEST(BinaryStart, AdminAddressInUseFailsTheStart) {
  TempDir dir;
  // A port some other process listens on (plain socket, no SO_REUSEPORT).
  const int blocker = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(blocker, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(blocker, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(blocker, reinterpret_cast<sockaddr*>(&addr), &len);
  const int taken = ntohs(addr.sin_port);
  const auto config = dir.path() / "curfew.yaml";
  write_file(config, "admin: {address: 127.0.0.1:" + std::to_string(taken) + R"(}
listeners:
  - name: inbound
    address: 127.0.0.1:0
    routes:
      - {name: all, match: {prefix: /}, upstream: demo}
upstreams:
  - {name: demo, endpoints: [127.0.0.1:1]}
)");
  CurfewProcess curfew({"--config", config.string()}, dir.path() / "curfew.log");
  EXPECT_EQ(curfew.wait_exit(), 1) << curfew.output();
  EXPECT_NE(curfew.output().find("admin: cannot listen on 127.0.0.1:" + std::to_string(taken)),
            std::string::npos)
      << curfew.output();
  close(blocker);
}

}  // namespace
}  // namespace curfew::testing
