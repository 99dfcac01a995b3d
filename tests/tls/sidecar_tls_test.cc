// curfew's nghttp2 data path to a TLS upstream, end to end: a plaintext grpc++ caller, curfew
// (in-process, data_path: nghttp2) with `tls:` on the upstream, and grpc++'s interop server
// behind SslServerCredentials. The certificate is verified for the configured server_name or the
// endpoint's IP; a certificate from another CA fails the call UNAVAILABLE, saying why, and is
// counted as a TLS connect failure; a bad tls file fails the start naming upstream and file.
#include <atomic>
#include <string>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "grpc/testing/test.grpc.pb.h"
#include "grpc_tls_server.h"
#include "sidecar/connection_report.h"
#include "sidecar/sidecar.h"
#include "test_pki.h"

namespace {

using curfew_test::GrpcTlsServer;
using curfew_test::TestPki;
using testing::HasSubstr;
namespace sidecar = curfew::sidecar;

class CountingConnections final : public sidecar::ConnectionObserver {
 public:
  void connection_opened(sidecar::ConnectionSide) override {}
  void connection_closed(sidecar::ConnectionSide, curfew::h2::CloseReason) override {}
  void upstream_connect_failed(sidecar::ConnectFailure why) override {
    if (why == sidecar::ConnectFailure::kTls) ++tls_failures;
  }
  std::atomic<int> tls_failures{0};
};

absl::StatusOr<std::unique_ptr<sidecar::Sidecar>> start(const std::string& upstream_yaml,
                                                        sidecar::ConnectionObserver* observer) {
  auto config = curfew::config::load_config_string(
      "listeners:\n"
      "  - name: inbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - {name: all, match: {prefix: /}, upstream: secure, timeout: 5s}\n"
      "upstreams:\n" +
          upstream_yaml + "data_path: nghttp2\n",
      "tls.yaml");
  if (!config.ok()) return config.status();
  config->worker_threads = 1;
  return sidecar::Sidecar::start(*std::move(config), nullptr, observer);
}

grpc::Status unary_call(int port, std::string* reply) {
  auto stub = grpc::testing::TestService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::testing::SimpleRequest request;
  request.set_response_size(1000);
  request.set_fill_username(true);
  grpc::testing::SimpleResponse response;
  grpc::Status status = stub->UnaryCall(&ctx, request, &response);
  *reply = response.payload().body();
  return status;
}

TEST(SidecarTls, CallsReachATlsUpstreamVerifiedByItsName) {
  TestPki pki;
  auto upstream = GrpcTlsServer::Start(pki, /*require_client_cert=*/false);
  ASSERT_NE(upstream, nullptr);
  auto s = start("  - {name: secure, endpoints: [127.0.0.1:" + std::to_string(upstream->port()) +
                     "], tls: {enabled: true, ca_file: " + pki.path("ca.pem") +
                     ", server_name: upstream.test}}\n",
                 nullptr);
  ASSERT_TRUE(s.ok()) << s.status();
  std::string reply;
  for (int i = 0; i < 5; ++i) {  // over one pooled connection
    const grpc::Status status = unary_call((*s)->port("inbound"), &reply);
    EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    EXPECT_EQ(reply.size(), 1000u);
  }
  EXPECT_EQ(upstream->calls_started(), 5);
}

TEST(SidecarTls, MutualTlsWithTheConfiguredClientCertificate) {
  TestPki pki;
  auto upstream = GrpcTlsServer::Start(pki, /*require_client_cert=*/true);
  ASSERT_NE(upstream, nullptr);
  // No server_name: the endpoint's IP is verified against the certificate's IP address.
  auto s = start("  - {name: secure, endpoints: [127.0.0.1:" + std::to_string(upstream->port()) +
                     "], tls: {enabled: true, ca_file: " + pki.path("ca.pem") + ", cert_file: " +
                     pki.path("client.pem") + ", key_file: " + pki.path("client.key") + "}}\n",
                 nullptr);
  ASSERT_TRUE(s.ok()) << s.status();
  std::string reply;
  const grpc::Status status = unary_call((*s)->port("inbound"), &reply);
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
}

TEST(SidecarTls, AnUntrustedCertificateFailsTheCallSayingWhy) {
  TestPki pki;
  auto upstream = GrpcTlsServer::Start(pki, /*require_client_cert=*/false);
  ASSERT_NE(upstream, nullptr);
  CountingConnections connections;
  auto s = start("  - {name: secure, endpoints: [127.0.0.1:" + std::to_string(upstream->port()) +
                     "], tls: {enabled: true, ca_file: " + pki.path("wrong_ca.pem") +
                     ", server_name: upstream.test}}\n",
                 &connections);
  ASSERT_TRUE(s.ok()) << s.status();
  std::string reply;
  const grpc::Status status = unary_call((*s)->port("inbound"), &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("upstream.test")) << status.error_message();
  EXPECT_GE(connections.tls_failures.load(), 1);
  EXPECT_EQ(upstream->calls_started(), 0);
}

TEST(SidecarTls, AMissingCaFileFailsTheStartNamingUpstreamAndFile) {
  auto s = start(
      "  - {name: secure, endpoints: [127.0.0.1:1], tls: {enabled: true, ca_file: "
      "/nonexistent/ca.pem}}\n",
      nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("upstream 'secure'"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("/nonexistent/ca.pem"));
}

}  // namespace
