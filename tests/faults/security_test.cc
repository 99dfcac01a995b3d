// curfew is never an open proxy: nothing a caller sends (:authority, Host, forwarding headers,
// the method path, absolute-form request targets, CONNECT) makes it dial anything but the
// upstreams of its configuration. The admin server is a separate listener that does not proxy,
// and the proxy listener does not serve the admin endpoints. Nothing secret reaches the log.
//
// The "decoy" is a TCP listener on 127.0.0.1 that counts connections: if curfew ever dialled it,
// the count would show it, whatever protocol curfew tried to speak.
#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "demo_backend.h"
#include "fault_fixture.h"
#include "fault_peers.h"
#include "generic_call.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

std::string proxy_config(int backend_port, const std::string& routes) {
  return "listeners:\n"
         "  - name: inbound\n"
         "    address: 127.0.0.1:0\n"
         "    default_timeout: 2s\n"
         "    routes:\n" +
         routes +
         "upstreams:\n"
         "  - {name: app, endpoints: [127.0.0.1:" +
         std::to_string(backend_port) + "]}\n";
}

class OpenProxy : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
  }
  void start(const std::string& routes) {
    sidecar_ = start_sidecar(proxy_config(backend_->port(), routes));
    ASSERT_NE(sidecar_, nullptr);
    channel_ = channel_to(sidecar_->port("inbound"));
  }
  std::string decoy_address() const { return "127.0.0.1:" + std::to_string(decoy_.port()); }

  FaultyUpstream decoy_{FaultyUpstream::Mode::kSilent};
  std::unique_ptr<DemoBackend> backend_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(OpenProxy, NothingTheCallerSendsChoosesWhereCurfewConnects) {
  start("      - {name: all, match: {prefix: /}, upstream: app}\n");
  grpc::GenericStub stub(channel_);
  const std::string decoy = decoy_address();
  const std::vector<std::function<void(grpc::ClientContext&)>> tricks = {
      [&](grpc::ClientContext& c) { c.set_authority(decoy); },
      [&](grpc::ClientContext& c) { c.AddMetadata("host", decoy); },
      [&](grpc::ClientContext& c) { c.AddMetadata("x-forwarded-host", decoy); },
      [&](grpc::ClientContext& c) { c.AddMetadata("x-envoy-original-dst-host", decoy); },
      [&](grpc::ClientContext& c) { c.AddMetadata("x-upstream", decoy); },
      [&](grpc::ClientContext& c) { c.AddMetadata("grpc-target", decoy); },
      [&](grpc::ClientContext& c) { c.AddMetadata("forwarded", "host=" + decoy); },
  };
  int calls = 0;
  for (const auto& trick : tricks) {
    grpc::Status s = generic_call(stub, "/curfew.demo.Demo/Echo", trick);
    EXPECT_TRUE(s.ok()) << s.error_message();  // served by the configured upstream
    ++calls;
  }
  // Method paths naming another host go to the configured upstream too (which does not know them).
  for (const std::string& path : {"/" + decoy + "/Echo", "//" + decoy + "/curfew.demo.Demo/Echo",
                                  "/curfew.demo.Demo/Echo@" + decoy}) {
    grpc::Status s = generic_call(stub, path);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << path << ": " << s.error_message();
    EXPECT_EQ(s.error_message().find("curfew"), std::string::npos) << "the upstream answered";
  }
  EXPECT_EQ(backend_->calls_started(), calls);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(decoy_.connections(), 0) << "curfew dialled an address a caller chose";
}

TEST_F(OpenProxy, UnroutedCallsDialNothing) {
  start("      - {name: echo, match: {method: /curfew.demo.Demo/Echo}, upstream: app}\n");
  grpc::GenericStub stub(channel_);
  for (const std::string& path :
       {std::string("/curfew.demo.Demo/Slow"),
        std::string("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
        "/" + decoy_address() + "/x", std::string("/")}) {
    grpc::Status s =
        generic_call(stub, path, [&](grpc::ClientContext& c) { c.set_authority(decoy_address()); });
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << path;
    EXPECT_NE(s.error_message().find("curfew: no route for"), std::string::npos)
        << s.error_message();
  }
  EXPECT_EQ(backend_->calls_started(), 0);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(decoy_.connections(), 0);
}

TEST_F(OpenProxy, RawHttp2ProxyRequestsAreNotForwarded) {
  start("      - {name: all, match: {prefix: /}, upstream: app}\n");
  // What an open-proxy probe sends: CONNECT to a host, or an absolute-form target, with the
  // decoy as :authority; and a POST whose :authority is the decoy.
  const std::string decoy = decoy_address();
  const std::vector<std::string> blocks = {
      // :method CONNECT, :authority decoy
      h2::literal(2, "CONNECT") + h2::literal(1, decoy),
      // :method POST, :scheme http, :path http://decoy/x, :authority decoy, grpc content-type
      std::string("\x83\x86", 2) + h2::literal(4, "http://" + decoy + "/x") +
          h2::literal(1, decoy) + h2::literal(31, "application/grpc") +
          h2::literal("te", "trailers"),
      // :method GET, :scheme http, :path /, :authority decoy
      std::string("\x82\x86\x84", 3) + h2::literal(1, decoy),
  };
  int fd = connect_to(sidecar_->port("inbound"));
  std::string out(h2::kPreface, h2::kPrefaceSize);
  out += h2::frame(h2::kSettings, 0, 0, "");
  for (size_t i = 0; i < blocks.size(); ++i) {
    out += h2::frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream,
                     static_cast<uint32_t>(2 * i + 1), blocks[i]);
  }
  ASSERT_TRUE(send_all(fd, out));
  std::this_thread::sleep_for(500ms);
  close(fd);
  EXPECT_EQ(decoy_.connections(), 0);
  // The configured upstream saw at most the POST (as an unknown method), never a CONNECT.
  EXPECT_LE(backend_->calls_started(), 0);
  // And curfew serves on.
  grpc::GenericStub stub(channel_);
  EXPECT_TRUE(generic_call(stub, "/curfew.demo.Demo/Echo").ok());
}

