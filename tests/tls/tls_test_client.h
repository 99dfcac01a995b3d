// Client-side helpers of the TLS tests: dial 127.0.0.1 over TLS, run an h2::Session on the
// transport, make gRPC calls on it. Every wait is bounded.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "h2/session.h"
#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/socket.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "tls/client_context.h"
#include "tls/tls_transport.h"

namespace curfew_test {

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
namespace tls = curfew::tls;
using namespace std::chrono_literals;

inline std::string framed(const std::string& message) {
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + message;
}

// The messages of a gRPC body (length-prefixed); nullopt when it does not parse.
inline std::optional<std::vector<std::string>> unframed(const std::string& body) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < body.size()) {  // bounded: each turn consumes a 5-byte prefix at least
    if (body.size() - at < 5) return std::nullopt;
    const auto* p = reinterpret_cast<const unsigned char*>(body.data() + at);
    const size_t n = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4];
    if (body.size() - at - 5 < n) return std::nullopt;
    out.push_back(body.substr(at + 5, n));
    at += 5 + n;
  }
  return out;
}

// TCP connect to 127.0.0.1:port, then the TLS handshake as `server_name`. With
// `small_buffers`, the socket's send buffer is shrunk to its minimum (a few KiB, less than a
// TLS record), so large writes stop mid-record. (Not the receive buffer: a tiny one makes
// loopback TCP drop segments and wait out 200 ms retransmission timeouts.)
inline rt::Task<std::unique_ptr<tls::TlsTransport>> dial(
    int port, std::shared_ptr<const tls::ClientContext> context, std::string server_name,
    bool small_buffers = false) {
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  rt::Socket socket =
      co_await rt::connect(loop, rt::SocketAddress::parse("127.0.0.1:" + std::to_string(port)));
  if (small_buffers) {
    const int size = 4096;
    ::setsockopt(socket.fd(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  co_return co_await tls::TlsTransport::connect(std::move(socket), std::move(context),
                                                std::move(server_name));
}

inline std::shared_ptr<const tls::ClientContext> context_or_die(
    const tls::ClientSettings& settings) {
  auto context = tls::ClientContext::create(settings);
  if (!context.ok()) throw std::runtime_error(std::string(context.status().message()));
  return *std::move(context);
}

// How a handshake on its own ended.
struct HandshakeOutcome {
  bool connected = false;
  std::string version;                           // when connected
  std::optional<tls::HandshakeFailure> failure;  // when HandshakeError
  std::string error;                             // what() of whatever was thrown
};

inline HandshakeOutcome try_handshake(int port, const tls::ClientSettings& settings,
                                      const std::string& server_name, rt::Duration limit = 10s) {
  HandshakeOutcome outcome;
  auto context = context_or_die(settings);
  rt::run([&]() -> rt::Task<void> {
    try {
      auto transport = co_await rt::timeout(limit, dial(port, context, server_name));
      outcome.connected = true;
      outcome.version = transport->version();
      transport->shutdown_both();
    } catch (const tls::HandshakeError& e) {
      outcome.failure = e.failure();
      outcome.error = e.what();
    } catch (const std::exception& e) {
      outcome.error = e.what();
    }
  }());
  return outcome;
}

// Runs `body` with a client session over TLS to 127.0.0.1:port, then closes the session
// gracefully; everything within `limit`. Returns how the session ended.
inline h2::CloseReason with_tls_session(int port, std::shared_ptr<const tls::ClientContext> context,
                                        const std::string& server_name,
                                        const std::function<rt::Task<void>(h2::Session&)>& body,
                                        rt::Duration limit = 60s, bool small_buffers = false) {
  h2::CloseReason reason = h2::CloseReason::kOpen;
  rt::run([&]() -> rt::Task<void> {
    co_await rt::timeout(limit, [&]() -> rt::Task<void> {
      auto transport = co_await dial(port, context, server_name, small_buffers);
      h2::Session session(std::move(transport), h2::Role::kClient, {});
      rt::TaskGroup group;
      co_await group.run([&]() -> rt::Task<void> {
        group.spawn(session.run(nullptr), "session");
        co_await body(session);
        session.shutdown();  // GOAWAY: run() ends once nothing is open
      }());
      reason = session.close_reason();
    }());
  }());
  return reason;
}

// One gRPC call's outcome as the client session saw it.
struct CallResult {
  bool opened = false;
  bool got_headers = false;
  bool ended_cleanly = false;
  std::string grpc_status = "(none)";
  std::string body;  // the response body, still framed
};

inline h2::Headers request_headers(const std::string& method, int port) {
  return {{":method", "POST"},
          {":scheme", "https"},
          {":path", "/grpc.testing.TestService/" + method},
          {":authority", "upstream.test:" + std::to_string(port)},
          {"content-type", "application/grpc"},
          {"te", "trailers"}};
}

// Reads a response to its end.
inline rt::Task<void> read_response(h2::Stream& stream, CallResult& result) {
  result.got_headers = co_await stream.wait_headers();
  for (int i = 0; i < 1'000'000; ++i) {  // bounded: far more chunks than any test receives
    auto chunk = co_await stream.read();
    if (!chunk) break;
    result.body += *chunk;
  }
  const h2::Headers& trailers = stream.headers_only() ? stream.headers() : stream.trailers();
  if (auto s = h2::find_header(trailers, "grpc-status")) result.grpc_status = *s;
  result.ended_cleanly = stream.ended_cleanly();
}

// A call with the whole request body at once (`messages` framed one after the other).
inline rt::Task<CallResult> call(h2::Session& session, int port, const std::string& method,
                                 const std::vector<std::string>& messages) {
  CallResult result;
  auto stream = session.open_stream(request_headers(method, port));
  if (stream == nullptr) co_return result;
  result.opened = true;
  for (const std::string& m : messages) {
    if (!co_await stream->write(framed(m))) break;
  }
  stream->end();
  co_await read_response(*stream, result);
  co_return result;
}

}  // namespace curfew_test
