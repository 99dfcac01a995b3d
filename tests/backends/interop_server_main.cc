// curfew_interop_server --port N: serves grpc.testing.TestService on 127.0.0.1:N until SIGINT or
// SIGTERM. --port 0 picks a free port; the bound address is printed on stdout either way, so a
// script can wait for that line.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "interop_server.h"
#include "wait_for_signal.h"

namespace {

int Usage(const char* argv0) {
  std::cerr << "usage: " << argv0 << " --port N\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  curfew::testing::BlockTerminationSignals();

  int port = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (arg.rfind("--port=", 0) == 0) {
      port = std::atoi(arg.c_str() + std::strlen("--port="));
    } else {
      return Usage(argv[0]);
    }
  }
  if (port < 0 || port > 65535) return Usage(argv[0]);

  // Lets a proxy or orchestrator probe readiness with grpc.health.v1.Health/Check.
  grpc::EnableDefaultHealthCheckService(true);
  auto server = curfew::testing::InteropServer::Start("127.0.0.1:" + std::to_string(port));
  if (!server) {
    std::cerr << "curfew_interop_server: cannot listen on 127.0.0.1:" << port << "\n";
    return 1;
  }
  std::cout << "listening on 127.0.0.1:" << server->port() << std::endl;

  curfew::testing::WaitForTerminationSignal();
  server->Shutdown();
  return 0;
}
