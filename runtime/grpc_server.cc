#include "runtime/grpc_server.h"

#include <cassert>
#include <utility>

#include <grpc/grpc.h>

namespace curfew::rt {

// ---- ServerCall ----------------------------------------------------------------------------

ServerCall::ServerCall(Loop& loop) : loop_(loop) {
  // Must precede RequestCall; only fires for a call that was actually accepted.
  context_.AsyncNotifyWhenDone(static_cast<Completion*>(&done_tag_));
}

void ServerCall::WriteInitFunction::operator()(void* tag) const {
  call->send_started(nullptr);
  call->stream_.Write(*message, options, tag);
}

void ServerCall::FinishInitFunction::operator()(void* tag) const {
  call->send_started(&status);
  call->stream_.Finish(status, tag);
}

void ServerCall::WriteAndFinishInitFunction::operator()(void* tag) const {
  call->send_started(&status);
  call->stream_.WriteAndFinish(*message, options, status, tag);
}

void ServerCall::send_started(const grpc::Status* status) noexcept {
  ++sends_in_flight_;
  if (status != nullptr) {
    finish_started_ = true;
    sent_code_ = status->error_code();
  }
}

void ServerCall::send_completed() noexcept {
  if (--sends_in_flight_ > 0) return;
  loop_.timers().remove(stuck_send_timer_);
  // An interruption that waited for the send: carry it out now (a read still pending for the
  // caller completes once the status is sent). A finish that went out needs nothing more.
  if (std::exchange(interrupt_deferred_, false) && !finish_started_) interrupt_now();
}

bool ServerCall::caller_half_closed() noexcept {
  // A cancellation already reported settles it. Otherwise the transport's flag, set when the
  // read ended without END_STREAM (RST_STREAM, a lost connection, the call cancelled): exactly
  // "no half-close".
  if (done_ && context_.IsCancelled()) return false;
  return grpc_call_failed_before_recv_message(context_.c_call()) == 0;
}

void ServerCall::interrupt_now() noexcept {
  if (sends_in_flight_ > 0) {
    // See the file comment: complete what is on its way rather than cut a message short.
    interrupt_deferred_ = true;
    if (!stuck_send_timer_.scheduled()) {
      loop_.timers().add(stuck_send_timer_, Clock::now() + kStuckWriteLimit);
    }
    return;
  }
  if (!finish_started_ && interrupt_status_) {
    // Answer the caller properly (e.g. DEADLINE_EXCEEDED); pending reads then complete.
    const grpc::Status status = interrupt_status_();
    finish_started_ = true;
    sent_code_ = status.error_code();
    interrupt_finish_pending_ = true;
    void* tag = static_cast<Completion*>(&interrupt_finish_tag_);
    loop_.tag_started(tag);
    stream_.Finish(status, tag);
    return;
  }
  context_.TryCancel();
}

void ServerCall::on_accepted(bool ok) {
  accepted_ = ok;
  if (ok) loop_.tag_started(static_cast<Completion*>(&done_tag_));  // now it will fire
  if (acceptor_ != nullptr) {
    acceptor_->accepted(ok);
    return;
  }
  // Abandoned slot.
  if (ok) context_.TryCancel();
  released_ = true;
  maybe_delete();
}

void ServerCall::on_done(bool) {
  done_ = true;
  // Once the status is on its way (a finish started, by the handler or by an interruption), the
  // caller going away changes nothing: the finish completes either way. Cancelling the task then
  // would only turn, say, a deadline the caller was told about into a "caller cancelled" (gRPC
  // reports a call finished before the caller half-closed as cancelled).
  if (!released_ && bound_task_ != nullptr && !finish_started_ && context_.IsCancelled()) {
    bound_task_->cancel("caller cancelled");
  }
  maybe_delete();
}

void ServerCall::on_interrupt_finished(bool) {
  interrupt_finish_pending_ = false;
  maybe_delete();
}

void ServerCall::release() noexcept {
  released_ = true;
  bound_task_ = nullptr;
  if (accepted_ && !done_ && !finish_started_) context_.TryCancel();
  maybe_delete();
}

void ServerCall::maybe_delete() noexcept {
  if (!released_) return;
  if (accepted_ && !done_) return;  // the done tag is still due
  if (interrupt_finish_pending_) return;
  loop_.timers().remove(stuck_send_timer_);
  delete this;
}

void detail::ServerCallRelease::operator()(ServerCall* call) const noexcept { call->release(); }

// ---- AcceptAwaiter -------------------------------------------------------------------------

AcceptAwaiter::AcceptAwaiter(grpc::AsyncGenericService& service, Loop& loop)
    : service_(service), loop_(loop) {}

AcceptAwaiter::~AcceptAwaiter() = default;

void AcceptAwaiter::start() {
  assert(loop_.server_cq() != nullptr && "accept() needs a loop built with a ServerBuilder");
  call_ = new ServerCall(loop_);
  call_->acceptor_ = this;
  void* tag = static_cast<Completion*>(&call_->accept_tag_);
  loop_.tag_started(tag);
  service_.RequestCall(&call_->context_, &call_->stream_, &loop_.cq(), loop_.server_cq(), tag);
}

void AcceptAwaiter::accepted(bool ok) {
  ok_ = ok;
  call_->acceptor_ = nullptr;
  waiter_.resume();
}

void AcceptAwaiter::cancel() noexcept {
  // RequestCall cannot be withdrawn: leave the slot to clean up after itself.
  call_->acceptor_ = nullptr;
  call_ = nullptr;
  loop_.post(*this);
}

ServerCallPtr AcceptAwaiter::await_resume() {
  ServerCall* call = std::exchange(call_, nullptr);
  if (call != nullptr && !ok_) {
    call->released_ = true;
    call->maybe_delete();
    call = nullptr;
  }
  ServerCallPtr owned(call);
  task_->resume();  // may throw CancelledError; `owned` then releases the call
  return owned;
}

}  // namespace curfew::rt
