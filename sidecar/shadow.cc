#include "sidecar/shadow.h"

#include "runtime/errors.h"
#include "sidecar/upstream_call.h"
#include "sidecar/worker_state.h"

namespace curfew::sidecar {
namespace {

rt::Task<void> shadow_call(WorkerState& worker, ShadowCopy copy, CallObserver* observer) {
  struct InFlight {  // the worker's count, however the shadow ends
    WorkerState& worker;
    ~InFlight() { --worker.shadows_in_flight; }
  } in_flight{worker};
  UpstreamAttempt attempt{.upstream = copy.upstream, .role = UpstreamAttempt::Role::kMirror};
  // A view of the owned metadata as gRPC's request type; `copy` outlives every use of it.
  std::multimap<grpc::string_ref, grpc::string_ref> metadata;
  for (const auto& [k, v] : copy.metadata) metadata.emplace(k, v);
  const UnaryRequest request{copy.method, copy.message, metadata};
  Upstream* upstream = copy.routing->upstreams->find(*copy.upstream);
  try {
    if (upstream != nullptr) {
      UpstreamReply reply = co_await call_upstream(*upstream, request, copy.deadline);
      attempt.code = reply.status.error_code();
    } else {
      attempt.code = grpc::StatusCode::UNAVAILABLE;
    }
  } catch (const rt::CancelledError&) {
    attempt.code = grpc::StatusCode::CANCELLED;
    attempt.cancelled = CancelCause::kShutdown;
    if (observer) observer->shadow_finished(*copy.listener, *copy.route, attempt);
    throw;
  } catch (...) {
    // Never the worker's problem: a shadow that fails is only reported.
    attempt.code = grpc::StatusCode::INTERNAL;
  }
  if (observer) observer->shadow_finished(*copy.listener, *copy.route, attempt);
}

}  // namespace

bool start_shadow(WorkerState& worker, ShadowCopy copy, CallObserver* observer) {
  if (worker.shadows == nullptr || worker.shadows->aborting()) return false;
  if (worker.shadows_in_flight >= kMaxShadowsInFlight) return false;
  ++worker.shadows_in_flight;
  try {
    worker.track_shadow(worker.shadows->spawn(shadow_call(worker, std::move(copy), observer), "shadow"));
  } catch (...) {
    --worker.shadows_in_flight;  // refused: the shadow never started
    return false;
  }
  return true;
}

}  // namespace curfew::sidecar
