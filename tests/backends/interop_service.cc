#include "interop_service.h"

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sleep_unless_cancelled.h"

namespace curfew::testing {
namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using grpc::testing::EchoStatus;
using grpc::testing::Payload;
using grpc::testing::PayloadType;
using grpc::testing::ResponseParameters;
using grpc::testing::StreamingOutputCallRequest;
using grpc::testing::StreamingOutputCallResponse;

constexpr char kEchoInitialKey[] = "x-grpc-test-echo-initial";
constexpr char kEchoTrailingKey[] = "x-grpc-test-echo-trailing-bin";

// Counts the call on entry and, on exit, whether it had been cancelled by then.
class CallScope {
 public:
  CallScope(ServerContext* ctx, InteropServiceStats* stats) : ctx_(ctx), stats_(stats) {
    stats_->calls_started.fetch_add(1);
  }
  ~CallScope() {
    if (ctx_->IsCancelled()) stats_->cancellations_observed.fetch_add(1);
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

 private:
  ServerContext* const ctx_;
  InteropServiceStats* const stats_;
};

// After a Read() that failed, tells a half-close from a cancellation. The sync API learns of a
// cancellation through a separate notification that can trail the failed Read() by a moment, so
// give it that moment (bounded) before calling the stream complete.
bool CancelledAfterFailedRead(ServerContext* ctx) {
  for (int i = 0; i < 50; ++i) {
    if (ctx->IsCancelled()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return ctx->IsCancelled();
}

// Echo Metadata: the two magic keys come back verbatim, one as initial and one as trailing
// metadata. Binary (-bin) values arrive decoded and are re-encoded by gRPC on the way out.
void EchoMetadata(ServerContext* ctx) {
  const auto& metadata = ctx->client_metadata();
  if (auto it = metadata.find(kEchoInitialKey); it != metadata.end()) {
    ctx->AddInitialMetadata(kEchoInitialKey, std::string(it->second.data(), it->second.size()));
  }
  if (auto it = metadata.find(kEchoTrailingKey); it != metadata.end()) {
    ctx->AddTrailingMetadata(kEchoTrailingKey, std::string(it->second.data(), it->second.size()));
  }
}

// Echo Status: end the call with exactly the code and message the client asked for.
Status EchoedStatus(const EchoStatus& echo) {
  return Status(static_cast<StatusCode>(echo.code()), echo.message());
}

// A payload of `size` zero bytes. COMPRESSABLE is the only payload type test.proto still defines;
// anything else is rejected with INVALID_ARGUMENT, as the UnaryCall feature requires.
Status FillPayload(PayloadType type, int size, Payload* payload) {
  if (type != grpc::testing::COMPRESSABLE) {
    return Status(StatusCode::INVALID_ARGUMENT, "unsupported response_type");
  }
  if (size < 0) return Status(StatusCode::INVALID_ARGUMENT, "negative payload size");
  payload->set_type(type);
  payload->mutable_body()->assign(static_cast<size_t>(size), '\0');
  return Status::OK;
}

// CompressedResponse for server streaming: compress the call if any response asks for it; the
// responses that ask not to be compressed opt out per message (see SendResponse). Must run before
// the first write, because the algorithm travels in the initial metadata.
void CompressIfAnyResponseAsks(ServerContext* ctx, const StreamingOutputCallRequest& request) {
  for (const ResponseParameters& params : request.response_parameters()) {
    if (params.compressed().value()) {
      ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
      return;
    }
  }
}

// Sends the response described by `params`: first sleeps interval_us (the spec makes it a pause
// *before* each response, accumulating from one response to the next), then writes a payload of
// params.size() bytes. A non-OK result means the call is over and the handler should return it.
template <typename Writer>
Status SendResponse(ServerContext* ctx, Writer* writer, PayloadType type,
                    const ResponseParameters& params) {
  if (params.interval_us() > 0 &&
      !SleepUnlessCancelled(ctx, std::chrono::microseconds(params.interval_us()))) {
    return Status(StatusCode::CANCELLED, "call cancelled while pacing responses");
  }
  StreamingOutputCallResponse response;
  if (Status s = FillPayload(type, params.size(), response.mutable_payload()); !s.ok()) return s;
  grpc::WriteOptions options;
  if (params.has_compressed() && !params.compressed().value()) options.set_no_compression();
  if (!writer->Write(response, options)) {
    return Status(StatusCode::CANCELLED, "response could not be written: the call is gone");
  }
  return Status::OK;
}

// One request's worth of responses, or its echoed status.
template <typename Writer>
Status Answer(ServerContext* ctx, Writer* writer, const StreamingOutputCallRequest& request) {
  if (request.has_response_status()) return EchoedStatus(request.response_status());
  for (const ResponseParameters& params : request.response_parameters()) {
    if (Status s = SendResponse(ctx, writer, request.response_type(), params); !s.ok()) return s;
  }
  return Status::OK;
}

}  // namespace

Status InteropService::EmptyCall(ServerContext* ctx, const grpc::testing::Empty*,
                                 grpc::testing::Empty*) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  return Status::OK;
}

Status InteropService::UnaryCall(ServerContext* ctx, const grpc::testing::SimpleRequest* request,
                                 grpc::testing::SimpleResponse* response) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  if (request->has_response_compressed()) {
    ctx->set_compression_algorithm(request->response_compressed().value() ? GRPC_COMPRESS_GZIP
                                                                          : GRPC_COMPRESS_NONE);
  }
  if (Status s = FillPayload(request->response_type(), request->response_size(),
                             response->mutable_payload());
      !s.ok()) {
    return s;
  }
  if (request->fill_server_id()) response->set_server_id(server_id_);
  if (request->has_response_status()) return EchoedStatus(request->response_status());
  return Status::OK;
}

Status InteropService::CacheableUnaryCall(ServerContext* ctx, const grpc::testing::SimpleRequest*,
                                          grpc::testing::SimpleResponse* response) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  // A payload that differs on every call, and headers that let a caching proxy serve it again.
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  response->mutable_payload()->set_type(grpc::testing::COMPRESSABLE);
  response->mutable_payload()->set_body(
      std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()));
  ctx->AddInitialMetadata("cache-control", "max-age=60, public");
  return Status::OK;
}

