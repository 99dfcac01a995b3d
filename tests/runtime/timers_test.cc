// Timers (runtime/detail/timers.h): the per-loop min-heap of deadlines, tested on its own (no loop,
// no clock: time points are made up). Firing order by deadline with ties in insertion order,
// next(), fire_due()'s count and its boundary (a deadline equal to `now` is due), remove() of
// scheduled, never-added and already-fired nodes, re-adding a node, timers that add or remove
// others while firing, and a seeded random workload checked against a simple model.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/clock.h"
#include "runtime/detail/timers.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using rt::TimePoint;

namespace {

// A timer that appends its id to a shared log when it fires, then runs an optional action.
class Probe final : public rt::TimerNode {
 public:
  Probe(int id, std::vector<int>& log) : id_(id), log_(&log) {}
  std::function<void()> on_fire;
  int fired = 0;

 private:
  void fire() override {
    ++fired;
    log_->push_back(id_);
    if (on_fire) on_fire();
  }
  int id_;
  std::vector<int>* log_;
};

// Fixed origin: the heap only compares time points, it never reads the clock.
const TimePoint t0 = TimePoint{} + 1000h;

// Builds `n` probes with ids 0..n-1 (stable addresses: the heap keeps pointers).
std::vector<std::unique_ptr<Probe>> make_probes(int n, std::vector<int>& log) {
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < n; ++i) probes.push_back(std::make_unique<Probe>(i, log));
  return probes;
}

TEST(TimersTest, EmptyHeapHasNoNextAndFiresNothing) {
  rt::Timers timers;
  EXPECT_EQ(timers.size(), 0u);
  EXPECT_FALSE(timers.next().has_value());
  EXPECT_EQ(timers.fire_due(TimePoint::max()), 0u);
}

TEST(TimersTest, FiresEarliestFirstAndNextIsTheEarliestDeadline) {
  std::vector<int> log;
  auto p = make_probes(6, log);
  rt::Timers timers;
  const int offsets_ms[] = {50, 10, 40, 20, 60, 30};  // probe i is due at t0 + offsets_ms[i]
  for (int i = 0; i < 6; ++i) {
    timers.add(*p[i], t0 + std::chrono::milliseconds(offsets_ms[i]));
    EXPECT_TRUE(p[i]->scheduled());
    EXPECT_EQ(p[i]->when(), t0 + std::chrono::milliseconds(offsets_ms[i]));
  }
  EXPECT_EQ(timers.size(), 6u);
  ASSERT_TRUE(timers.next().has_value());
  EXPECT_EQ(*timers.next(), t0 + 10ms);

  EXPECT_EQ(timers.fire_due(t0 + 1h), 6u);
  EXPECT_EQ(log, (std::vector<int>{1, 3, 5, 2, 0, 4}));
  EXPECT_EQ(timers.size(), 0u);
  EXPECT_FALSE(timers.next().has_value());
  for (const auto& probe : p) {
    EXPECT_FALSE(probe->scheduled());
    EXPECT_EQ(probe->fired, 1);
  }
}

TEST(TimersTest, EqualDeadlinesFireInInsertionOrder) {
  std::vector<int> log;
  auto p = make_probes(20, log);
  rt::Timers timers;
  // Two groups of ties, interleaved in insertion: evens at t0 + 5 ms, odds at t0 + 1 ms.
  for (int i = 0; i < 20; ++i) timers.add(*p[i], i % 2 == 0 ? t0 + 5ms : t0 + 1ms);
  EXPECT_EQ(timers.fire_due(t0 + 5ms), 20u);
  const std::vector<int> expected = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19,
                                     0, 2, 4, 6, 8, 10, 12, 14, 16, 18};
  EXPECT_EQ(log, expected);
}

