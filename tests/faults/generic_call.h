// One unary call to any method path, bytes in and out, on the completion-queue API (gRPC's
// callback API hands the status over on its own threads, which TSan cannot see through in the
// uninstrumented library). Bounded by a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

namespace curfew::testing {

inline grpc::Status generic_call(grpc::GenericStub& stub, const std::string& method,
                                 const std::function<void(grpc::ClientContext&)>& setup = {}) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (setup) setup(ctx);
  grpc::Slice empty("");
  const grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);  // the call's deadline bounds the wait
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

}  // namespace curfew::testing