Status InteropService::StreamingOutputCall(
    ServerContext* ctx, const StreamingOutputCallRequest* request,
    grpc::ServerWriter<StreamingOutputCallResponse>* writer) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  CompressIfAnyResponseAsks(ctx, *request);
  return Answer(ctx, writer, *request);
}

Status InteropService::StreamingInputCall(
    ServerContext* ctx, grpc::ServerReader<grpc::testing::StreamingInputCallRequest>* reader,
    grpc::testing::StreamingInputCallResponse* response) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  grpc::testing::StreamingInputCallRequest request;
  int64_t total = 0;
  while (reader->Read(&request)) total += static_cast<int64_t>(request.payload().body().size());
  // Read() also stops when the call is cancelled; only a half-close earns a response.
  if (CancelledAfterFailedRead(ctx)) return Status(StatusCode::CANCELLED, "call cancelled");
  response->set_aggregated_payload_size(static_cast<int32_t>(total));
  return Status::OK;
}

Status InteropService::FullDuplexCall(
    ServerContext* ctx,
    grpc::ServerReaderWriter<StreamingOutputCallResponse, StreamingOutputCallRequest>* stream) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  // Each request is answered as soon as it arrives; a response_status ends the call at once and
  // later requests are not processed.
  StreamingOutputCallRequest request;
  while (stream->Read(&request)) {
    if (Status s = Answer(ctx, stream, request); !s.ok() || request.has_response_status()) return s;
  }
  if (CancelledAfterFailedRead(ctx)) return Status(StatusCode::CANCELLED, "call cancelled");
  return Status::OK;
}

Status InteropService::HalfDuplexCall(
    ServerContext* ctx,
    grpc::ServerReaderWriter<StreamingOutputCallResponse, StreamingOutputCallRequest>* stream) {
  CallScope scope(ctx, stats_);
  EchoMetadata(ctx);
  // Buffer every request until the client half-closes, then answer them in order.
  std::vector<StreamingOutputCallRequest> requests;
  StreamingOutputCallRequest request;
  while (stream->Read(&request)) requests.push_back(request);
  if (CancelledAfterFailedRead(ctx)) return Status(StatusCode::CANCELLED, "call cancelled");
  for (const StreamingOutputCallRequest& buffered : requests) {
    if (Status s = Answer(ctx, stream, buffered); !s.ok() || buffered.has_response_status()) {
      return s;
    }
  }
  return Status::OK;
}

Status InteropService::UnimplementedCall(ServerContext* ctx, const grpc::testing::Empty*,
                                         grpc::testing::Empty*) {
  CallScope scope(ctx, stats_);
  return Status(StatusCode::UNIMPLEMENTED, "UnimplementedCall is deliberately not implemented");
}

}  // namespace curfew::testing
