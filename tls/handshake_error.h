// HandshakeError: why a TLS handshake with an upstream failed.
//
// A std::system_error, so a caller that tries the next address on a connect error
// (std::system_error) treats a failed handshake the same way; code() is std::errc::protocol_error
// for TLS failures and the socket's errno for connection failures. what() is the message alone,
// e.g. "TLS handshake with 127.0.0.1:8443: the certificate for 'upstream.test' did not verify:
// unable to get local issuer certificate".
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace curfew::tls {

enum class HandshakeFailure {
  kCertificate,  // the server's certificate did not verify (untrusted, expired, wrong name)
  kAlpn,         // the server does not speak HTTP/2 over TLS: ALPN "h2" not selected
  kProtocol,     // a TLS-level failure: the server's alert, no common version, not TLS at all
  kConnection,   // the connection failed or was closed during the handshake
};

class HandshakeError : public std::system_error {
 public:
  HandshakeError(HandshakeFailure failure, std::error_code code, const std::string& message)
      : std::system_error(code, message), failure_(failure), message_(message) {}

  HandshakeFailure failure() const noexcept { return failure_; }
  const char* what() const noexcept override { return message_.what(); }

 private:
  HandshakeFailure failure_;
  std::runtime_error message_;  // copies without throwing, unlike a std::string
};

}  // namespace curfew::tls
