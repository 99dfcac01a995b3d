#include "interop_server.h"

#include <chrono>
#include <cstdint>
#include <string>

#include "keep_grpc_initialized.h"

namespace curfew::testing {

std::unique_ptr<InteropServer> InteropServer::Start(const std::string& address) {
  KeepGrpcInitialized();
  std::unique_ptr<InteropServer> server(new InteropServer());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &server->port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // The server id only has to tell server instances apart (fill_server_id).
  server->service_ = std::make_unique<InteropService>(
      "curfew-interop-" + std::to_string(reinterpret_cast<uintptr_t>(server.get())),
      &server->stats_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) return nullptr;
  return server;
}

InteropServer::~InteropServer() { Shutdown(); }

void InteropServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  });
}

}  // namespace curfew::testing
