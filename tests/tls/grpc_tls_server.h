// GrpcTlsServer: grpc++'s interop server (grpc.testing.TestService) behind
// grpc::SslServerCredentials with TestPki's server certificate, on 127.0.0.1.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "interop_server.h"
#include "interop_service.h"
#include "keep_grpc_initialized.h"
#include "test_pki.h"

namespace curfew_test {

class GrpcTlsServer {
 public:
  // Null when it cannot start. With `require_client_cert`, a client must present a certificate
  // signed by TestPki's CA.
  static std::unique_ptr<GrpcTlsServer> Start(const TestPki& pki, bool require_client_cert) {
    curfew::testing::KeepGrpcInitialized();
    std::unique_ptr<GrpcTlsServer> server(new GrpcTlsServer());
    grpc::SslServerCredentialsOptions options(
        require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_root_certs = slurp(pki.path("ca.pem"));
    options.pem_key_cert_pairs.push_back(
        {slurp(pki.path("server.key")), slurp(pki.path("server.pem"))});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(options), &server->port_);
    builder.SetMaxReceiveMessageSize(curfew::testing::InteropServer::kMaxMessageBytes);
    builder.SetMaxSendMessageSize(curfew::testing::InteropServer::kMaxMessageBytes);
    server->service_ =
        std::make_unique<curfew::testing::InteropService>("curfew-tls-test", &server->stats_);
    builder.RegisterService(server->service_.get());
    server->server_ = builder.BuildAndStart();
    if (!server->server_ || server->port_ == 0) return nullptr;
    return server;
  }
  GrpcTlsServer(const GrpcTlsServer&) = delete;
  GrpcTlsServer& operator=(const GrpcTlsServer&) = delete;
  ~GrpcTlsServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }

  int port() const { return port_; }
  int calls_started() const { return stats_.calls_started.load(); }

 private:
  GrpcTlsServer() = default;
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  curfew::testing::InteropServiceStats stats_;
  std::unique_ptr<curfew::testing::InteropService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace curfew_test
