#include "tls/tls_transport.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "tls/internal/openssl_errors.h"
#include "tls/internal/socket_bio.h"

// Why no wake-up is lost, although the reader and the writer share one SSL and one FdWatch:
//
// 1. A side waits only right after its SSL call returned WANT_READ or WANT_WRITE, that is after
//    the socket said EAGAIN in that direction, with no suspension in between (nothing else runs
//    on the loop thread meanwhile). Readiness after that EAGAIN is a new epoll edge; an older
//    edge the FdWatch remembered is taken at once (a wake that finds nothing, then a new EAGAIN).
// 2. rt::FdWatch takes one waiter per direction. SharedFdWatch lets the first side hold the wait
//    and the other wait behind it; whenever the hold ends (an edge, or the holder's cancellation,
//    which may have swallowed an edge) everyone behind it wakes and retries its SSL call. So an
//    edge in a direction reaches every side waiting for that direction.
// 3. A call on one side may do the work the other side waits to do (SSL_write reading the rest
//    of a post-handshake message SSL_read had begun; SSL_write flushing the KeyUpdate reply
//    SSL_read had to send). It can only do so with bytes that arrived, or send space that freed,
//    after the waiting side's EAGAIN, and the kernel reports that as an edge in the direction
//    that side waits for (after a send's EAGAIN, EPOLLOUT fires once space frees, whoever sends
//    meanwhile). So the waiting side wakes, retries, finds its work done or not, and if it must,
//    waits again on a fresh EAGAIN.
// 4. readable() skips the wait unless the last SSL_read stopped at an empty socket (WANT_*):
//    a short SSL_read (one record) says nothing about the socket, and decrypted bytes may be
//    buffered (SSL_pending), so waiting for an edge there could wait for bytes already read.
//    writable() likewise waits only when the last SSL_write asked to.

namespace curfew::tls {
namespace {

using internal::SharedFdWatch;
using internal::take_openssl_errors;

bool is_ip_literal(const std::string& name) {
  unsigned char addr[16];
  return ::inet_pton(AF_INET, name.c_str(), addr) == 1 ||
         ::inet_pton(AF_INET6, name.c_str(), addr) == 1;
}

std::string subject_of(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return {};
  char text[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), text, sizeof text);
  return text;
}

}  // namespace

TlsTransport::TlsTransport(rt::Socket socket)
    : socket_(std::move(socket)), waits_(socket_.watch()) {}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }  // never waits nor writes; the socket closes

rt::Task<std::unique_ptr<TlsTransport>> TlsTransport::connect(
    rt::Socket socket, std::shared_ptr<const ClientContext> context, std::string server_name) {
  if (context == nullptr) throw std::invalid_argument("TlsTransport::connect: no ClientContext");
  if (!socket.is_open()) throw std::invalid_argument("TlsTransport::connect: socket not open");
  if (server_name.empty()) {
    throw std::invalid_argument("TlsTransport::connect: no server name to verify the peer by");
  }
  // Owns the socket and the SSL from here: a failure or a cancellation at any wait below
  // destroys both, and a half-done handshake is never resumed.
  std::unique_ptr<TlsTransport> transport(new TlsTransport(std::move(socket)));
  transport->start(*context, server_name);
  co_await transport->handshake(server_name);
  co_return transport;
}

void TlsTransport::start(const ClientContext& context, const std::string& server_name) {
  ERR_clear_error();
  ssl_ = SSL_new(context.native());
  BIO* bio = ssl_ != nullptr ? internal::new_socket_bio(socket_.fd()) : nullptr;
  if (bio == nullptr) {
    throw std::system_error(ENOMEM, std::generic_category(),
                            "TLS with " + peer() + ": " + take_openssl_errors());
  }
  SSL_set_bio(ssl_, bio, bio);  // the SSL owns the BIO (one reference for both directions)
  SSL_set_connect_state(ssl_);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
  bool named = false;
  if (is_ip_literal(server_name)) {
    named = X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str()) == 1;
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    named = X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size()) == 1 &&
            SSL_set_tlsext_host_name(ssl_, server_name.c_str()) == 1;
  }
  if (!named) {
    throw HandshakeError(HandshakeFailure::kProtocol,
                         std::make_error_code(std::errc::invalid_argument),
                         "TLS with " + peer() + ": cannot use server name '" + server_name +
                             "': " + take_openssl_errors());
  }
}

