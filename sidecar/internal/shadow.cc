#include "sidecar/internal/shadow.h"

#include "sidecar/internal/h2_unary_call.h"

#include <utility>

#include "runtime/errors.h"
#include "sidecar/internal/unary_caller.h"
#include "sidecar/internal/worker_state.h"

namespace curfew::sidecar {
namespace {

// One of the worker's shadow slots, taken in start_shadow() and given back when the shadow's
// coroutine frame goes, whether the shadow ran or was cancelled before its first step.
class ShadowSlot {
 public:
  explicit ShadowSlot(WorkerState& worker) : worker_(&worker) { ++worker.shadows_in_flight; }
  ShadowSlot(ShadowSlot&& other) noexcept : worker_(std::exchange(other.worker_, nullptr)) {}
  ShadowSlot& operator=(ShadowSlot&&) = delete;
  ~ShadowSlot() {
    if (worker_) --worker_->shadows_in_flight;
  }

 private:
  WorkerState* worker_;
};

void report(CallObserver* observer, const ShadowCopy& copy,
            const UpstreamAttempt& attempt) noexcept {
  if (observer == nullptr) return;
  try {
    observer->shadow_finished(*copy.listener, *copy.route, attempt);
  } catch (...) {  // a report never fails the worker
  }
}

// Never fails its group (the worker's shadow group, whose failure would cancel every call of the
// worker): every error is contained and reported; only a cancellation (shutdown) propagates.
rt::Task<void> shadow_call(ShadowSlot slot, ShadowCopy copy, CallObserver* observer) {
  UpstreamAttempt attempt{.upstream = copy.upstream, .role = UpstreamAttempt::Role::kMirror};
  try {
    // `copy`, which owns what the request borrows, lives in this frame until the call is done.
    const UnaryRequest request{copy.method, copy.message, copy.metadata, copy.compressed};
    H2UnaryCaller caller(*copy.pool, *copy.routing);
    UpstreamReply reply = co_await caller.call(*copy.upstream, request, copy.deadline);
    attempt.code = reply.status.code();
  } catch (const rt::CancelledError&) {
    attempt.code = grpc::StatusCode::CANCELLED;
    attempt.cancelled = CancelCause::kShutdown;
    report(observer, copy, attempt);
    throw;
  } catch (const rt::FatalError&) {
    throw;
  } catch (...) {
    attempt.code = grpc::StatusCode::INTERNAL;
  }
  report(observer, copy, attempt);
}

}  // namespace

bool start_shadow(WorkerState& worker, ShadowCopy copy, CallObserver* observer) {
  if (worker.shadows == nullptr || worker.shadows->aborting()) return false;
  if (worker.shadows_in_flight >= kMaxShadowsInFlight) return false;
  try {
    worker.reserve_shadow_handle();  // so that tracking the spawned shadow cannot fail
    worker.track_shadow(worker.shadows->spawn(
        shadow_call(ShadowSlot(worker), std::move(copy), observer), "shadow"));
  } catch (...) {
    return false;  // refused; a frame created meanwhile gave its slot back
  }
  return true;
}

}  // namespace curfew::sidecar
