// curfew's nghttp2 data path to an upstream named by DNS, end to end: a grpc++ caller, curfew
// (in-process, data_path: nghttp2, one worker) whose upstream endpoint is
// "dns://127.0.0.1:<dnsmasq port>/backend.test:<port>", dnsmasq (tests/dns/dnsmasq.h) answering
// backend.test -> 127.0.0.1, and the demo backend on 127.0.0.1. Calls reach the backend through
// the name; a name the server does not know, or a server that no longer answers, fails the call
// UNAVAILABLE in time, saying why, while the routes to other upstreams keep serving.
//
// Timing: only generous bounds (a timeout + a few seconds); every wait is bounded.
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "dnsmasq.h"
#include "sidecar/connection_report.h"
#include "sidecar/sidecar.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;
using ::testing::HasSubstr;

// What the sidecar reported of its connections (called on its loop thread).
class RecordingConnections final : public sidecar::ConnectionObserver {
 public:
  void connection_opened(sidecar::ConnectionSide side) override {
    if (side == sidecar::ConnectionSide::kUpstream) ++upstream_opened;
  }
  void connection_closed(sidecar::ConnectionSide /*side*/, h2::CloseReason /*reason*/) override {}
  void upstream_connect_failed(sidecar::ConnectFailure why) override {
    ++failures_[static_cast<size_t>(why)];
  }
  int failures(sidecar::ConnectFailure why) const {
    return failures_[static_cast<size_t>(why)].load();
  }
  int all_failures() const {
    int n = 0;
    for (const auto& f : failures_) n += f.load();
    return n;
  }

  std::atomic<int> upstream_opened{0};

 private:
  std::array<std::atomic<int>, std::size(sidecar::kConnectFailureLabels)> failures_{};
};

// The route of Demo/Echo goes to the upstream `by_name` (`named_endpoint`), every other method
// to `direct` (the backend's address). The route's deadline is 2 s whatever the caller asks for
// (max_timeout), and connecting, resolving included, may take 1 s.
constexpr auto kRouteTimeout = 2s;

