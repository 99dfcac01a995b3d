// An h2::Session in the client role on a tls::TlsTransport makes real gRPC calls to grpc++'s
// interop server behind grpc::SslServerCredentials: server-authenticated and mutual TLS, by DNS
// name and by IP, and bodies large enough that every write is partial and the session's reader
// and writer use the connection at the same time. Loopback only; every wait bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "grpc/testing/messages.pb.h"
#include "grpc_tls_server.h"
#include "runtime/errors.h"
#include "test_pki.h"
#include "tls_test_client.h"

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
namespace tls = curfew::tls;
using namespace std::chrono_literals;
using curfew_test::call;
using curfew_test::CallResult;
using curfew_test::context_or_die;
using curfew_test::GrpcTlsServer;
using curfew_test::TestPki;
using curfew_test::unframed;
using curfew_test::with_tls_session;
using rt::Task;

namespace {

// `count` UnaryCalls asking for `response_size` bytes; how many came back whole and OK.
Task<int> unary_calls(h2::Session& session, int port, int count, int response_size,
                      std::string* last_status) {
  int good = 0;
  for (int i = 0; i < count; ++i) {
    const int expected = response_size + i;
    grpc::testing::SimpleRequest request;
    request.set_response_size(expected);
    const CallResult r = co_await call(session, port, "UnaryCall", {request.SerializeAsString()});
    *last_status = r.grpc_status;
    const auto messages = unframed(r.body);
    grpc::testing::SimpleResponse response;
    if (r.ended_cleanly && r.grpc_status == "0" && messages && messages->size() == 1 &&
        response.ParseFromString(messages->front()) &&
        response.payload().body().size() == static_cast<size_t>(expected))
      ++good;
  }
  co_return good;
}

class TlsSession : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()) << pki_.error(); }
  TestPki pki_;
};

TEST_F(TlsSession, CallsAGrpcServerOverTls) {
  auto server = GrpcTlsServer::Start(pki_, /*require_client_cert=*/false);
  ASSERT_NE(server, nullptr);
  auto context = context_or_die({.ca_file = pki_.path("ca.pem")});
  int good = 0;
  std::string status;
  const auto reason =
      with_tls_session(server->port(), context, context->server_name_for("upstream.test"),
                       [&](h2::Session& session) -> Task<void> {
                         good = co_await unary_calls(session, server->port(), 20, 100, &status);
                       });
  EXPECT_EQ(good, 20);
  EXPECT_EQ(status, "0");
  EXPECT_EQ(reason, h2::CloseReason::kGoaway) << h2::close_reason_name(reason);
}

TEST_F(TlsSession, CallsByIpLiteralVerifiedAgainstTheIpAddress) {
  auto server = GrpcTlsServer::Start(pki_, false);
  ASSERT_NE(server, nullptr);
  auto context = context_or_die({.ca_file = pki_.path("ca.pem")});
  int good = 0;
  std::string status;
  with_tls_session(server->port(), context, context->server_name_for("127.0.0.1"),
                   [&](h2::Session& session) -> Task<void> {
                     good = co_await unary_calls(session, server->port(), 3, 10, &status);
                   });
  EXPECT_EQ(good, 3) << status;
}

TEST_F(TlsSession, MutualTlsWithAServerThatRequiresAClientCertificate) {
  auto server = GrpcTlsServer::Start(pki_, /*require_client_cert=*/true);
  ASSERT_NE(server, nullptr);
  auto context = context_or_die({.ca_file = pki_.path("ca.pem"),
                                 .cert_file = pki_.path("client.pem"),
                                 .key_file = pki_.path("client.key")});
  int good = 0;
  std::string status;
  with_tls_session(server->port(), context, "upstream.test",
                   [&](h2::Session& session) -> Task<void> {
                     good = co_await unary_calls(session, server->port(), 5, 1000, &status);
                   });
  EXPECT_EQ(good, 5) << status;
  EXPECT_EQ(server->calls_started(), 5);
}

// Under TLS 1.3 the client's handshake completes before the server checks the certificate the
// client did not send: the refusal arrives as an alert on the first read, so the call fails
// (or, under TLS 1.2, connect() does). No call reaches the service either way.
TEST_F(TlsSession, WithoutAClientCertificateAServerThatRequiresOneRefusesTheCall) {
  auto server = GrpcTlsServer::Start(pki_, /*require_client_cert=*/true);
  ASSERT_NE(server, nullptr);
  auto context = context_or_die({.ca_file = pki_.path("ca.pem")});
  int good = -1;
  std::string status;
  std::string error;
  h2::CloseReason reason = h2::CloseReason::kOpen;
  try {
    reason = with_tls_session(
        server->port(), context, "upstream.test", [&](h2::Session& session) -> Task<void> {
          good = co_await unary_calls(session, server->port(), 1, 10, &status);
        });
  } catch (const std::exception& e) {
    error = e.what();
  }
  EXPECT_TRUE(good == 0 || !error.empty()) << good;
  EXPECT_NE(reason, h2::CloseReason::kGoaway);
  EXPECT_EQ(server->calls_started(), 0);
}

