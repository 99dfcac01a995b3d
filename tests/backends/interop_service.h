// grpc.testing.TestService, implemented as the "Server" section of grpc/grpc's
// doc/interop-test-descriptions.md describes it, on the synchronous gRPC API.
//
// Server features: EmptyCall, UnaryCall, CacheableUnaryCall, StreamingInputCall,
// StreamingOutputCall, FullDuplexCall, HalfDuplexCall, Echo Status, Echo Metadata, Observe
// ResponseParameters.interval_us, CompressedResponse (server-side compression on request).
// Not implemented: CompressedRequest (a sync handler cannot see whether a request arrived
// compressed, so expect_compressed is ignored) and the auth echoes (no credentials here).
// UnimplementedCall answers UNIMPLEMENTED, as the interop cases require.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>

#include "grpc/testing/test.grpc.pb.h"

namespace curfew::testing {

// What the service saw, for tests that check how a proxy treated the backend side of a call.
struct InteropServiceStats {
  // Handlers entered.
  std::atomic<int> calls_started{0};
  // Handlers that found their call cancelled by the time they returned: the client cancelled,
  // the deadline expired, or the server shut down underneath it.
  std::atomic<int> cancellations_observed{0};
};

class InteropService final : public grpc::testing::TestService::Service {
 public:
  // `server_id` is reported to clients that set fill_server_id; `stats` must outlive the service.
  InteropService(std::string server_id, InteropServiceStats* stats)
      : server_id_(std::move(server_id)), stats_(stats) {}

  grpc::Status EmptyCall(grpc::ServerContext* ctx, const grpc::testing::Empty* request,
                         grpc::testing::Empty* response) override;
  grpc::Status UnaryCall(grpc::ServerContext* ctx, const grpc::testing::SimpleRequest* request,
                         grpc::testing::SimpleResponse* response) override;
  grpc::Status CacheableUnaryCall(grpc::ServerContext* ctx,
                                  const grpc::testing::SimpleRequest* request,
                                  grpc::testing::SimpleResponse* response) override;
  grpc::Status StreamingOutputCall(
      grpc::ServerContext* ctx, const grpc::testing::StreamingOutputCallRequest* request,
      grpc::ServerWriter<grpc::testing::StreamingOutputCallResponse>* writer) override;
  grpc::Status StreamingInputCall(
      grpc::ServerContext* ctx,
      grpc::ServerReader<grpc::testing::StreamingInputCallRequest>* reader,
      grpc::testing::StreamingInputCallResponse* response) override;
  grpc::Status FullDuplexCall(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<grpc::testing::StreamingOutputCallResponse,
                               grpc::testing::StreamingOutputCallRequest>* stream) override;
  grpc::Status HalfDuplexCall(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<grpc::testing::StreamingOutputCallResponse,
                               grpc::testing::StreamingOutputCallRequest>* stream) override;
  grpc::Status UnimplementedCall(grpc::ServerContext* ctx, const grpc::testing::Empty* request,
                                 grpc::testing::Empty* response) override;

 private:
  const std::string server_id_;
  InteropServiceStats* const stats_;
};

}  // namespace curfew::testing