rt::Task<void> TlsTransport::handshake(const std::string& server_name) {
  for (;;) {  // bounded by the caller's deadline: each turn waits for an edge
    ERR_clear_error();
    const int r = SSL_connect(ssl_);
    if (r == 1) break;
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) {
      co_await waits_.wait(SharedFdWatch::Direction::kIn);
    } else if (err == SSL_ERROR_WANT_WRITE) {
      co_await waits_.wait(SharedFdWatch::Direction::kOut);
    } else {
      fail_handshake(err, server_name);
    }
  }
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    const std::string selected =
        alpn_len == 0 ? "none"
                      : "'" + std::string(reinterpret_cast<const char*>(alpn), alpn_len) + "'";
    shutdown_both();  // a polite close_notify; the caller's unwinding closes the socket
    throw HandshakeError(HandshakeFailure::kAlpn, std::make_error_code(std::errc::protocol_error),
                         "TLS handshake with " + peer() + " ('" + server_name +
                             "'): the server did not select ALPN protocol 'h2' (HTTP/2 over "
                             "TLS); it selected " +
                             selected);
  }
}

void TlsTransport::fail_handshake(int ssl_error, const std::string& server_name) {
  broken_ = true;
  const std::string with = "TLS handshake with " + peer();
  const auto protocol_error = std::make_error_code(std::errc::protocol_error);
  if (ssl_error == SSL_ERROR_SSL) {
    const unsigned long last = ERR_peek_last_error();
    const long verify = SSL_get_verify_result(ssl_);
    if (ERR_GET_LIB(last) == ERR_LIB_SSL &&
        ERR_GET_REASON(last) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
      ERR_clear_error();
      const std::string subject = subject_of(ssl_);
      throw HandshakeError(HandshakeFailure::kCertificate, protocol_error,
                           with + ": the server's certificate did not verify for '" + server_name +
                               "': " + X509_verify_cert_error_string(verify) +
                               (subject.empty() ? "" : " (certificate subject " + subject + ")"));
    }
    if (ERR_GET_LIB(last) == ERR_LIB_SSL &&
        ERR_GET_REASON(last) == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) {
      ERR_clear_error();
      throw HandshakeError(HandshakeFailure::kAlpn, protocol_error,
                           with + " ('" + server_name +
                               "'): the server refused ALPN protocol 'h2' (HTTP/2 over TLS): "
                               "alert no_application_protocol");
    }
    throw HandshakeError(HandshakeFailure::kProtocol, protocol_error,
                         with + " ('" + server_name + "') failed: " + take_openssl_errors());
  }
  const int sys =
      ssl_error == SSL_ERROR_SYSCALL ? internal::socket_bio_error(SSL_get_rbio(ssl_)) : 0;
  ERR_clear_error();
  if (sys != 0) {
    throw HandshakeError(HandshakeFailure::kConnection,
                         std::error_code(sys, std::generic_category()),
                         with + " ('" + server_name + "') failed: " + std::strerror(sys));
  }
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    throw HandshakeError(
        HandshakeFailure::kConnection, std::make_error_code(std::errc::connection_reset),
        with + " ('" + server_name + "'): the server closed the connection during the handshake");
  }
  throw HandshakeError(
      HandshakeFailure::kProtocol, protocol_error,
      with + " ('" + server_name + "'): unexpected SSL_get_error " + std::to_string(ssl_error));
}

