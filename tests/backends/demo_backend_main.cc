// curfew-demo-backend [--address 127.0.0.1:8080]: serves curfew.demo.Demo until SIGINT or
// SIGTERM. The bound address is printed on stdout (useful with port 0).
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <string>

#include "demo_backend.h"
#include "wait_for_signal.h"

int main(int argc, char** argv) {
  curfew::testing::BlockTerminationSignals();

  std::string address = "127.0.0.1:8080";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--address" && i + 1 < argc) {
      address = argv[++i];
    } else if (arg.rfind("--address=", 0) == 0) {
      address = arg.substr(std::string("--address=").size());
    } else {
      std::cerr << "usage: " << argv[0] << " [--address HOST:PORT]   (default 127.0.0.1:8080)\n";
      return 2;
    }
  }

  // Lets a proxy or orchestrator probe readiness with grpc.health.v1.Health/Check.
  grpc::EnableDefaultHealthCheckService(true);
  auto backend = curfew::testing::DemoBackend::Start(address);
  if (!backend) {
    std::cerr << "curfew-demo-backend: cannot listen on " << address << "\n";
    return 1;
  }
  const std::string host = address.substr(0, address.rfind(':'));
  std::cout << "listening on " << host << ":" << backend->port() << std::endl;

  curfew::testing::WaitForTerminationSignal();
  backend->Shutdown();
  return 0;
}
