// shield(): a scope whose awaits complete even though the task is being cancelled — the seed's
// "cleanup MUST happen" — bounded by a timeout of its own so that cleanup cannot hang forever.
//
//   catch (...) { error = std::current_exception(); }
//   if (error) co_await shield(release_lease(), 500ms);   // still runs while cancelled
//
// The body runs as a separate task that outside cancellations do not reach; the calling task
// waits for it. A cancellation requested meanwhile is delivered when the shield ends (the
// shield's result is then discarded). If `limit` passes, the body is cancelled and shield()
// throws TimeoutError.
#pragma once

#include <string>

#include "runtime/detail/spawn_one.h"
#include "runtime/task.h"
#include "runtime/timeout.h"

namespace curfew::rt {

template <class T>
Task<T> shield(Task<T> body, Duration limit, std::string name = "shield") {
  TaskState& task = co_await this_task{};
  detail::SpawnOne<T> shielded(timeout(limit, std::move(body)), task.loop(), std::move(name), &task,
                               /*inherit_deadline=*/false);
  co_await shielded;
  co_return shielded.handle().result();
}

}  // namespace curfew::rt