void TlsTransport::fail_io(int ssl_error, const char* doing) {
  broken_ = true;
  const std::string what = std::string("TLS ") + doing + " " + peer();
  if (ssl_error == SSL_ERROR_SYSCALL) {
    const int sys = internal::socket_bio_error(SSL_get_rbio(ssl_));
    ERR_clear_error();
    throw std::system_error(sys != 0 ? sys : ECONNRESET, std::generic_category(), what);
  }
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {  // writing after the peer's close_notify
    ERR_clear_error();
    throw std::system_error(EPIPE, std::generic_category(), what + ": the peer closed TLS");
  }
  throw std::system_error(EPROTO, std::generic_category(), what + ": " + take_openssl_errors());
}

void TlsTransport::check_open(const char* doing) const {
  // After close() the fd number may belong to another connection: the SSL must not touch it.
  if (closed_) {
    throw std::system_error(EBADF, std::generic_category(),
                            std::string("TLS ") + doing + " " + peer() + ": closed");
  }
}

rt::Task<void> TlsTransport::wait_for(Want want) {
  co_await waits_.wait(want == Want::kWrite ? SharedFdWatch::Direction::kOut
                                            : SharedFdWatch::Direction::kIn);
}

rt::Task<size_t> TlsTransport::read_some(std::span<char> buf) {
  if (buf.empty()) co_return 0;
  for (;;) {  // bounded by the peer: each turn waits for an edge
    check_open("read from");
    ERR_clear_error();
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, buf.data(), buf.size(), &n);
    if (r == 1) {
      read_wants_ = Want::kNothing;
      co_return n;
    }
    switch (const int err = SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ:
        read_wants_ = Want::kRead;
        break;
      case SSL_ERROR_WANT_WRITE:  // e.g. the reply to the peer's KeyUpdate
        read_wants_ = Want::kWrite;
        break;
      case SSL_ERROR_ZERO_RETURN:  // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
        ERR_clear_error();
        read_wants_ = Want::kNothing;
        co_return 0;
      default:
        fail_io(err, "read from");
    }
    co_await wait_for(read_wants_);
  }
}

rt::Task<void> TlsTransport::readable() {
  if (read_wants_ == Want::kNothing || SSL_pending(ssl_) > 0) co_return;
  co_await wait_for(read_wants_);
}

size_t TlsTransport::try_write(std::string_view bytes) {
  check_open("write to");
  // SSL_MODE_ENABLE_PARTIAL_WRITE: each SSL_write takes one record. After WANT_*, OpenSSL holds
  // a half-sent record and the next SSL_write must offer the same bytes again: the caller's
  // retry does, since it resends exactly what this did not report written (the buffer may
  // have moved: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
  size_t total = 0;
  while (total < bytes.size()) {  // bounded: each turn writes one record or stops
    ERR_clear_error();
    size_t n = 0;
    const int r = SSL_write_ex(ssl_, bytes.data() + total, bytes.size() - total, &n);
    if (r == 1) {
      write_wants_ = Want::kNothing;
      total += n;
      continue;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_WRITE) {
      write_wants_ = Want::kWrite;
      break;
    }
    if (err == SSL_ERROR_WANT_READ) {  // e.g. the rest of a post-handshake message first
      write_wants_ = Want::kRead;
      break;
    }
    fail_io(err, "write to");
  }
  return total;
}

rt::Task<void> TlsTransport::writable() {
  if (write_wants_ == Want::kNothing) co_return;
  co_await wait_for(write_wants_);
}

void TlsTransport::shutdown_both() noexcept {
  // Once only: a second SSL_shutdown would read (and drop) the peer's data looking for its
  // close_notify. Not after a fatal error, nor mid-handshake (OpenSSL refuses both).
  if (!closed_ && !broken_ && ssl_ != nullptr && SSL_is_init_finished(ssl_) == 1 &&
      (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) == 0) {
    ERR_clear_error();
    (void)SSL_shutdown(ssl_);  // a pending record defers the alert: then none goes out
    ERR_clear_error();
  }
  socket_.shutdown_both();
}

void TlsTransport::close() noexcept {
  closed_ = true;
  socket_.close();
}

const char* TlsTransport::version() const noexcept { return SSL_get_version(ssl_); }

}  // namespace curfew::tls
