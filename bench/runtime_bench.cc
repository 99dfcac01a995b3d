// Microbenchmarks of the runtime's per-operation costs (issue 2, "Measure"). Every benchmark runs
// its loop inside a task on rt::run, i.e. on a real Loop driven by a gRPC completion queue, the
// way the sidecar uses the runtime. Figures are ns per operation; docs/benchmarks.md keeps them.
//
//   build/release/bench/curfew_runtime_bench [--benchmark_min_time=0.01]
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "runtime/detail/timers.h"
#include "runtime/process.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"

namespace rt = curfew::rt;

namespace {

rt::Task<void> noop() { co_return; }

rt::Task<int> answer(int x) { co_return x + 1; }

rt::Task<void> sleep_long() { co_await rt::sleep(std::chrono::hours(1)); }

// Runs `body(state)` as the main task of a fresh single-threaded runtime.
template <class Body>
void on_runtime(benchmark::State& state, Body body) {
  rt::run(body(state));
}

// Spawn one child into a TaskGroup and join it (group entry and exit included).
void BM_SpawnJoin(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    for (auto _ : state) {
      rt::TaskGroup group;
      co_await group.run([](rt::TaskGroup& g) -> rt::Task<void> {
        g.spawn(noop(), "child");
        co_return;
      }(group));
    }
  });
}
BENCHMARK(BM_SpawnJoin);

// A TaskGroup of 100 children, each finishing at once; ns per group (items: per child).
void BM_TaskGroup100(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    for (auto _ : state) {
      rt::TaskGroup group;
      co_await group.run([](rt::TaskGroup& g) -> rt::Task<void> {
        for (int i = 0; i < 100; ++i) g.spawn(noop(), "child");
        co_return;
      }(group));
    }
    state.SetItemsProcessed(state.iterations() * 100);
  });
}
BENCHMARK(BM_TaskGroup100);

// Cancel a task that is sleeping on a timer and join it: spawn, let it start and arm its timer
// (one loop pass), cancel, join.
void BM_CancelSleepingTask(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    for (auto _ : state) {
      rt::TaskGroup group;
      co_await group.run([](rt::TaskGroup& g) -> rt::Task<void> {
        auto child = g.spawn(sleep_long(), "sleeper");
        co_await rt::yield_now();  // the child runs and sleeps
        child.cancel("bench");
      }(group));
    }
  });
}
BENCHMARK(BM_CancelSleepingTask);

// One loop pass: yield_now() (asyncio.sleep(0)).
void BM_YieldNow(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    for (auto _ : state) co_await rt::yield_now();
  });
}
BENCHMARK(BM_YieldNow);

// sleep(0): same path as yield_now(), through the "already due" check.
void BM_SleepZero(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    for (auto _ : state) co_await rt::sleep(rt::Duration::zero());
  });
}
BENCHMARK(BM_SleepZero);

// A short timer armed and cancelled on the loop's heap, with Arg(0) other timers pending (about
// one per call in flight in the sidecar).
class BenchTimer final : public rt::TimerNode {
 public:
  void fire() override {}
};

void BM_TimerArmCancel(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    rt::Timers& timers = rt::Loop::current()->timers();
    std::vector<BenchTimer> others(static_cast<size_t>(state.range(0)));
    const rt::TimePoint now = rt::Clock::now();
    for (size_t i = 0; i < others.size(); ++i) {
      timers.add(others[i], now + std::chrono::seconds(10) + std::chrono::microseconds(i));
    }
    BenchTimer timer;
    for (auto _ : state) {
      timers.add(timer, rt::Clock::now() + std::chrono::milliseconds(1));
      timers.remove(timer);
    }
    for (auto& t : others) timers.remove(t);
    co_return;
  });
}
BENCHMARK(BM_TimerArmCancel)->Arg(0)->Arg(1000);

// A Timeout scope entered and exited around a body that completes at once (timer armed and
// removed, deadline entry pushed and popped).
void BM_TimeoutScope(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    for (auto _ : state) {
      rt::Timeout scope = rt::Timeout::after(std::chrono::seconds(1));
      co_await scope.run(noop());
    }
  });
}
BENCHMARK(BM_TimeoutScope);

// Awaiting a Task<int> (frame allocation, symmetric transfer in and out, result).
void BM_AwaitTaskInt(benchmark::State& state) {
  on_runtime(state, [](benchmark::State& state) -> rt::Task<void> {
    int x = 0;
    for (auto _ : state) {
      x = co_await answer(x);
      benchmark::DoNotOptimize(x);
    }
  });
}
BENCHMARK(BM_AwaitTaskInt);

}  // namespace

int main(int argc, char** argv) {
  curfew::rt::disable_abseil_deadlock_detection();  // as curfew's own main does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
