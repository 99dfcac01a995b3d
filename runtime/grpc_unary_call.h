// UnaryCall: a generic unary client call in ONE completion-queue operation (GenericStub's
// PrepareUnaryCall: start, send, half-close, receive and status in a single batch). Cancelling
// the awaiting task cancels the RPC (TryCancel: RST_STREAM CANCEL).
//
//   UnaryCall call(stub, "/pkg.Svc/Method", request, loop);
//   call.context().set_deadline(...);
//   grpc::Status status = co_await call.finish();   // response in call.response()
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

class UnaryCall {
 public:
  UnaryCall(grpc::GenericStub& stub, std::string method, const grpc::ByteBuffer& request,
            Loop& loop)
      : stub_(stub), method_(std::move(method)), request_(request), loop_(loop) {}
  UnaryCall(const UnaryCall&) = delete;
  UnaryCall& operator=(const UnaryCall&) = delete;

  // Metadata and deadline must be set before finish().
  grpc::ClientContext& context() noexcept { return context_; }

  // Runs the call; yields its status (the response is in response()).
  auto finish() {
    return detail::StatusOp<InitFunction, CancellationFunction>{
        status_, detail::grpc_op(InitFunction{this}, CancellationFunction{this})};
  }

  grpc::ByteBuffer& response() noexcept { return response_; }
  const grpc::Status& status() const noexcept { return status_; }

  // Cancels the call now.
  void cancel() noexcept { CancellationFunction{this}(); }
  std::optional<TimePoint> cancelled_at() const noexcept { return cancelled_at_; }

 private:
  struct InitFunction {
    UnaryCall* call;
    void operator()(void* tag) const {
      call->reader_ = call->stub_.PrepareUnaryCall(&call->context_, call->method_, call->request_,
                                                   &call->loop_.cq());
      call->reader_->StartCall();
      call->reader_->Finish(&call->response_, &call->status_, tag);
    }
  };
  struct CancellationFunction {
    UnaryCall* call;
    void operator()() const noexcept {
      if (!call->cancelled_at_) call->cancelled_at_ = Clock::now();
      call->context_.TryCancel();
    }
  };

  grpc::GenericStub& stub_;
  std::string method_;
  const grpc::ByteBuffer& request_;
  Loop& loop_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader_;
  grpc::ByteBuffer response_;
  grpc::Status status_;
  std::optional<TimePoint> cancelled_at_;
};

}  // namespace curfew::rt
