#include "demo_backend.h"

#include <chrono>

#include "keep_grpc_initialized.h"

namespace curfew::testing {

std::unique_ptr<DemoBackend> DemoBackend::Start(const std::string& address) {
  KeepGrpcInitialized();
  std::unique_ptr<DemoBackend> backend(new DemoBackend());
  backend->service_ = std::make_unique<DemoService>(&backend->observations_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &backend->port_);
  builder.RegisterService(backend->service_.get());
  backend->server_ = builder.BuildAndStart();
  if (!backend->server_ || backend->port_ == 0) return nullptr;
  return backend;
}

DemoBackend::~DemoBackend() { Shutdown(); }

void DemoBackend::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  });
}

}  // namespace curfew::testing
