#include "interop_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <utility>

#include "grpc/testing/empty.pb.h"
#include "grpc/testing/messages.pb.h"
#include "grpc/testing/test.grpc.pb.h"
#include "interop_checks.h"

namespace curfew::testing {
namespace {

using grpc::ClientContext;
using grpc::Status;
using grpc::StatusCode;
using grpc::testing::Empty;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;
using grpc::testing::StreamingInputCallRequest;
using grpc::testing::StreamingInputCallResponse;
using grpc::testing::StreamingOutputCallRequest;
using grpc::testing::StreamingOutputCallResponse;
using grpc::testing::TestService;

// A case returns an empty string on success, or why it failed.
using CaseFn = std::function<std::string(const std::shared_ptr<grpc::Channel>&)>;

// Every call's deadline unless the case sets its own: generous, but bounded so nothing hangs.
constexpr std::chrono::seconds kCallTimeout{10};
// large_unary_16mb copies 64 MiB or so through the stack; leave sanitizer builds room.
constexpr std::chrono::seconds kLargeCallTimeout{30};

constexpr int kLargeRequestSize = 271828;
constexpr int kLargeResponseSize = 314159;
constexpr int kHugeMessageSize = 16 * 1024 * 1024;
constexpr int kRequestSizes[] = {27182, 8, 1828, 45904};
constexpr int kResponseSizes[] = {31415, 9, 2653, 58979};

constexpr char kEchoInitialKey[] = "x-grpc-test-echo-initial";
constexpr char kEchoInitialValue[] = "test_initial_metadata_value";
constexpr char kEchoTrailingKey[] = "x-grpc-test-echo-trailing-bin";
constexpr char kEchoTrailingValue[] = "\xab\xab\xab";

constexpr char kStatusMessage[] = "test status message";
constexpr char kSpecialStatusMessage[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \U0001F608\t\n";

void SetDeadline(ClientContext& ctx, std::chrono::milliseconds timeout = kCallTimeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

std::string Zeros(int size) { return std::string(static_cast<size_t>(size), '\0'); }

// A full-duplex request asking for one response of `response_size` bytes.
StreamingOutputCallRequest DuplexRequest(int response_size, int payload_size) {
  StreamingOutputCallRequest request;
  request.add_response_parameters()->set_size(response_size);
  request.mutable_payload()->set_body(Zeros(payload_size));
  return request;
}

// A stream whose Write() or Read() failed is already over: report the status it ended with,
// which usually says why.
template <typename Stream>
std::string EndedEarly(Stream& stream, std::string failure) {
  const Status status = stream.Finish();
  return failure + " (call ended with " + DescribeStatus(status) + ")";
}

// Gives up on a stream that is still live: cancels it first so Finish() cannot wait on a server
// that still has something to send, and nothing is left running.
template <typename Stream>
std::string Abandon(ClientContext& ctx, Stream& stream, std::string failure) {
  ctx.TryCancel();
  stream.Finish();
  return failure;
}

// ---- The cases, in the order doc/interop-test-descriptions.md lists them. ----

std::string EmptyUnary(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  Empty response;
  // A C++ response is never null; success is the assertion.
  return ExpectOk(stub->EmptyCall(&ctx, Empty(), &response), "EmptyCall");
}

// Shared by large_unary and large_unary_16mb: `request_size` zeros up, `response_size` zeros down.
std::string LargeUnaryOfSize(const std::shared_ptr<grpc::Channel>& channel, int request_size,
                             int response_size, std::chrono::seconds timeout) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx, timeout);
  SimpleRequest request;
  request.set_response_size(response_size);
  request.mutable_payload()->set_body(Zeros(request_size));
  SimpleResponse response;
  CURFEW_INTEROP_CHECK(ExpectOk(stub->UnaryCall(&ctx, request, &response), "UnaryCall"));
  return ExpectZeros(response.payload(), static_cast<size_t>(response_size), "UnaryCall response");
}

std::string LargeUnary(const std::shared_ptr<grpc::Channel>& channel) {
  return LargeUnaryOfSize(channel, kLargeRequestSize, kLargeResponseSize, kCallTimeout);
}

std::string ClientStreaming(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  StreamingInputCallResponse response;
  auto stream = stub->StreamingInputCall(&ctx, &response);
  for (const int size : kRequestSizes) {
    StreamingInputCallRequest request;
    request.mutable_payload()->set_body(Zeros(size));
    if (!stream->Write(request)) {
      return EndedEarly(*stream,
                        "StreamingInputCall: write of " + std::to_string(size) + " bytes failed");
    }
  }
  stream->WritesDone();
  CURFEW_INTEROP_CHECK(ExpectOk(stream->Finish(), "StreamingInputCall"));
  return Expect(response.aggregated_payload_size() == 74922,
                "StreamingInputCall: expected aggregated_payload_size 74922, got " +
                    std::to_string(response.aggregated_payload_size()));
}

std::string ServerStreaming(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  StreamingOutputCallRequest request;
  for (const int size : kResponseSizes) request.add_response_parameters()->set_size(size);
  auto stream = stub->StreamingOutputCall(&ctx, request);
  std::vector<StreamingOutputCallResponse> responses;
  StreamingOutputCallResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  CURFEW_INTEROP_CHECK(ExpectOk(stream->Finish(), "StreamingOutputCall"));
  CURFEW_INTEROP_CHECK(
      Expect(responses.size() == std::size(kResponseSizes),
             "StreamingOutputCall: expected 4 responses, got " + std::to_string(responses.size())));
  for (size_t i = 0; i < responses.size(); ++i) {
    CURFEW_INTEROP_CHECK(ExpectZeros(responses[i].payload(), kResponseSizes[i],
                                     "StreamingOutputCall response " + std::to_string(i)));
  }
  return {};
}

std::string PingPong(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  auto stream = stub->FullDuplexCall(&ctx);
  for (size_t i = 0; i < std::size(kRequestSizes); ++i) {
    const std::string step = "FullDuplexCall message " + std::to_string(i);
    if (!stream->Write(DuplexRequest(kResponseSizes[i], kRequestSizes[i]))) {
      return EndedEarly(*stream, step + ": write failed");
    }
    StreamingOutputCallResponse response;
    if (!stream->Read(&response)) return EndedEarly(*stream, step + ": no response");
    if (std::string failure = ExpectZeros(response.payload(), kResponseSizes[i], step);
        !failure.empty()) {
      return Abandon(ctx, *stream, failure);
    }
  }
  stream->WritesDone();
  StreamingOutputCallResponse extra;
  if (stream->Read(&extra)) return Abandon(ctx, *stream, "FullDuplexCall: a fifth response");
  return ExpectOk(stream->Finish(), "FullDuplexCall");
}

std::string EmptyStream(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  auto stream = stub->FullDuplexCall(&ctx);
  stream->WritesDone();
  StreamingOutputCallResponse response;
  if (stream->Read(&response)) {
    return Abandon(ctx, *stream, "FullDuplexCall: expected zero responses, got one");
  }
  return ExpectOk(stream->Finish(), "FullDuplexCall");
}

// Attaches the two echo keys the Echo Metadata server feature reflects.
void AddEchoMetadata(ClientContext& ctx) {
  ctx.AddMetadata(kEchoInitialKey, kEchoInitialValue);
  ctx.AddMetadata(kEchoTrailingKey, kEchoTrailingValue);
}

// Both echoed keys came back: one in the initial metadata, one in the trailers.
std::string ExpectEchoedMetadata(const ClientContext& ctx, const std::string& what) {
  CURFEW_INTEROP_CHECK(ExpectMetadata(ctx.GetServerInitialMetadata(), kEchoInitialKey,
                                      kEchoInitialValue, what + " initial metadata"));
  return ExpectMetadata(ctx.GetServerTrailingMetadata(), kEchoTrailingKey, kEchoTrailingValue,
                        what + " trailing metadata");
}

std::string CustomMetadata(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  {
    ClientContext ctx;
    SetDeadline(ctx);
    AddEchoMetadata(ctx);
    SimpleRequest request;
    request.set_response_size(kLargeResponseSize);
    request.mutable_payload()->set_body(Zeros(kLargeRequestSize));
    SimpleResponse response;
    CURFEW_INTEROP_CHECK(ExpectOk(stub->UnaryCall(&ctx, request, &response), "UnaryCall"));
    CURFEW_INTEROP_CHECK(ExpectEchoedMetadata(ctx, "UnaryCall"));
  }
  {
    ClientContext ctx;
    SetDeadline(ctx);
    AddEchoMetadata(ctx);
    auto stream = stub->FullDuplexCall(&ctx);
    if (!stream->Write(DuplexRequest(kLargeResponseSize, kLargeRequestSize))) {
      return EndedEarly(*stream, "FullDuplexCall: write failed");
    }
    stream->WritesDone();
    StreamingOutputCallResponse response;
    while (stream->Read(&response)) {
    }
    CURFEW_INTEROP_CHECK(ExpectOk(stream->Finish(), "FullDuplexCall"));
    CURFEW_INTEROP_CHECK(ExpectEchoedMetadata(ctx, "FullDuplexCall"));
  }
  return {};
}

std::string StatusCodeAndMessage(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  constexpr auto kCode = StatusCode::UNKNOWN;  // 2
  {
    ClientContext ctx;
    SetDeadline(ctx);
    SimpleRequest request;
    request.mutable_response_status()->set_code(static_cast<int>(kCode));
    request.mutable_response_status()->set_message(kStatusMessage);
    SimpleResponse response;
    CURFEW_INTEROP_CHECK(ExpectStatus(stub->UnaryCall(&ctx, request, &response), kCode,
                                      kStatusMessage, "UnaryCall"));
  }
  {
    ClientContext ctx;
    SetDeadline(ctx);
    auto stream = stub->FullDuplexCall(&ctx);
    StreamingOutputCallRequest request;
    request.mutable_response_status()->set_code(static_cast<int>(kCode));
    request.mutable_response_status()->set_message(kStatusMessage);
    // A failed write just means the status is already on its way; Finish() reports it.
    stream->Write(request);
    stream->WritesDone();
    StreamingOutputCallResponse response;
    while (stream->Read(&response)) {
    }
    CURFEW_INTEROP_CHECK(ExpectStatus(stream->Finish(), kCode, kStatusMessage, "FullDuplexCall"));
  }
  return {};
}

std::string SpecialStatusMessage(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  constexpr auto kCode = StatusCode::UNKNOWN;  // 2
  ClientContext ctx;
  SetDeadline(ctx);
  SimpleRequest request;
  request.mutable_response_status()->set_code(static_cast<int>(kCode));
  request.mutable_response_status()->set_message(kSpecialStatusMessage);
  SimpleResponse response;
  return ExpectStatus(stub->UnaryCall(&ctx, request, &response), kCode, kSpecialStatusMessage,
                      "UnaryCall");
}

std::string UnimplementedMethod(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  Empty response;
  return ExpectCode(stub->UnimplementedCall(&ctx, Empty(), &response), StatusCode::UNIMPLEMENTED,
                    "TestService/UnimplementedCall");
}

std::string UnimplementedService(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::testing::UnimplementedService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  Empty response;
  return ExpectCode(stub->UnimplementedCall(&ctx, Empty(), &response), StatusCode::UNIMPLEMENTED,
                    "UnimplementedService/UnimplementedCall");
}

std::string CancelAfterBegin(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  StreamingInputCallResponse response;
  auto stream = stub->StreamingInputCall(&ctx, &response);
  ctx.TryCancel();
  return ExpectCode(stream->Finish(), StatusCode::CANCELLED, "StreamingInputCall");
}

std::string CancelAfterFirstResponse(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx);
  auto stream = stub->FullDuplexCall(&ctx);
  if (!stream->Write(DuplexRequest(31415, 27182))) {
    return EndedEarly(*stream, "FullDuplexCall: write failed");
  }
  StreamingOutputCallResponse response;
  if (!stream->Read(&response)) {
    return EndedEarly(*stream, "FullDuplexCall: no response to cancel after");
  }
  ctx.TryCancel();
  return ExpectCode(stream->Finish(), StatusCode::CANCELLED, "FullDuplexCall");
}

std::string TimeoutOnSleepingServer(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = TestService::NewStub(channel);
  ClientContext ctx;
  SetDeadline(ctx, std::chrono::milliseconds(1));
  auto stream = stub->FullDuplexCall(&ctx);
  StreamingOutputCallRequest request;
  request.mutable_payload()->set_body(Zeros(27182));
  // The write may already fail because the deadline passed; the status is what the case checks.
  stream->Write(request);
  return ExpectCode(stream->Finish(), StatusCode::DEADLINE_EXCEEDED, "FullDuplexCall");
}

// Not in the description: large_unary at 16 MiB each way, beyond gRPC's 4 MiB default receive
// limit, to check a proxy neither truncates large messages nor drops the raised limits.
std::string LargeUnary16Mb(const std::shared_ptr<grpc::Channel>& channel) {
  return LargeUnaryOfSize(channel, kHugeMessageSize, kHugeMessageSize, kLargeCallTimeout);
}

const std::vector<std::pair<std::string, CaseFn>>& Cases() {
  static const auto* cases = new std::vector<std::pair<std::string, CaseFn>>{
      {"empty_unary", EmptyUnary},
      {"large_unary", LargeUnary},
      {"client_streaming", ClientStreaming},
      {"server_streaming", ServerStreaming},
      {"ping_pong", PingPong},
      {"empty_stream", EmptyStream},
      {"custom_metadata", CustomMetadata},
      {"status_code_and_message", StatusCodeAndMessage},
      {"special_status_message", SpecialStatusMessage},
      {"unimplemented_method", UnimplementedMethod},
      {"unimplemented_service", UnimplementedService},
      {"cancel_after_begin", CancelAfterBegin},
      {"cancel_after_first_response", CancelAfterFirstResponse},
      {"timeout_on_sleeping_server", TimeoutOnSleepingServer},
      {"large_unary_16mb", LargeUnary16Mb},
  };
  return *cases;
}

}  // namespace

grpc::ChannelArguments InteropChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kInteropMaxMessageBytes);
  args.SetMaxSendMessageSize(kInteropMaxMessageBytes);
  return args;
}

std::shared_ptr<grpc::Channel> CreateInteropChannel(const std::string& target) {
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   InteropChannelArguments());
}

std::vector<std::string> InteropCaseNames() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : Cases()) names.push_back(name);
  return names;
}

InteropResult RunInteropCase(const std::string& name, std::shared_ptr<grpc::Channel> channel) {
  for (const auto& [case_name, fn] : Cases()) {
    if (case_name != name) continue;
    const auto start = std::chrono::steady_clock::now();
    std::string failure = fn(channel);
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (!failure.empty()) return {name, false, std::move(failure)};
    return {name, true, "passed in " + std::to_string(elapsed.count()) + " ms"};
  }
  return {name, false, "unknown interop case \"" + name + "\""};
}

}  // namespace curfew::testing
