// ClientContext: the TLS settings of one upstream, made once and shared by its connections (one
// SSL_CTX). TLS 1.2 or later, the server's certificate verified (system roots or a CA file) for
// the connection's server name, ALPN "h2" offered and required, and optionally a client
// certificate (mTLS).
//
//   auto context = tls::ClientContext::create({.ca_file = "/etc/curfew/ca.pem"});
//   if (!context.ok()) return context.status();   // names the file and the problem
//   auto transport = co_await tls::TlsTransport::connect(std::move(socket), *context,
//                                                        (*context)->server_name_for(host));
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace curfew::tls {

// What an upstream's `tls:` block says (config::Upstream::Tls, without `enabled`).
struct ClientSettings {
  std::string ca_file;      // PEM roots to trust; empty: the system's roots
  std::string cert_file;    // PEM client certificate (and chain) for mTLS; set with key_file
  std::string key_file;     // its PEM private key (not encrypted)
  std::string server_name;  // the name verified (and sent as SNI); empty: the endpoint's host
};

class ClientContext {
 public:
  // Reads the files and builds the context. InvalidArgument naming the setting, the file and
  // the problem, e.g. "tls.ca_file '/x': No such file or directory" or "tls.key_file '/k' does
  // not match tls.cert_file '/c'".
  static absl::StatusOr<std::shared_ptr<ClientContext>> create(const ClientSettings& settings);

  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  ~ClientContext();

  // The name to verify the server's certificate against when connecting to `host` (a DNS name
  // or an IP literal, IPv6 with or without brackets): the server_name setting when set (as
  // gRPC's SslTargetNameOverride), else `host`.
  std::string server_name_for(std::string_view host) const;

  SSL_CTX* native() const noexcept { return ctx_; }

 private:
  ClientContext(SSL_CTX* ctx, std::string server_name) noexcept
      : ctx_(ctx), server_name_(std::move(server_name)) {}

  SSL_CTX* ctx_;
  std::string server_name_;
};

}  // namespace curfew::tls
