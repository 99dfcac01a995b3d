// Exact connection accounting on the nghttp2 data path: a real curfew (in-process Sidecar, one
// worker) reporting to a real metrics::ConnectionMetrics, in front of the demo backend, with
// grpc++ callers and a hand-written HTTP/2 attacker (tests/h2/raw_frames.h). Every value is read
// from the metrics' exposition: a caller's connection is counted open while it lives and closed,
// with why, once it ends; the pooled upstream connection stays open; a rapid-reset attacker's
// connection is closed as such; a connect to a port nobody listens on is a connect failure; and
// once the Sidecar is gone, every connection it opened has been closed.
//
// "Opened" is not a family of its own: it is the gauge plus every close (each opened connection
// is closed exactly once, under a reason of kCloseReasonLabels).
//
// Timing: bounded polls only (every 5 ms, at most a few seconds); 127.0.0.1 only.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "exposition.h"
#include "metrics/connection_metrics.h"
#include "raw_frames.h"
#include "sidecar/connection_report.h"
#include "sidecar/sidecar.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using demo::Demo;

constexpr char kOpen[] = "curfew_connections";
constexpr char kClosed[] = "curfew_connections_closed_total";
constexpr char kConnectFailures[] = "curfew_upstream_connect_failures_total";

// A grpc++ channel with a subchannel (so a TCP connection) of its own: destroying it closes
// that connection, whatever other channels of the process do.
std::shared_ptr<grpc::Channel> own_channel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

grpc::Status echo(Demo::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  demo::EchoRequest request;
  request.set_message("hi");
  demo::EchoReply reply;
  return stub.Echo(&ctx, request, &reply);
}

// A unary call on `path` (any method: the generic stub sends whatever bytes it is given).
grpc::Status generic_call(const std::shared_ptr<grpc::Channel>& channel, const std::string& path) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::CompletionQueue cq;
  grpc::Slice slice{std::string()};  // an empty message
  auto call = stub.PrepareUnaryCall(&ctx, path, grpc::ByteBuffer(&slice, 1), &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  return status;
}

std::string describe(const grpc::Status& status) {
  return std::to_string(status.error_code()) + " " + status.error_message();
}

// What a rapid-reset attacker saw (tests/h2/rapid_reset_test.cc's attack, against curfew).
struct AttackOutcome {
  long goaway = -1;  // the GOAWAY error code received, or -1
  bool closed = false;
};

// Opens 5000 streams on one connection, resetting each at once (HEADERS, RST_STREAM CANCEL),
// then reads until curfew closes the connection (bounded: 5 s without bytes).
AttackOutcome rapid_reset_attack(int port) {
  using curfew_test::frame;
  const int fd = curfew_test::connect_to(port);
  std::string out = curfew_test::kClientPreface + frame(0x4, 0, 0, "");  // SETTINGS
  const std::string block = curfew_test::request_block();
  constexpr int kStreams = 5000;
  for (int i = 0; i < kStreams; ++i) {
    const uint32_t id = 1 + 2 * static_cast<uint32_t>(i);
    out += frame(0x1, 0x4 /*END_HEADERS*/, id, block);
    out += frame(0x3, 0, id, std::string("\0\0\0\x8", 4));  // RST_STREAM CANCEL
  }
  // curfew may close while this still writes: a failed send is part of the outcome.
  for (size_t off = 0; off < out.size();) {
    const ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  AttackOutcome outcome;
  outcome.goaway = curfew_test::read_until_close(fd, &outcome.closed);
  ::close(fd);
  return outcome;
}

// A TCP port of 127.0.0.1 nobody listens on, for as long as this lives: bound, never listening,
// so a connect to it is refused and no one else can take it meanwhile.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port_ = ntohs(addr.sin_port);
  }
  ~RefusingPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// Calls of service nowhere.Nowhere go to the upstream `nowhere` (`nowhere_port`, nobody
