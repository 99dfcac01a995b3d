#include "runtime/detail/cq_poller.h"

#include <grpc/support/time.h>

namespace curfew::rt {
namespace {

gpr_timespec deadline_after(std::optional<Duration> timeout) {
  if (!timeout) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  if (*timeout <= Duration::zero()) return gpr_time_0(GPR_CLOCK_MONOTONIC);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count();
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(ns, GPR_TIMESPAN));
}

}  // namespace

int CqPoller::wait(std::optional<Duration> timeout, int max_events) {
  gpr_timespec deadline = deadline_after(timeout);
  void* tag = nullptr;
  bool ok = false;
  int events = 0;
  while (events < max_events) {
    if (cq_.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) break;
    ++events;
    tsan::acquire(tag);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    static_cast<Completion*>(tag)->complete(ok);
    deadline = gpr_time_0(GPR_CLOCK_MONOTONIC);
  }
  return events;
}

void CqPoller::wake() {
  tag_started(&wake_tag_);
  wake_alarm_.Set(&cq_, gpr_time_0(GPR_CLOCK_MONOTONIC), &wake_tag_);
}

size_t CqPoller::close() {
  cq_.Shutdown();
  size_t leftover = 0;
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) ++leftover;
  return leftover;
}

}  // namespace curfew::rt
