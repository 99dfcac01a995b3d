// TlsTransport: an h2::Transport that runs TLS (OpenSSL 3) over a connected socket, as a client.
//
//   rt::Socket socket = co_await rt::deadline(give_up, rt::connect(loop, address));
//   auto transport = co_await rt::deadline(
//       give_up, tls::TlsTransport::connect(std::move(socket), context, name));
//   h2::Session session(std::move(transport), h2::Role::kClient, limits);
//
// connect() runs the handshake; the caller bounds it (a Timeout): every wait in it is a
// cancellation point, and a cancelled or failed handshake destroys the half-made connection.
// After it, the session's reader and writer use the transport at once (h2/transport.h).
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "h2/transport.h"
#include "runtime/socket.h"
#include "runtime/task.h"
#include "tls/client_context.h"
#include "tls/handshake_error.h"
#include "tls/internal/shared_fd_watch.h"

namespace curfew::tls {

class TlsTransport final : public h2::Transport {
 public:
  // Runs the TLS handshake on `socket` (connected, on the calling task's loop) and returns the
  // transport once the server's certificate verified for `server_name` and the server selected
  // ALPN "h2". `server_name` is a DNS name (verified against the certificate's DNS names, and
  // sent as SNI) or an IP literal (verified against its IP addresses; no SNI, RFC 6066 §3);
  // ClientContext::server_name_for() derives it. Throws HandshakeError, std::invalid_argument
  // for an empty name or no context, and CancelledError when cancelled.
  static rt::Task<std::unique_ptr<TlsTransport>> connect(
      rt::Socket socket, std::shared_ptr<const ClientContext> context, std::string server_name);

  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;
  ~TlsTransport() override;

  // h2::Transport. Errors are std::system_error (EPROTO with OpenSSL's reason for TLS errors).
  rt::Task<size_t> read_some(std::span<char> buf) override;
  rt::Task<void> readable() override;
  size_t try_write(std::string_view bytes) override;
  rt::Task<void> writable() override;
  // Sends close_notify if the socket takes it now (never waits), then shuts the socket down.
  void shutdown_both() noexcept override;
  void close() noexcept override;
  const std::string& peer() const noexcept override { return socket_.peer(); }

  // The protocol version negotiated ("TLSv1.3"), for logs.
  const char* version() const noexcept;

 private:
  // What the last SSL call on one side needs before it can make progress.
  enum class Want { kNothing, kRead, kWrite };

  explicit TlsTransport(rt::Socket socket);
  void start(const ClientContext& context, const std::string& server_name);
  rt::Task<void> handshake(const std::string& server_name);
  rt::Task<void> wait_for(Want want);
  [[noreturn]] void fail_handshake(int ssl_error, const std::string& server_name);
  [[noreturn]] void fail_io(int ssl_error, const char* doing);
  void check_open(const char* doing) const;

  rt::Socket socket_;
  internal::SharedFdWatch waits_;  // on socket_'s FdWatch, whose address a move keeps
  SSL* ssl_ = nullptr;
  Want read_wants_ = Want::kNothing;
  Want write_wants_ = Want::kNothing;
  bool broken_ = false;  // a fatal TLS or socket error: no close_notify may follow
  bool closed_ = false;
};

}  // namespace curfew::tls
