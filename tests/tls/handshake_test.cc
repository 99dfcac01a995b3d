// tls::TlsTransport::connect against independent TLS servers (grpc++'s, openssl s_server): what
// it accepts, what it refuses and how it says so, and a handshake cut short by the caller's
// deadline. Loopback only; every wait bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "grpc_tls_server.h"
#include "interop_server.h"
#include "openssl_server.h"
#include "runtime/errors.h"
#include "test_pki.h"
#include "tls_test_client.h"

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
namespace tls = curfew::tls;
using namespace std::chrono_literals;
using curfew_test::GrpcTlsServer;
using curfew_test::OpensslServer;
using curfew_test::TestPki;
using curfew_test::try_handshake;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using tls::HandshakeFailure;

namespace {

class TlsHandshake : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()) << pki_.error(); }
  tls::ClientSettings trusting() const { return {.ca_file = pki_.path("ca.pem")}; }

  TestPki pki_;
};

TEST_F(TlsHandshake, AGrpcServerWithAValidCertificateIsAccepted) {
  auto server = GrpcTlsServer::Start(pki_, /*require_client_cert=*/false);
  ASSERT_NE(server, nullptr);
  const auto outcome = try_handshake(server->port(), trusting(), "upstream.test");
  EXPECT_TRUE(outcome.connected) << outcome.error;
  EXPECT_THAT(outcome.version, ::testing::StartsWith("TLSv1."));
}

TEST_F(TlsHandshake, ACertificateFromAnUntrustedCaFailsNamingTheNameAndTheReason) {
  auto server = GrpcTlsServer::Start(pki_, false);
  ASSERT_NE(server, nullptr);
  const auto outcome =
      try_handshake(server->port(), {.ca_file = pki_.path("wrong_ca.pem")}, "upstream.test");
  EXPECT_FALSE(outcome.connected);
  EXPECT_EQ(outcome.failure, HandshakeFailure::kCertificate) << outcome.error;
  EXPECT_THAT(outcome.error, HasSubstr("did not verify for 'upstream.test'"));
  // OpenSSL's verify error: grpc++'s server sends its CA along (OpenSSL builds the chain from
  // the roots it verifies clients with), so the untrusted root is in the chain.
  EXPECT_THAT(outcome.error, AnyOf(HasSubstr(": self-signed certificate in certificate chain"),
                                   HasSubstr(": unable to get local issuer certificate")));
  EXPECT_THAT(outcome.error, HasSubstr("127.0.0.1:" + std::to_string(server->port())));
}

TEST_F(TlsHandshake, ANameTheCertificateDoesNotCoverFails) {
  auto server = GrpcTlsServer::Start(pki_, false);
  ASSERT_NE(server, nullptr);
  // As the server_name setting would make it (SslTargetNameOverride on the gRPC path).
  auto context =
      tls::ClientContext::create({.ca_file = pki_.path("ca.pem"), .server_name = "other.test"});
  ASSERT_TRUE(context.ok());
  const std::string name = (*context)->server_name_for("127.0.0.1");
  EXPECT_EQ(name, "other.test");
  const auto outcome = try_handshake(server->port(), {.ca_file = pki_.path("ca.pem")}, name);
  EXPECT_EQ(outcome.failure, HandshakeFailure::kCertificate) << outcome.error;
  EXPECT_THAT(outcome.error, HasSubstr("'other.test'"));
  EXPECT_THAT(outcome.error, HasSubstr("hostname mismatch"));
}

TEST_F(TlsHandshake, AnIpLiteralIsVerifiedAgainstTheCertificatesIpAddresses) {
  auto server = GrpcTlsServer::Start(pki_, false);
  ASSERT_NE(server, nullptr);
  const auto good = try_handshake(server->port(), trusting(), "127.0.0.1");
  EXPECT_TRUE(good.connected) << good.error;
  const auto bad = try_handshake(server->port(), trusting(), "127.0.0.2");
  EXPECT_EQ(bad.failure, HandshakeFailure::kCertificate) << bad.error;
  EXPECT_THAT(bad.error, HasSubstr("IP address mismatch"));
  // An IPv6 literal is an IP too (not a DNS name the certificate lacks).
  const auto v6 = try_handshake(server->port(), trusting(), "::1");
  EXPECT_THAT(v6.error, HasSubstr("IP address mismatch"));
}