// listening there unless a test says otherwise); every other call to the demo backend.
std::string config_yaml(int backend_port, int nowhere_port) {
  return R"(
data_path: nghttp2
drain_timeout: 2s
listeners:
  - name: inbound
    address: 127.0.0.1:0
    default_timeout: 10s
    routes:
      - {name: nowhere, match: {service: nowhere.Nowhere}, upstream: nowhere}
      - {name: demo, match: {prefix: /}, upstream: demo}
upstreams:
  - {name: demo, endpoints: ["127.0.0.1:)" +
         std::to_string(backend_port) + R"("]}
  - {name: nowhere, endpoints: ["127.0.0.1:)" +
         std::to_string(nowhere_port) + R"("], connect_timeout: 1s}
)";
}

class ConnectionAccounting : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    ASSERT_NE(nowhere_.port(), 0);
    auto config = config::load_config_string(config_yaml(backend_->port(), nowhere_.port()),
                                             "connections.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    config->worker_threads = 1;  // one loop: one pooled connection per upstream endpoint
    auto started = sidecar::Sidecar::start(*std::move(config), nullptr, &metrics_);
    ASSERT_TRUE(started.ok()) << started.status();
    sidecar_ = std::move(*started);
    port_ = sidecar_->port("inbound");
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "connection metrics:\n" << expose(metrics_);
    sidecar_.reset();  // before the metrics it reports to
  }

  Exposition scrape() const { return Exposition(expose(metrics_)); }
  // curfew_connections{side}
  double open(const std::string& side) const {
    return scrape().value(kOpen, {{"side", side}}).value_or(-1);
  }
  // curfew_connections_closed_total{side, reason}
  double closed(const std::string& side, const std::string& reason) const {
    return scrape().counter(kClosed, {{"side", side}, {"reason", reason}});
  }
  // Every close of `side`, whatever the reason.
  double closed(const std::string& side) const { return scrape().sum(kClosed, {{"side", side}}); }
  // Connections of `side` opened so far: those open and those closed.
  double opened(const std::string& side) const {
    const Exposition e = scrape();
    return e.value(kOpen, {{"side", side}}).value_or(-1) + e.sum(kClosed, {{"side", side}});
  }
  double connect_failures(const std::string& reason) const {
    return scrape().counter(kConnectFailures, {{"reason", reason}});
  }

  RefusingPort nowhere_;
  std::unique_ptr<DemoBackend> backend_;
  metrics::ConnectionMetrics metrics_;  // outlives the Sidecar
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  int port_ = 0;
};

TEST_F(ConnectionAccounting, ACallersConnectionIsCountedUntilItClosesAndThePooledUpstreamStays) {
  {
    std::shared_ptr<grpc::Channel> channel = own_channel(port_);
    auto stub = Demo::NewStub(channel);
    for (int i = 0; i < 3; ++i) {
      const grpc::Status status = echo(*stub);
      EXPECT_TRUE(status.ok()) << describe(status);
    }
    EXPECT_EQ(open("caller"), 1);
    EXPECT_EQ(open("upstream"), 1);
  }  // the caller's channel, and with it its connection, is gone

  EXPECT_TRUE(eventually([&] { return open("caller") == 0; }, 5s)) << open("caller");
  EXPECT_EQ(opened("caller"), 1);
  EXPECT_EQ(closed("caller", "peer_closed"), 1);
  EXPECT_EQ(closed("caller"), 1) << "closed under peer_closed only";
  // The upstream connection is curfew's, pooled: it stays open for the next caller.
  EXPECT_EQ(open("upstream"), 1);
  EXPECT_EQ(closed("upstream"), 0);
  EXPECT_EQ(scrape().sum(kConnectFailures), 0);
  EXPECT_EQ(backend_->calls_started(), 3);
}

