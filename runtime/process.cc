#include "runtime/process.h"

#include <atomic>

#include "absl/synchronization/mutex.h"

namespace curfew::rt {
namespace {
std::atomic<PollerKind> process_default_poller{PollerKind::kCompletionQueue};
}  // namespace

void disable_abseil_deadlock_detection() noexcept {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void set_default_poller(PollerKind kind) noexcept {
  process_default_poller.store(kind, std::memory_order_relaxed);
}

PollerKind default_poller() noexcept {
  return process_default_poller.load(std::memory_order_relaxed);
}

}  // namespace curfew::rt
