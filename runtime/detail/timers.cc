#include "runtime/detail/timers.h"

namespace curfew::rt {

bool Timers::before(const TimerNode* a, const TimerNode* b) noexcept {
  return a->when_ < b->when_ || (a->when_ == b->when_ && a->seq_ < b->seq_);
}

void Timers::place(size_t i, TimerNode* node) noexcept {
  heap_[i] = node;
  node->index_ = i;
}

void Timers::sift_up(size_t i) noexcept {
  TimerNode* node = heap_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(node, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, node);
}

void Timers::sift_down(size_t i) noexcept {
  TimerNode* node = heap_[i];
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], node)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, node);
}

void Timers::add(TimerNode& node, TimePoint when) {
  remove(node);
  node.when_ = when;
  node.seq_ = next_seq_++;
  heap_.push_back(&node);
  node.index_ = heap_.size() - 1;
  sift_up(node.index_);
}

void Timers::remove(TimerNode& node) noexcept {
  if (!node.scheduled()) return;
  size_t i = node.index_;
  node.index_ = TimerNode::kNotScheduled;
  TimerNode* last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index_);
}

std::optional<TimePoint> Timers::next() const noexcept {
  if (heap_.empty()) return std::nullopt;
  return heap_.front()->when_;
}

size_t Timers::fire_due(TimePoint now) {
  size_t fired = 0;
  while (!heap_.empty() && heap_.front()->when_ <= now) {
    TimerNode* node = heap_.front();
    remove(*node);
    ++fired;
    node->fire();  // may add or remove other timers
  }
  return fired;
}

}  // namespace curfew::rt