// s_server answers with server_by_wrong_ca.pem when the client's SNI says "upstream.test" and
// with server.pem when there is no SNI: so which certificate verifies shows what was sent.
TEST_F(TlsHandshake, SniIsSentForDnsNamesOnly) {
  OpensslServer server(pki_,
                       {"-alpn", "h2", "-servername", "upstream.test", "-cert2",
                        pki_.path("server_by_wrong_ca.pem"), "-key2", pki_.path("server.key")});
  ASSERT_NE(server.port(), 0) << server.log();
  const auto by_ip = try_handshake(server.port(), trusting(), "127.0.0.1");
  EXPECT_TRUE(by_ip.connected) << by_ip.error;
  const auto by_name = try_handshake(server.port(), trusting(), "upstream.test");
  EXPECT_EQ(by_name.failure, HandshakeFailure::kCertificate) << by_name.error;
  EXPECT_THAT(by_name.error, HasSubstr("unable to get local issuer certificate"));
}

TEST_F(TlsHandshake, AServerThatSelectsAnotherAlpnProtocolIsRefused) {
  OpensslServer server(pki_, {"-alpn", "http/1.1"});
  ASSERT_NE(server.port(), 0) << server.log();
  const auto outcome = try_handshake(server.port(), trusting(), "upstream.test");
  EXPECT_FALSE(outcome.connected);
  EXPECT_EQ(outcome.failure, HandshakeFailure::kAlpn) << outcome.error;
  EXPECT_THAT(outcome.error, HasSubstr("ALPN protocol 'h2'"));
}

TEST_F(TlsHandshake, AServerWithoutAlpnIsRefused) {
  OpensslServer server(pki_, {});
  ASSERT_NE(server.port(), 0) << server.log();
  const auto outcome = try_handshake(server.port(), trusting(), "upstream.test");
  EXPECT_FALSE(outcome.connected);
  EXPECT_EQ(outcome.failure, HandshakeFailure::kAlpn) << outcome.error;
  EXPECT_THAT(outcome.error,
              HasSubstr("the server did not select ALPN protocol 'h2' (HTTP/2 over TLS); it "
                        "selected none"));
}

TEST_F(TlsHandshake, Tls12IsAcceptedAndOlderVersionsAreNot) {
  OpensslServer tls12(pki_, {"-alpn", "h2", "-tls1_2"});
  ASSERT_NE(tls12.port(), 0) << tls12.log();
  const auto outcome = try_handshake(tls12.port(), trusting(), "upstream.test");
  EXPECT_TRUE(outcome.connected) << outcome.error;
  EXPECT_EQ(outcome.version, "TLSv1.2");
  // TLS 1.1 needs security level 0 on OpenSSL 3's side to be offered at all.
  OpensslServer tls11(pki_, {"-alpn", "h2", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"});
  ASSERT_NE(tls11.port(), 0) << tls11.log();
  const auto old = try_handshake(tls11.port(), trusting(), "upstream.test");
  EXPECT_FALSE(old.connected);
  EXPECT_EQ(old.failure, HandshakeFailure::kProtocol) << old.error;
}

TEST_F(TlsHandshake, APlaintextServerIsAProtocolError) {
  auto server = curfew::testing::InteropServer::Start("127.0.0.1:0");
  ASSERT_NE(server, nullptr);
  const auto outcome = try_handshake(server->port(), trusting(), "upstream.test");
  EXPECT_FALSE(outcome.connected);
  ASSERT_TRUE(outcome.failure.has_value()) << outcome.error;
  EXPECT_THAT(outcome.error, HasSubstr("TLS handshake with 127.0.0.1:"));
}

// A listener that never accepts: the kernel completes TCP, nobody speaks TLS. The caller's
// deadline cancels the handshake at its wait; nothing is left behind (frames, fds, under ASan
// memory), and again and again.
TEST_F(TlsHandshake, TheCallersDeadlineCancelsAHandshakeWithASilentServer) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  auto open_fds = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator());
  };
  const long frames_before = rt::live_frames();
  const auto fds_before = open_fds();
  for (int i = 0; i < 5; ++i) {
    const auto started = std::chrono::steady_clock::now();
    const auto outcome = try_handshake(port, trusting(), "upstream.test", 100ms);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_FALSE(outcome.connected);
    EXPECT_FALSE(outcome.failure.has_value());
    EXPECT_EQ(outcome.error, "deadline exceeded");
    EXPECT_LT(took, 5s);
  }
  EXPECT_EQ(rt::live_frames(), frames_before);
  EXPECT_EQ(open_fds(), fds_before);  // each attempt's socket closed
  ::close(listener);
}

}  // namespace
