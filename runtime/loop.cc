#include "runtime/loop.h"

#include <grpc/support/time.h>

namespace curfew::rt {
namespace {

thread_local Loop* current_loop = nullptr;

// At most this many completion-queue events are handled before timers and ready tasks get a
// turn again, so a flood of gRPC events cannot starve timers.
constexpr int kMaxEventsPerIteration = 64;

// A pass with tasks ready polls the queue without blocking. Such a poll costs about as much as
// the pass itself (gRPC takes locks and may run its poller), and chains of short passes (a spawn,
// an event set, a yield) are common on the proxy path; so once a non-blocking poll found the
// queue empty, the passes that follow within this interval do not poll again. While events keep
// arriving every pass polls, and a gRPC event waits for at most this long on a busy loop.
constexpr Duration kRepollAfterEmpty = std::chrono::microseconds(20);

gpr_timespec deadline_after(Duration d) {
  if (d <= Duration::zero()) return gpr_time_0(GPR_CLOCK_MONOTONIC);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(ns, GPR_TIMESPAN));
}

}  // namespace

Loop::Loop(grpc::CompletionQueue& cq, grpc::ServerCompletionQueue* server_cq, BlockingPool& pool,
           int index)
    : cq_(cq), server_cq_(server_cq), pool_(pool), index_(index) {}

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

bool Loop::post_threadsafe(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (closed_) return false;
  inbox_.push_back(std::move(fn));
  if (!wake_armed_) {
    wake_armed_ = true;
    tag_started(&wake_tag_);
    wake_alarm_.Set(&cq_, gpr_time_0(GPR_CLOCK_MONOTONIC), &wake_tag_);
  }
  return true;
}

void Loop::tag_started(void* tag) noexcept {
  tags_in_flight_.fetch_add(1, std::memory_order_relaxed);
  tsan::release(tag);
}

void Loop::WakeTag::complete(bool) { loop_.run_inbox(); }

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
  // task that keeps yielding cannot starve the completion queue.
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

void Loop::dispatch(void* tag, bool ok) {
  tsan::acquire(tag);
  tags_in_flight_.fetch_sub(1, std::memory_order_relaxed);
  static_cast<Completion*>(tag)->complete(ok);
}

void Loop::run(const bool& finished) {
  Loop* previous = current_loop;
  current_loop = this;
  for (;;) {
    if (timers_.size() > 0) timers_.fire_due(Clock::now());
    run_ready();
    if (finished && ready_head_ == nullptr && tags_in_flight() == 0 && close_inbox()) break;

    gpr_timespec deadline;
    const bool tasks_ready = ready_head_ != nullptr;
    TimePoint poll_at{};
    if (tasks_ready) {
      poll_at = Clock::now();
      if (last_empty_poll_ && poll_at - *last_empty_poll_ < kRepollAfterEmpty) continue;
      deadline = gpr_time_0(GPR_CLOCK_MONOTONIC);
    } else if (busy_poll_ > Duration::zero() && Clock::now() - last_event_ < busy_poll_) {
      deadline = gpr_time_0(GPR_CLOCK_MONOTONIC);  // spin: see set_busy_poll()
    } else if (auto next = timers_.next()) {
      deadline = deadline_after(*next - Clock::now());
    } else {
      deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    }
    void* tag = nullptr;
    bool ok = false;
    int events = 0;
    for (int i = 0; i < kMaxEventsPerIteration; ++i) {
      auto status = cq_.AsyncNext(&tag, &ok, deadline);
      if (status != grpc::CompletionQueue::GOT_EVENT) break;
      ++events;
      dispatch(tag, ok);
      deadline = gpr_time_0(GPR_CLOCK_MONOTONIC);
    }
    if (events > 0 && busy_poll_ > Duration::zero()) last_event_ = Clock::now();
    if (tasks_ready && events == 0) {
      last_empty_poll_ = poll_at;
    } else {
      last_empty_poll_.reset();
    }
  }
  current_loop = previous;
}

bool Loop::close_inbox() {
  // Under the inbox lock, so that no post_threadsafe() can slip a wake-up tag in between the
  // decision to stop and the stop.
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (tags_in_flight() != 0 || !inbox_.empty()) return false;
  closed_ = true;
  return true;
}

size_t Loop::close() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    closed_ = true;
  }
  cq_.Shutdown();
  size_t leftover = 0;
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) ++leftover;
  return leftover;
}

}  // namespace curfew::rt
