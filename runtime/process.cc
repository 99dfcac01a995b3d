#include "runtime/process.h"

#include "absl/synchronization/mutex.h"

namespace curfew::rt {
void disable_abseil_deadlock_detection() noexcept {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace curfew::rt