TEST(TimersTest, ReAddingANodeMovesItAndCountsAsANewInsertion) {
  std::vector<int> log;
  auto p = make_probes(3, log);
  rt::Timers timers;
  timers.add(*p[0], t0 + 1ms);
  timers.add(*p[1], t0 + 1ms);
  timers.add(*p[2], t0 + 1ms);
  timers.add(*p[0], t0 + 1ms);   // same deadline, re-added: now the last of the tie
  EXPECT_EQ(timers.size(), 3u);  // rescheduled, not duplicated
  timers.add(*p[1], t0 + 9ms);   // moved later
  EXPECT_EQ(p[1]->when(), t0 + 9ms);
  EXPECT_EQ(timers.size(), 3u);
  EXPECT_EQ(timers.fire_due(t0 + 5ms), 2u);
  EXPECT_EQ(log, (std::vector<int>{2, 0}));
  ASSERT_TRUE(timers.next().has_value());
  EXPECT_EQ(*timers.next(), t0 + 9ms);
  EXPECT_EQ(timers.fire_due(t0 + 9ms), 1u);
  EXPECT_EQ(log, (std::vector<int>{2, 0, 1}));
  EXPECT_EQ(p[0]->fired, 1);
}

TEST(TimersTest, FireDueFiresExactlyTheDueOnesAndCountsThem) {
  std::vector<int> log;
  auto p = make_probes(4, log);
  rt::Timers timers;
  timers.add(*p[0], t0 + 10ms);
  timers.add(*p[1], t0 + 20ms);
  timers.add(*p[2], t0 + 30ms);
  timers.add(*p[3], t0 + 30ms);

  EXPECT_EQ(timers.fire_due(t0), 0u);  // nothing due yet
  EXPECT_EQ(timers.fire_due(t0 + 10ms - 1ns), 0u);
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(timers.fire_due(t0 + 20ms), 2u);  // a deadline equal to `now` is due
  EXPECT_EQ(log, (std::vector<int>{0, 1}));
  EXPECT_EQ(timers.size(), 2u);
  ASSERT_TRUE(timers.next().has_value());
  EXPECT_EQ(*timers.next(), t0 + 30ms);
  EXPECT_FALSE(p[0]->scheduled());
  EXPECT_TRUE(p[2]->scheduled());
  EXPECT_EQ(timers.fire_due(t0 + 20ms), 0u);  // firing again at the same time: nothing left due
  EXPECT_EQ(timers.fire_due(t0 + 31ms), 2u);
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(timers.size(), 0u);
}

TEST(TimersTest, RemoveOfScheduledNeverAddedAndFiredNodes) {
  std::vector<int> log;
  auto p = make_probes(6, log);
  rt::Timers timers;
  for (int i = 0; i < 5; ++i) timers.add(*p[i], t0 + std::chrono::milliseconds(i + 1));

  // A scheduled node from the middle of the heap, then the root: gone, the rest keeps its order.
  timers.remove(*p[2]);
  EXPECT_FALSE(p[2]->scheduled());
  EXPECT_EQ(timers.size(), 4u);
  timers.remove(*p[0]);
  EXPECT_EQ(timers.size(), 3u);
  ASSERT_TRUE(timers.next().has_value());
  EXPECT_EQ(*timers.next(), t0 + 2ms);

  // Removing again, or a node that was never added: no-ops.
  timers.remove(*p[2]);
  timers.remove(*p[5]);
  EXPECT_EQ(timers.size(), 3u);
  EXPECT_FALSE(p[5]->scheduled());

  // A node that already fired: a no-op too.
  EXPECT_EQ(timers.fire_due(t0 + 2ms), 1u);
  timers.remove(*p[1]);
  EXPECT_EQ(timers.size(), 2u);

  EXPECT_EQ(timers.fire_due(t0 + 1h), 2u);
  EXPECT_EQ(log, (std::vector<int>{1, 3, 4}));
  EXPECT_EQ(p[0]->fired + p[2]->fired + p[5]->fired, 0);
}

TEST(TimersTest, ARemovedNodeCanBeAddedAgain) {
  std::vector<int> log;
  auto p = make_probes(2, log);
  rt::Timers timers;
  timers.add(*p[0], t0 + 1ms);
  timers.add(*p[1], t0 + 2ms);
  timers.remove(*p[0]);
  timers.add(*p[0], t0 + 3ms);
  EXPECT_TRUE(p[0]->scheduled());
  EXPECT_EQ(timers.fire_due(t0 + 3ms), 2u);
  EXPECT_EQ(log, (std::vector<int>{1, 0}));
}