// 4 MiB up and 4 MiB down in unary calls, two at once, then a full-duplex call whose requests
// and responses (16 x 256 KiB each way) cross, on a socket with the smallest kernel buffers:
// SSL_write stops mid-record (WANT_WRITE) again and again, and the session's reader and writer
// work the same SSL at the same time.
TEST_F(TlsSession, LargeBodiesBothWays) {
  auto server = GrpcTlsServer::Start(pki_, false);
  ASSERT_NE(server, nullptr);
  auto context = context_or_die({.ca_file = pki_.path("ca.pem")});
  constexpr int kBig = 4 << 20;
  constexpr int kChunk = 256 << 10;
  constexpr int kChunks = 16;
  int unary_good = 0;
  int duplex_messages = 0;
  bool duplex_clean = false;
  std::string duplex_status;
  const auto reason = with_tls_session(
      server->port(), context, "upstream.test",
      [&](h2::Session& session) -> Task<void> {
        const int port = server->port();
        auto big_unary = [&](char fill) -> Task<void> {
          grpc::testing::SimpleRequest request;
          request.set_response_size(kBig);
          request.mutable_payload()->set_body(std::string(kBig, fill));
          const CallResult r =
              co_await call(session, port, "UnaryCall", {request.SerializeAsString()});
          const auto messages = unframed(r.body);
          grpc::testing::SimpleResponse response;
          if (r.ended_cleanly && r.grpc_status == "0" && messages && messages->size() == 1 &&
              response.ParseFromString(messages->front()) &&
              response.payload().body().size() == static_cast<size_t>(kBig))
            ++unary_good;
        };
        rt::TaskGroup unary;
        co_await unary.run([&]() -> Task<void> {
          unary.spawn(big_unary('a'), "unary-a");
          unary.spawn(big_unary('b'), "unary-b");
          co_return;
        }());

        auto stream = session.open_stream(curfew_test::request_headers("FullDuplexCall", port));
        if (stream == nullptr) co_return;
        // Named: the spawned coroutine reaches its captures through this closure.
        auto duplex_writer = [&]() -> Task<void> {
          for (int i = 0; i < kChunks; ++i) {
            grpc::testing::StreamingOutputCallRequest request;
            request.add_response_parameters()->set_size(kChunk);
            request.mutable_payload()->set_body(std::string(kChunk, static_cast<char>(i)));
            if (!co_await stream->write(curfew_test::framed(request.SerializeAsString()))) break;
          }
          stream->end();
        };
        CallResult result;
        rt::TaskGroup duplex;
        co_await duplex.run([&]() -> Task<void> {
          duplex.spawn(duplex_writer(), "duplex-writer");
          co_await curfew_test::read_response(*stream, result);
        }());
        duplex_status = result.grpc_status;
        duplex_clean = result.ended_cleanly;
        if (const auto messages = unframed(result.body)) {
          for (const std::string& m : *messages) {
            grpc::testing::StreamingOutputCallResponse response;
            if (response.ParseFromString(m) &&
                response.payload().body().size() == static_cast<size_t>(kChunk))
              ++duplex_messages;
          }
        }
      },
      120s, /*small_buffers=*/true);
  EXPECT_EQ(unary_good, 2);
  EXPECT_EQ(duplex_messages, kChunks);
  EXPECT_TRUE(duplex_clean);
  EXPECT_EQ(duplex_status, "0");
  EXPECT_EQ(reason, h2::CloseReason::kGoaway) << h2::close_reason_name(reason);
}

// The caller's deadline cancels a session in the middle of an upload (its writer typically
// waiting for the socket mid-record, its reader for bytes): everything unwinds, the transport
// is destroyed as it stands, and no coroutine frame (nor, under ASan, memory) is left behind.
TEST_F(TlsSession, ADeadlineCancelsASessionMidTransferCleanly) {
  auto server = GrpcTlsServer::Start(pki_, false);
  ASSERT_NE(server, nullptr);
  auto context = context_or_die({.ca_file = pki_.path("ca.pem")});
  const long frames_before = rt::live_frames();
  int written = 0;
  std::string error;
  try {
    with_tls_session(
        server->port(), context, "upstream.test",
        [&](h2::Session& session) -> Task<void> {
          auto stream = session.open_stream(curfew_test::request_headers("StreamingInputCall", 0));
          if (stream == nullptr) co_return;
          grpc::testing::StreamingInputCallRequest request;
          request.mutable_payload()->set_body(std::string(1 << 20, 'x'));
          const std::string message = curfew_test::framed(request.SerializeAsString());
          for (int i = 0; i < 100000; ++i) {  // bounded; the deadline comes first
            if (!co_await stream->write(message)) break;
            ++written;
          }
        },
        300ms, /*small_buffers=*/true);
  } catch (const rt::TimeoutError& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "deadline exceeded");
  EXPECT_GT(written, 0);
  EXPECT_EQ(rt::live_frames(), frames_before);
}

}  // namespace
