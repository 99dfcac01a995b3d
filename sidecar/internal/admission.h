// Admission (overload protection), the same on every data path: before a call is run, it takes
// a slot of the listener's limits.max_concurrent_calls and, if its route sets one, of the route's
// max_concurrent_calls. When either is full the call is refused at once with RESOURCE_EXHAUSTED
// (CallReport::rejected says which limit) — nothing is ever queued in curfew. Each limit is one
// atomic counter: exact, lock-free, one read-modify-write per call per limit. Route counters are
// kept by route name for the listener's whole life, so calls admitted before a reload still count
// against the route after it and a reload never opens a window above the limit.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "sidecar/call_report.h"

namespace curfew::sidecar {

// A concurrency limit: how many calls hold one of its slots. The limit itself comes from the
// configuration current when a call arrives.
class alignas(64) ConcurrencyLimit {
 public:
  // Takes a slot unless `limit` are already taken.
  bool try_acquire(int limit) noexcept {
    if (in_flight_.fetch_add(1, std::memory_order_relaxed) < limit) return true;
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void release() noexcept { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  int in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> in_flight_{0};
};

// The slots one admitted call holds; given back when the call's task ends, however it ends. It
// shares ownership of the route's counter, which a reload may drop from the listener's map.
class CallSlots {
 public:
  CallSlots() = default;
  CallSlots(ConcurrencyLimit* listener, std::shared_ptr<ConcurrencyLimit> route)
      : listener_(listener), route_(std::move(route)) {}
  CallSlots(CallSlots&& other) noexcept
      : listener_(std::exchange(other.listener_, nullptr)), route_(std::move(other.route_)) {}
  CallSlots& operator=(CallSlots&&) = delete;
  ~CallSlots() {
    if (listener_) listener_->release();
    if (route_) route_->release();
  }

 private:
  ConcurrencyLimit* listener_ = nullptr;  // the ListenerServer's own, which outlives every call
  std::shared_ptr<ConcurrencyLimit> route_;
};

// The route counters of one listener, by route name.
class RouteLimits {
 public:
  // The counter of each of `listener`'s routes (by index), or null for a route that sets no
  // limit. Counters are created on first use of a route name; those of routes `listener` no
  // longer has are dropped once nothing holds them. Start and reloads only (takes a mutex).
  std::vector<std::shared_ptr<ConcurrencyLimit>> for_listener(const config::Listener& listener);
  // Route names with a counter kept (for tests: reloads must not grow it unbounded).
  size_t kept();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<ConcurrencyLimit>> by_route_;
};

// What a refused caller is told.
std::string refusal_message(const config::Listener& listener, const config::Route* route,
                            Rejection why);

}  // namespace curfew::sidecar
