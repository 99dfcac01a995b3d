// ClientCall: a generic (method-agnostic, bytes-only) client call through grpc::GenericStub, with
// each step an awaitable cancellation point. Cancelling the task that awaits any step cancels the
// RPC itself (ClientContext::TryCancel: the server sees RST_STREAM CANCEL).
//
//   ClientCall call(stub, "/pkg.Svc/Method", loop);
//   call.context().set_deadline(...);               // configure before start()
//   if (co_await call.start()) { co_await call.write(request, {}); co_await call.writes_done(); }
//   // or, one HTTP/2 write for headers + message + half-close:
//   call.start_corked(); co_await call.write_last(request);
//   while (co_await call.read(reply)) { ... }
//   grpc::Status status = co_await call.finish();
//
// One read and one write may be outstanding at once (from two tasks), as gRPC allows.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "runtime/clock.h"
#include "runtime/detail/grpc_op.h"
#include "runtime/loop.h"

namespace curfew::rt {

class ClientCall {
 public:
  ClientCall(grpc::GenericStub& stub, std::string method, Loop& loop)
      : stub_(stub), method_(std::move(method)), loop_(loop) {}
  ClientCall(const ClientCall&) = delete;
  ClientCall& operator=(const ClientCall&) = delete;

  // Metadata, deadline, compression... must be set before start().
  grpc::ClientContext& context() noexcept { return context_; }
  const std::string& method() const noexcept { return method_; }

  // Starts the call. false: the call is already dead; finish() tells why.
  auto start() {
    stream_ = stub_.PrepareCall(&context_, method_, &loop_.cq());
    return detail::grpc_op([this](void* tag) { stream_->StartCall(tag); }, cancellation_function());
  }
  // Starts the call WITHOUT sending anything yet (gRPC's corked initial metadata): the call's
  // headers leave together with the first write(), write_last() or writes_done(), in one HTTP/2
  // write instead of two. Nothing to await. Use it only when a message or the half-close follows
  // at once: until then the server does not even see the call.
  void start_corked() {
    context_.set_initial_metadata_corked(true);
    stream_ = stub_.PrepareCall(&context_, method_, &loop_.cq());
    stream_->StartCall(nullptr);  // corked: no operation is performed, no tag comes back
  }
  // Waits for the server's initial metadata (then in context().GetServerInitialMetadata()).
  auto read_initial_metadata() {
    return detail::grpc_op([this](void* tag) { stream_->ReadInitialMetadata(tag); },
                           cancellation_function());
  }
  // Reads the next message into `message`; false when the server has no more.
  auto read(grpc::ByteBuffer& message) {
    return detail::grpc_op([this, &message](void* tag) { stream_->Read(&message, tag); },
                           cancellation_function());
  }
  // Sends `message`; false when the call is dead.
  auto write(const grpc::ByteBuffer& message, grpc::WriteOptions options = {}) {
    return detail::grpc_op(
        [this, &message, options](void* tag) { stream_->Write(message, options, tag); },
        cancellation_function());
  }
  // Sends `message` and half-closes the request side in ONE operation (write() then
  // writes_done() take two HTTP/2 writes).
  auto write_last(const grpc::ByteBuffer& message, grpc::WriteOptions options = {}) {
    return detail::grpc_op(
        [this, &message, options](void* tag) { stream_->WriteLast(message, options, tag); },
        cancellation_function());
  }
  // Half-closes the request side.
  auto writes_done() {
    return detail::grpc_op([this](void* tag) { stream_->WritesDone(tag); },
                           cancellation_function());
  }
  // Waits for the call's status (trailers in context().GetServerTrailingMetadata()).
  auto finish() {
    return detail::StatusOp<FinishInitFunction, CancellationFunction>{
        status_, detail::grpc_op(FinishInitFunction{this}, cancellation_function())};
  }

  // Cancels the call now (RST_STREAM CANCEL to the server).
  void cancel() noexcept { cancellation_function()(); }

  // When the call was first cancelled (by cancel() or by cancelling an awaiting task), if ever.
  std::optional<TimePoint> cancelled_at() const noexcept { return cancelled_at_; }

  // The status from the last finish().
  const grpc::Status& status() const noexcept { return status_; }

 private:
  struct CancellationFunction {  // interrupts the pending operation: RST_STREAM CANCEL
    ClientCall* call;
    void operator()() const noexcept {
      if (!call->cancelled_at_) call->cancelled_at_ = Clock::now();
      call->context_.TryCancel();
    }
  };
  struct FinishInitFunction {
    ClientCall* call;
    void operator()(void* tag) const { call->stream_->Finish(&call->status_, tag); }
  };
  // finish() yields the Status rather than gRPC's `ok` (always true for Finish).
  CancellationFunction cancellation_function() noexcept { return CancellationFunction{this}; }

  grpc::GenericStub& stub_;
  std::string method_;
  Loop& loop_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream_;
  grpc::Status status_;
  std::optional<TimePoint> cancelled_at_;
};

}  // namespace curfew::rt
