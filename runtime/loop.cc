#include "runtime/loop.h"

namespace curfew::rt {
namespace {

thread_local Loop* current_loop = nullptr;

// At most this many poller events are handled before timers and ready tasks get a turn again,
// so a flood of events cannot starve timers.
constexpr int kMaxEventsPerIteration = 64;

}  // namespace

Loop::Loop(BlockingPool& pool, int index)
    : poller_([this] { run_inbox(); }), pool_(pool), index_(index) {}

Loop::~Loop() = default;

Loop* Loop::current() noexcept { return current_loop; }

void Loop::post(Runnable& r) noexcept {
  if (r.queued_) return;
  r.queued_ = true;
  r.next_ready_ = nullptr;
  if (ready_tail_ != nullptr) {
    ready_tail_->next_ready_ = &r;
  } else {
    ready_head_ = &r;
  }
  ready_tail_ = &r;
}

void Loop::post_before_poll(BeforePollRunnable& r) noexcept {
  if (r.queued_ || r.before_poll_queued_) return;
  r.before_poll_queued_ = true;
  r.next_before_poll_ = nullptr;
  r.prev_before_poll_ = before_poll_tail_;
  if (before_poll_tail_ != nullptr) {
    before_poll_tail_->next_before_poll_ = &r;
  } else {
    before_poll_head_ = &r;
  }
  before_poll_tail_ = &r;
}

void Loop::remove_before_poll(BeforePollRunnable& r) noexcept {
  if (!r.before_poll_queued_) return;
  r.before_poll_queued_ = false;
  (r.prev_before_poll_ != nullptr ? r.prev_before_poll_->next_before_poll_ : before_poll_head_) =
      r.next_before_poll_;
  (r.next_before_poll_ != nullptr ? r.next_before_poll_->prev_before_poll_ : before_poll_tail_) =
      r.prev_before_poll_;
  r.prev_before_poll_ = r.next_before_poll_ = nullptr;
}

void Loop::release_before_poll() noexcept {
  BeforePollRunnable* r = before_poll_head_;
  before_poll_head_ = before_poll_tail_ = nullptr;
  while (r != nullptr) {
    BeforePollRunnable* next = r->next_before_poll_;
    r->before_poll_queued_ = false;
    r->prev_before_poll_ = r->next_before_poll_ = nullptr;
    post(*r);
    r = next;
  }
}

bool Loop::post_threadsafe(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (closed_) return false;
  inbox_.push_back(std::move(fn));
  if (!wake_armed_) {
    wake_armed_ = true;
    poller_.wake();
  }
  return true;
}

void Loop::run_inbox() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    work.swap(inbox_);
    wake_armed_ = false;
  }
  for (auto& fn : work) fn();
}

void Loop::run_ready() {
  // Only what was ready when the pass began: work queued meanwhile waits for the next pass, so a
  // task that keeps yielding cannot starve the poller.
  Runnable* stop_after = ready_tail_;
  while (ready_head_ != nullptr) {
    Runnable* r = ready_head_;
    ready_head_ = r->next_ready_;
    if (ready_head_ == nullptr) ready_tail_ = nullptr;
    r->queued_ = false;
    r->next_ready_ = nullptr;
    const bool last = (r == stop_after);
    r->run();
    if (last) break;
  }
}

void Loop::run(const bool& finished) {
  Loop* previous = current_loop;
  current_loop = this;
  for (;;) {
    if (timers_.size() > 0) timers_.fire_due(Clock::now());
    run_ready();
    if (ready_head_ == nullptr && before_poll_head_ != nullptr && !released_since_poll_) {
      // Nothing else is ready: the before-poll turn. Once per poll: what queues itself again
      // meanwhile waits for the poll below.
      release_before_poll();
      released_since_poll_ = true;
      continue;
    }
    if (finished && ready_head_ == nullptr && before_poll_head_ == nullptr && close_inbox()) break;

    std::optional<Duration> timeout;  // none: until an event
    const bool tasks_ready = ready_head_ != nullptr || before_poll_head_ != nullptr;
    TimePoint poll_at{};
    if (tasks_ready) {
      poll_at = Clock::now();
      if (ready_head_ != nullptr && poll_at - last_poll_ < repoll_interval_) continue;
      // A loop that stays busy gives the before-poll list its turn at each poll instead: right
      // after it, in the next pass.
      release_before_poll();
      timeout = Duration::zero();
    } else if (busy_poll_ > Duration::zero() && Clock::now() - last_event_ < busy_poll_) {
      timeout = Duration::zero();  // spin: see set_busy_poll()
    } else if (auto next = timers_.next()) {
      timeout = *next - Clock::now();
    }
    const int events = poller_.wait(timeout, kMaxEventsPerIteration);
    // A non-blocking poll is timed by the clock read just before it; a blocking one by a clock
    // read after it (it may have slept long).
    last_poll_ = tasks_ready ? poll_at : Clock::now();
    released_since_poll_ = false;
    if (events > 0 && busy_poll_ > Duration::zero()) last_event_ = last_poll_;
  }
  current_loop = previous;
}

bool Loop::close_inbox() {
  // Under the inbox lock, so that no post_threadsafe() can slip a wake-up in between the
  // decision to stop and the stop.
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (!inbox_.empty()) return false;
  closed_ = true;
  return true;
}

size_t Loop::close() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    closed_ = true;
  }
  return poller_.close();
}

}  // namespace curfew::rt
