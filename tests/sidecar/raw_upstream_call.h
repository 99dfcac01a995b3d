// One unary call through curfew to a frame-by-frame upstream (raw_h2_upstream.h): the caller
// side of the tests that play such an upstream. A real grpc++ caller (generic stub), method
// /t.T/Echo, the reply's bytes kept.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "sidecar_fixture.h"

namespace curfew::testing {

// curfew (in-process, data_path: nghttp2, one worker) with one route, `all`, from listener
// `inbound` to upstream `up` at 127.0.0.1:`upstream_port`; `route_extra` / `upstream_extra` are
// appended inside the route's / upstream's flow mapping (", key: value"); `adjust` may then set
// what the config file may not (e.g. a keepalive shorter than its minimum). Null on failure.
inline std::unique_ptr<sidecar::Sidecar> start_to_raw_upstream(
    int upstream_port, const std::string& route_extra, const std::string& upstream_extra,
    sidecar::CallObserver* observer = nullptr, sidecar::ConnectionObserver* connections = nullptr,
    const std::function<void(config::Config&)>& adjust = {}) {
  auto config = config::load_config_string(
      "listeners:\n"
      "  - name: inbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - {name: all, match: {prefix: /}, upstream: up, timeout: 30s" +
          route_extra +
          "}\n"
          "upstreams:\n  - {name: up, endpoints: [127.0.0.1:" +
          std::to_string(upstream_port) + "]" + upstream_extra + "}\ndata_path: nghttp2\n",
      "raw_upstream.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  config->worker_threads = 1;
  if (adjust) adjust(*config);
  auto started = sidecar::Sidecar::start(*std::move(config), observer, connections);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? std::move(*started) : nullptr;
}

// A gRPC message (5-byte prefix) of `n` bytes.
inline std::string grpc_message(size_t n) {
  std::string payload(n, 'x');
  for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
  std::string m(5, '\0');
  m[1] = static_cast<char>(n >> 24);
  m[2] = static_cast<char>(n >> 16);
  m[3] = static_cast<char>(n >> 8);
  m[4] = static_cast<char>(n);
  return m + payload;
}

struct Result {
  grpc::Status status;
  std::string reply;
};

inline Result unary_call(int port, size_t bytes,
                         std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  grpc::GenericStub stub(channel_to(port));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  grpc::CompletionQueue cq;
  const std::string message = grpc_message(bytes).substr(5);
  grpc::Slice slice(message);
  auto call = stub.PrepareUnaryCall(&ctx, "/t.T/Echo", grpc::ByteBuffer(&slice, 1), &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  Result r;
  call->Finish(&reply, &r.status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  std::vector<grpc::Slice> slices;
  if (r.status.ok() && reply.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      r.reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return r;
}

}  // namespace curfew::testing