// ---- the real binary: the admin address, the log ---------------------------------------------

class BinarySecurity : public FaultTest {};

TEST_F(BinarySecurity, AdminIsASeparateListenerThatDoesNotProxy) {
  start("", "");
  // The admin endpoints are not on the proxy's port...
  httplib::Client on_proxy("127.0.0.1", port_);
  on_proxy.set_connection_timeout(2);
  on_proxy.set_read_timeout(2);
  auto res = on_proxy.Get("/metrics");
  EXPECT_TRUE(!res || res->status != 200);
  // ...and the admin port does not proxy gRPC.
  auto via_admin = demo::Demo::NewStub(channel_to_port(curfew_->admin_port()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 3s);
  demo::EchoRequest request;
  demo::EchoReply reply;
  EXPECT_FALSE(via_admin->Echo(&ctx, request, &reply).ok());
  EXPECT_EQ(healthy_->calls_started(), 0);
  // The admin server answers its own endpoints only, read-only.
  httplib::Client admin("127.0.0.1", curfew_->admin_port());
  admin.set_connection_timeout(2);
  auto metrics = admin.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  auto other = admin.Get("/curfew.demo.Demo/Echo");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  auto post = admin.Post("/metrics", "x", "text/plain");
  EXPECT_TRUE(!post || post->status >= 400);
}

TEST_F(BinarySecurity, NothingSecretIsLogged) {
  ClosedPort closed;
  const std::string secret_token = "Bearer s3cr3t-t0ken-f0r-the-l0g-test";
  const std::string secret_cookie = "session=s3cr3t-c00kie";
  const std::string secret_payload = "s3cr3t-payl0ad";
  start(
      "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: healthy, timeout: "
      "100ms, max_concurrent_calls: 1}\n"
      "      - {name: down, match: {method: /curfew.demo.Demo/Fail}, upstream: gone}\n",
      "  - {name: gone, endpoints: [127.0.0.1:" + std::to_string(closed.port()) + "]}\n", "");
  ASSERT_TRUE(curfew_->ok());
  // Restart with debug logging: the most a log ever says.
  curfew_->stop();
  curfew_ = std::make_unique<CurfewBinary>(dir_.path(), slurp(curfew_->config_path()),
                                           std::vector<std::string>{"--log-level", "debug"});
  ASSERT_TRUE(curfew_->ok()) << curfew_->process().output();
  auto secrets = [&](grpc::ClientContext& ctx) {
    ctx.AddMetadata("authorization", secret_token);
    ctx.AddMetadata("cookie", secret_cookie);
    ctx.AddMetadata("x-api-key-bin", secret_payload);
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  };
  parallel(4, [&](int i) {
    grpc::ClientContext a, b, c;
    secrets(a);
    secrets(b);
    secrets(c);
    demo::EchoRequest echo_request;
    echo_request.set_message(secret_payload);
    demo::SlowRequest slow_request;
    slow_request.set_message(secret_payload);
    slow_request.set_delay_ms(1000);
    demo::FailRequest fail_request;
    fail_request.set_message(secret_payload);
    fail_request.set_code(7);
    demo::EchoReply reply;
    stub_->Echo(&a, echo_request, &reply);  // passes
    stub_->Slow(&b, slow_request, &reply);  // deadline, or refused by the route's limit
    stub_->Fail(&c, fail_request, &reply);  // upstream unreachable
  });
  // A reload, good then bad, and the drain.
  curfew_->reload(slurp(curfew_->config_path()));
  ASSERT_TRUE(curfew_->process().wait_output("configuration reloaded", 10s));
  const std::string config = slurp(curfew_->config_path());
  curfew_->reload("listeners: [{name: x, address: 'nope'}]\n");
  ASSERT_TRUE(curfew_->process().wait_output("refused", 10s));
  curfew_->reload(config);
  std::this_thread::sleep_for(500ms);
  const std::string log = curfew_->process().output();
  EXPECT_EQ(log.find("s3cr3t"), std::string::npos) << log;
}

}  // namespace
}  // namespace curfew::testing
