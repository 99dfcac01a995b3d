// Pods: real grpc++ servers of Demo/Echo on several loopback addresses (127.0.0.2, .3, ...),
// one port for all, standing for the replicas behind one Kubernetes name. Each counts, from
// outside curfew, the calls it served and the connections they came on (the peers it saw: a
// connection is its client's address and port), and may answer late or UNAVAILABLE.
//
// established_connections(host, port) reads the kernel's view: the TCP connections a server on
// host:port holds open now (accepted and established), as "client-address:port" strings.
#pragma once

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "curfew/demo/demo.grpc.pb.h"

namespace curfew::testing {

class Pod final : public demo::Demo::Service {
 public:
  // A pod on host:port (port 0: any), or null when that port is taken on that address.
  static std::unique_ptr<Pod> start(const std::string& host, int port) {
    auto pod = std::unique_ptr<Pod>(new Pod());
    grpc::ServerBuilder builder;
    int bound = 0;
    builder.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &bound);
    builder.RegisterService(pod.get());
    pod->server_ = builder.BuildAndStart();
    if (!pod->server_ || bound == 0) return nullptr;
    pod->host_ = host;
    pod->port_ = bound;
    return pod;
  }
  ~Pod() override { stop(); }

  grpc::Status Echo(grpc::ServerContext* ctx, const demo::EchoRequest* request,
                    demo::EchoReply* reply) override {
    ++calls;
    {
      std::lock_guard lock(mu_);
      peers_.insert(ctx->peer());
    }
    if (const auto delay = std::chrono::milliseconds(delay_ms.load());
        delay > std::chrono::milliseconds(0))
      std::this_thread::sleep_for(delay);
    if (unavailable.load()) return {grpc::StatusCode::UNAVAILABLE, "this pod is failing"};
    reply->set_message(request->message());
    return grpc::Status::OK;
  }

  void stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_.reset();
  }
  const std::string& host() const { return host_; }
  int port() const { return port_; }

  // The connections calls came on so far ("ipv4:127.0.0.1:40122" each).
  std::set<std::string> peers() const {
    std::lock_guard lock(mu_);
    return peers_;
  }

  std::atomic<int> calls{0};
  std::atomic<int> delay_ms{0};
  std::atomic<bool> unavailable{false};

 private:
  Pod() = default;
  std::unique_ptr<grpc::Server> server_;
  std::string host_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::set<std::string> peers_;
};

// The established TCP connections of the server socket host:port (an IPv4 address), from
// /proc/net/tcp and /proc/net/tcp6 (grpc++ may serve an IPv4 address on a dual-stack socket: its
// connections show there, v4-mapped), as "client-address:port" strings.
inline std::set<std::string> established_connections(const std::string& host, int port) {
  in_addr want{};
  inet_pton(AF_INET, host.c_str(), &want);
  std::set<std::string> found;
  // The IPv4 address as /proc prints it: the 32-bit value in host order, 8 hex digits; in tcp6
  // a v4-mapped address is 0000000000000000FFFF0000 followed by those digits.
  auto ipv4_of = [](const std::string& hex) -> std::optional<uint32_t> {
    if (hex.size() == 8) return static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
    if (hex.size() == 32 && hex.compare(0, 24, "0000000000000000FFFF0000") == 0)
      return static_cast<uint32_t>(std::stoul(hex.substr(24), nullptr, 16));
    return std::nullopt;
  };
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // "  0: 0200007F:C35B 0100007F:9C40 01 ...": slot, local, remote, state.
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      if (!(fields >> slot >> local >> remote >> state) || state != "01") continue;
      const size_t lc = local.find(':'), rc = remote.find(':');
      if (lc == std::string::npos || rc == std::string::npos) continue;
      const auto local_ip = ipv4_of(local.substr(0, lc));
      const auto remote_ip = ipv4_of(remote.substr(0, rc));
      if (!local_ip || !remote_ip || *local_ip != want.s_addr ||
          std::stoi(local.substr(lc + 1), nullptr, 16) != port)
        continue;
      char text[INET_ADDRSTRLEN] = {};
      in_addr remote_addr{*remote_ip};
      inet_ntop(AF_INET, &remote_addr, text, sizeof text);
      found.insert(std::string(text) + ":" +
                   std::to_string(std::stoi(remote.substr(rc + 1), nullptr, 16)));
    }
  }
  return found;
}

// One Demo/Echo call on `channel` (through curfew), with a 10 s deadline.
inline grpc::Status echo_on(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = demo::Demo::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  demo::EchoRequest request;
  request.set_message("hi");
  demo::EchoReply reply;
  return stub->Echo(&ctx, request, &reply);
}

// Pods on 127.0.0.first .. 127.0.0.(first + n - 1), one port free on each address; empty when
// no such port was found in a few tries.
inline std::vector<std::unique_ptr<Pod>> start_pods(int n, int first = 2) {
  std::vector<std::unique_ptr<Pod>> pods;
  for (int attempt = 0; attempt < 20 && static_cast<int>(pods.size()) < n; ++attempt) {
    pods.clear();
    auto pod = Pod::start("127.0.0." + std::to_string(first), 0);
    if (!pod) continue;
    const int port = pod->port();
    pods.push_back(std::move(pod));
    for (int i = 1; i < n; ++i) {
      pod = Pod::start("127.0.0." + std::to_string(first + i), port);
      if (!pod) break;  // taken on that address: another port
      pods.push_back(std::move(pod));
    }
  }
  if (static_cast<int>(pods.size()) < n) pods.clear();
  return pods;
}

}  // namespace curfew::testing
