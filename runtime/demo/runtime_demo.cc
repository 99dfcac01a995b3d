// A tiny tour of the runtime: a task group whose first failure cancels its siblings, a deadline
// that fires, and a shielded cleanup that completes although its task is cancelled.
#include <iostream>

#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/shield.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"

using namespace std::chrono_literals;
namespace rt = curfew::rt;

rt::Task<void> worker(std::string name, std::chrono::milliseconds work, bool fail) {
  try {
    co_await rt::sleep(work);
  } catch (const rt::CancelledError& e) {
    std::cout << "  " << name << ": cancelled (" << e.reason() << "), cleaning up\n";
    throw;
  }
  if (fail) throw std::runtime_error(name + " failed");
  std::cout << "  " << name << ": done\n";
}

rt::Task<int> demo() {
  std::cout << "1. scatter-gather where one child fails:\n";
  try {
    rt::TaskGroup group;
    co_await group.run([](rt::TaskGroup& g) -> rt::Task<void> {
      g.spawn(worker("shard-a", 50ms, false), "shard-a");
      g.spawn(worker("shard-b", 100ms, true), "shard-b");
      g.spawn(worker("shard-c", 1s, false), "shard-c");
      co_return;
    }(group));
  } catch (const rt::ErrorGroup& e) {
    std::cout << "  group raised: " << e.what() << "\n";
  }

  std::cout << "2. a 100 ms deadline around 1 s of work:\n";
  try {
    co_await rt::timeout(100ms, worker("slow call", 1s, false));
  } catch (const rt::TimeoutError& e) {
    std::cout << "  timeout scope raised: " << e.what() << "\n";
  }

  std::cout << "3. cleanup under a shield while the deadline cancels the task:\n";
  try {
    co_await rt::timeout(50ms, []() -> rt::Task<void> {
      try {
        co_await rt::sleep(1s);
      } catch (const rt::CancelledError&) {
      }
      co_await rt::shield(worker("release lease", 30ms, false), 500ms);
      throw rt::CancelledError("re-raised after cleanup");
    }());
  } catch (const rt::TimeoutError&) {
    std::cout << "  cleanup completed, then the timeout was raised\n";
  }
  co_return 0;
}

int main() { return rt::run(demo()); }