TEST_F(ConnectionAccounting, ARapidResetAttackersConnectionIsClosedAsSuchWhileACallerIsServed) {
  // A legitimate caller, connected before the attack and calling throughout it.
  std::shared_ptr<grpc::Channel> channel = own_channel(port_);
  auto stub = Demo::NewStub(channel);
  const grpc::Status first = echo(*stub);
  ASSERT_TRUE(first.ok()) << describe(first);

  std::atomic<bool> attacking{true};
  std::atomic<int> calls{0}, failed{0};
  std::thread caller([&] {
    const auto until = std::chrono::steady_clock::now() + 30s;  // bounded
    while (attacking.load() && std::chrono::steady_clock::now() < until) {
      const grpc::Status status = echo(*stub);
      ++calls;
      if (!status.ok() && ++failed <= 3) ADD_FAILURE() << "call failed: " << describe(status);
    }
  });
  // The attack begins once the caller's calls are under way.
  EXPECT_TRUE(eventually([&] { return calls.load() >= 1; }, 5s));
  const AttackOutcome attack = rapid_reset_attack(port_);
  const int calls_when_attack_ended = calls.load();
  attacking = false;
  caller.join();

  EXPECT_EQ(attack.goaway, 0xb) << "GOAWAY ENHANCE_YOUR_CALM expected";
  EXPECT_TRUE(attack.closed);
  EXPECT_TRUE(eventually([&] { return closed("caller", "rapid_reset") == 1; }, 5s))
      << closed("caller", "rapid_reset");
  EXPECT_EQ(closed("caller"), 1) << "only the attacker's connection was closed";

  // The caller's connection was never cut off: it still serves, and is the one caller left.
  const grpc::Status after = echo(*stub);
  EXPECT_TRUE(after.ok()) << describe(after);
  EXPECT_EQ(failed.load(), 0) << "of " << calls.load() << " calls during the attack";
  EXPECT_GE(calls_when_attack_ended, 1);
  EXPECT_EQ(open("caller"), 1);
  EXPECT_EQ(opened("caller"), 2);
}

TEST_F(ConnectionAccounting, AnUpstreamNobodyListensOnIsAConnectFailure) {
  const grpc::Status status = generic_call(own_channel(port_), "/nowhere.Nowhere/Call");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << describe(status);
  EXPECT_NE(status.error_message().find(std::to_string(nowhere_.port())), std::string::npos)
      << status.error_message();
  EXPECT_GE(connect_failures("connect"), 1);
  EXPECT_EQ(scrape().sum(kConnectFailures), connect_failures("connect")) << "connect only";
  EXPECT_EQ(opened("upstream"), 0) << "no connection was made";
}

TEST_F(ConnectionAccounting, AfterTheSidecarIsGoneEveryConnectionItOpenedIsClosed) {
  // One caller came and went; two stay connected, one of them with a call in flight; one pooled
  // upstream connection, carrying that call.
  {
    auto gone = Demo::NewStub(own_channel(port_));
    const grpc::Status status = echo(*gone);
    EXPECT_TRUE(status.ok()) << describe(status);
  }
  EXPECT_TRUE(eventually([&] { return closed("caller") == 1; }, 5s));
  std::shared_ptr<grpc::Channel> idle = own_channel(port_);
  std::shared_ptr<grpc::Channel> busy = own_channel(port_);
  auto idle_stub = Demo::NewStub(idle);
  auto busy_stub = Demo::NewStub(busy);
  const grpc::Status idle_status = echo(*idle_stub);
  EXPECT_TRUE(idle_status.ok()) << describe(idle_status);
  const int calls_before = backend_->calls_started();
  grpc::Status slow_status;
  std::thread slow([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    demo::SlowRequest request;
    request.set_delay_ms(10'000);
    demo::EchoReply reply;
    slow_status = busy_stub->Slow(&ctx, request, &reply);
  });
  EXPECT_TRUE(eventually([&] { return backend_->calls_started() == calls_before + 1; }, 5s));

  const double callers = opened("caller");
  const double upstreams = opened("upstream");
  EXPECT_EQ(callers, 3);
  EXPECT_EQ(open("caller"), 2);
  EXPECT_EQ(upstreams, 1);
  EXPECT_EQ(open("upstream"), 1);

  sidecar_.reset();  // no polling below: the Sidecar reported every close before it was gone
  slow.join();
  EXPECT_FALSE(slow_status.ok()) << "the call in flight ended with curfew";

  const Exposition e = scrape();
  EXPECT_EQ(e.value(kOpen, {{"side", "caller"}}), 0);
  EXPECT_EQ(e.value(kOpen, {{"side", "upstream"}}), 0);
  EXPECT_EQ(e.sum(kClosed, {{"side", "caller"}}), callers) << "every caller connection closed";
  EXPECT_EQ(e.sum(kClosed, {{"side", "upstream"}}), upstreams) << "every upstream one too";
  EXPECT_EQ(e.sum(kConnectFailures), 0);
}

}  // namespace
}  // namespace curfew::testing
