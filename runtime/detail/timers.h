// Timers: a per-loop min-heap of deadlines. The loop sleeps in epoll until the earliest one, then
// fires every timer that is due, in deadline order, before it resumes any task. This gives
// asyncio's ordering: two scopes with the same deadline both fire before the body they interrupt
// runs again.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "runtime/clock.h"

namespace curfew::rt {

// Something to do at a time point. Owned by its user (an awaitable, a scope); it must be
// cancelled (Timers::remove) before it is destroyed.
class TimerNode {
 public:
  TimePoint when() const noexcept { return when_; }
  bool scheduled() const noexcept { return index_ != kNotScheduled; }

 protected:
  ~TimerNode() = default;
  virtual void fire() = 0;

 private:
  friend class Timers;
  static constexpr size_t kNotScheduled = static_cast<size_t>(-1);
  TimePoint when_{};
  size_t seq_ = 0;
  size_t index_ = kNotScheduled;
};

class Timers {
 public:
  void add(TimerNode& node, TimePoint when);
  // Removes a scheduled node; a no-op when it is not scheduled (already fired or never added).
  void remove(TimerNode& node) noexcept;
  // Earliest deadline, if any timer is scheduled.
  std::optional<TimePoint> next() const noexcept;
  // Fires every timer due at `now`, earliest first (ties in insertion order). Returns how many.
  // A node's fire() may add or remove timers, but must not re-add one for a time <= `now`: it
  // would fire again in the same call, without end.
  size_t fire_due(TimePoint now);
  size_t size() const noexcept { return heap_.size(); }

 private:
  static bool before(const TimerNode* a, const TimerNode* b) noexcept;
  void sift_up(size_t i) noexcept;
  void sift_down(size_t i) noexcept;
  void place(size_t i, TimerNode* node) noexcept;

  std::vector<TimerNode*> heap_;
  size_t next_seq_ = 0;
};

}  // namespace curfew::rt