TEST(TimersTest, ATimerFiringMayRemoveOrAddOthers) {
  std::vector<int> log;
  auto p = make_probes(5, log);
  rt::Timers timers;
  rt::Timers* heap = &timers;
  // p0 (due first) removes p1, which is due too: p1 must not fire nor be counted.
  p[0]->on_fire = [heap, &p] { heap->remove(*p[1]); };
  // p2 schedules p3 for later than `now`: scheduled, not fired by this call.
  p[2]->on_fire = [heap, &p] { heap->add(*p[3], t0 + 1h); };
  // p4 reschedules itself for later (a periodic timer).
  p[4]->on_fire = [heap, &p] {
    if (p[4]->fired == 1) heap->add(*p[4], t0 + 2h);
  };
  timers.add(*p[0], t0 + 1ms);
  timers.add(*p[1], t0 + 2ms);
  timers.add(*p[2], t0 + 3ms);
  timers.add(*p[4], t0 + 4ms);

  EXPECT_EQ(timers.fire_due(t0 + 10ms), 3u);
  EXPECT_EQ(log, (std::vector<int>{0, 2, 4}));
  EXPECT_FALSE(p[1]->scheduled());
  EXPECT_EQ(p[1]->fired, 0);
  EXPECT_TRUE(p[3]->scheduled());
  EXPECT_TRUE(p[4]->scheduled());
  EXPECT_EQ(timers.size(), 2u);
  ASSERT_TRUE(timers.next().has_value());
  EXPECT_EQ(*timers.next(), t0 + 1h);
  EXPECT_EQ(timers.fire_due(t0 + 3h), 2u);
  EXPECT_EQ(log, (std::vector<int>{0, 2, 4, 3, 4}));
  EXPECT_EQ(timers.size(), 0u);
}

// Random adds, re-adds, removes and partial fire_due() calls on 300 nodes, compared with a model
// ordered by (deadline, insertion number). Seeded: the same sequence on every run.
TEST(TimersTest, RandomWorkloadMatchesAnOrderedModel) {
  constexpr int kNodes = 300;
  std::vector<int> log;
  auto p = make_probes(kNodes, log);
  rt::Timers timers;
  std::map<std::pair<TimePoint, long>, int> model;  // (when, insertion) -> id
  std::vector<std::optional<std::pair<TimePoint, long>>> key(kNodes);
  long insertion = 0;
  TimePoint now = t0;
  std::mt19937 rng(20240611);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };

  for (int step = 0; step < 20'000; ++step) {
    const int op = pick(10);
    const int id = pick(kNodes);
    if (op < 5) {  // add or re-add, often on a coarse grid to make ties
      const TimePoint when = now + std::chrono::milliseconds(pick(4) == 0 ? pick(5) : pick(200));
      if (key[id]) model.erase(*key[id]);
      timers.add(*p[id], when);
      key[id] = std::make_pair(when, insertion++);
      model[*key[id]] = id;
    } else if (op < 8) {  // remove, scheduled or not
      timers.remove(*p[id]);
      if (key[id]) model.erase(*key[id]);
      key[id].reset();
    } else {  // advance the clock and fire what is due
      now += std::chrono::milliseconds(pick(30));
      log.clear();
      const size_t fired = timers.fire_due(now);
      std::vector<int> expected;
      while (!model.empty() && model.begin()->first.first <= now) {
        expected.push_back(model.begin()->second);
        key[model.begin()->second].reset();
        model.erase(model.begin());
      }
      ASSERT_EQ(fired, expected.size()) << "step " << step;
      ASSERT_EQ(log, expected) << "step " << step;
    }
    ASSERT_EQ(timers.size(), model.size()) << "step " << step;
    if (model.empty()) {
      ASSERT_FALSE(timers.next().has_value()) << "step " << step;
    } else {
      ASSERT_TRUE(timers.next().has_value()) << "step " << step;
      ASSERT_EQ(*timers.next(), model.begin()->first.first) << "step " << step;
    }
    ASSERT_EQ(p[id]->scheduled(), key[id].has_value()) << "step " << step;
  }
  // Nodes must be off the heap before they are destroyed.
  for (auto& probe : p) timers.remove(*probe);
  EXPECT_EQ(timers.size(), 0u);
}

}  // namespace