std::string config_yaml(const std::string& named_endpoint, int backend_port) {
  return R"(
data_path: nghttp2
listeners:
  - name: inbound
    address: 127.0.0.1:0
    routes:
      - {name: by_name, match: {method: /curfew.demo.Demo/Echo}, upstream: by_name, timeout: 2s, max_timeout: 2s}
      - {name: direct, match: {prefix: /}, upstream: direct, timeout: 2s, max_timeout: 2s}
upstreams:
  - {name: by_name, endpoints: [")" +
         named_endpoint + R"("], connect_timeout: 1s}
  - {name: direct, endpoints: ["127.0.0.1:)" +
         std::to_string(backend_port) + "\"]}\n";
}

std::unique_ptr<sidecar::Sidecar> start_curfew(const std::string& yaml,
                                               sidecar::ConnectionObserver* observer) {
  auto config = config::load_config_string(yaml, "dns.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  config->worker_threads = 1;
  auto started = sidecar::Sidecar::start(*std::move(config), nullptr, observer);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? std::move(*started) : nullptr;
}

std::unique_ptr<Demo::Stub> stub_to(int port) {
  return Demo::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

// Demo/Echo: the route to the upstream named by DNS. The caller's own deadline (20 s) only
// bounds the test: the route caps it at kRouteTimeout.
grpc::Status echo(Demo::Stub& stub, const std::string& message, std::string* reply = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  demo::EchoRequest request;
  request.set_message(message);
  demo::EchoReply response;
  grpc::Status status = stub.Echo(&ctx, request, &response);
  if (reply != nullptr) *reply = response.message();
  return status;
}

// Demo/Slow with no delay: the route to the upstream at the backend's address.
grpc::Status direct(Demo::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  demo::SlowRequest request;
  request.set_delay_ms(0);
  request.set_message("direct");
  demo::EchoReply response;
  return stub.Slow(&ctx, request, &response);
}

std::string describe(const grpc::Status& status) {
  return std::to_string(status.error_code()) + " " + status.error_message();
}

class SidecarDns : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    dnsmasq_.emplace("127.0.0.1 backend.test\n");
    ASSERT_TRUE(dnsmasq_->ready()) << "dnsmasq did not answer:\n" << dnsmasq_->log();
  }
  void TearDown() override {
    if (HasFailure() && dnsmasq_) std::cerr << "dnsmasq's log:\n" << dnsmasq_->log();
    sidecar_.reset();  // before the observer and the backend
  }

  // "dns://127.0.0.1:<dnsmasq port>/<host>:<backend port>"
  std::string named(const std::string& host) const {
    return "dns://" + dnsmasq_->server() + "/" + host + ":" + std::to_string(backend_->port());
  }

  void start(const std::string& named_endpoint) {
    sidecar_ = start_curfew(config_yaml(named_endpoint, backend_->port()), &connections_);
    ASSERT_NE(sidecar_, nullptr);
    stub_ = stub_to(sidecar_->port("inbound"));
  }

  std::unique_ptr<DemoBackend> backend_;
  std::optional<Dnsmasq> dnsmasq_;
  RecordingConnections connections_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::unique_ptr<Demo::Stub> stub_;
};

TEST_F(SidecarDns, CallsReachTheUpstreamThroughItsDnsName) {
  ASSERT_NO_FATAL_FAILURE(start(named("backend.test")));
  for (int i = 0; i < 5; ++i) {  // over one pooled connection
    std::string reply;
    const grpc::Status status = echo(*stub_, "hello " + std::to_string(i), &reply);
    EXPECT_TRUE(status.ok()) << describe(status);
    EXPECT_EQ(reply, "hello " + std::to_string(i));
  }
  EXPECT_EQ(backend_->calls_started(), 5);
  // The name was asked of dnsmasq (the test's server, not the machine's resolver), and one
  // connection to the address it gave served every call.
  EXPECT_THAT(dnsmasq_->log(), HasSubstr("backend.test from 127.0.0.1"));
  EXPECT_EQ(connections_.upstream_opened.load(), 1);
  EXPECT_EQ(connections_.all_failures(), 0);
}

TEST_F(SidecarDns, AnUnknownNameFailsTheCallUnavailableNamingTheNameAndTheServer) {
  ASSERT_NO_FATAL_FAILURE(start(named("nothere.test")));
  const grpc::Status status = echo(*stub_, "hello");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << describe(status);
  // The resolver's own words (dns/resolver.h): the name, the server asked, and why.
  EXPECT_THAT(status.error_message(),
              HasSubstr("resolving 'nothere.test' via " + dnsmasq_->server() + ":"));
  EXPECT_THAT(status.error_message(), HasSubstr("Domain name not found"));
  EXPECT_GE(connections_.failures(sidecar::ConnectFailure::kResolve), 1);
  EXPECT_EQ(connections_.all_failures(), connections_.failures(sidecar::ConnectFailure::kResolve));
  EXPECT_EQ(connections_.upstream_opened.load(), 0);
  EXPECT_EQ(backend_->calls_started(), 0);
}

TEST_F(SidecarDns, AStoppedDnsServerFailsTheCallUnavailableInTimeWhileOtherRoutesServe) {
  const std::string endpoint = named("backend.test");
  const std::string server = dnsmasq_->server();
  dnsmasq_.reset();  // killed and reaped: its port no longer answers
  ASSERT_NO_FATAL_FAILURE(start(endpoint));

  // The call through the name, on a thread of its own; meanwhile (and at least once) calls on
  // the route to the backend's address, over the same connection to curfew, succeed.
  std::atomic<bool> named_done{false};
  grpc::Status named_status;
  std::chrono::steady_clock::duration named_took{};
  std::thread named_call([&] {
    const auto begin = std::chrono::steady_clock::now();
    named_status = echo(*stub_, "hello");
    named_took = std::chrono::steady_clock::now() - begin;
    named_done = true;
  });
  int direct_calls = 0;
  const auto until = std::chrono::steady_clock::now() + kRouteTimeout + 5s;  // bounded
  do {
    const grpc::Status status = direct(*stub_);
    EXPECT_TRUE(status.ok()) << describe(status);
    ++direct_calls;
    std::this_thread::sleep_for(5ms);
  } while (!named_done.load() && std::chrono::steady_clock::now() < until);
  named_call.join();

  EXPECT_EQ(named_status.error_code(), grpc::StatusCode::UNAVAILABLE) << describe(named_status);
  EXPECT_THAT(named_status.error_message(), HasSubstr("resolving 'backend.test' via " + server));
  EXPECT_LT(named_took, kRouteTimeout + 3s)
      << std::chrono::duration_cast<std::chrono::milliseconds>(named_took).count() << " ms";
  EXPECT_GE(connections_.failures(sidecar::ConnectFailure::kResolve), 1);

  // Still serving, both routes: the other one succeeds, the named one fails again the same way.
  const grpc::Status after = direct(*stub_);
  EXPECT_TRUE(after.ok()) << describe(after);
  const grpc::Status again = echo(*stub_, "again");
  EXPECT_EQ(again.error_code(), grpc::StatusCode::UNAVAILABLE) << describe(again);
  EXPECT_EQ(backend_->calls_started(), direct_calls + 1) << "only the direct calls reached it";
}

}  // namespace
}  // namespace curfew::testing
