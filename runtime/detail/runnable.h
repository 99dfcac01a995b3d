// Runnable: work queued to run on a loop thread (asyncio's call_soon).
#pragma once

namespace curfew::rt {

// Work queued to run on the loop thread in FIFO order. Intrusive: queuing never allocates, and
// a Runnable is on at most one ready list at a time.
class Runnable {
 public:
  virtual void run() = 0;

 protected:
  ~Runnable() = default;

 private:
  friend class Loop;
  Runnable* next_ready_ = nullptr;
  bool queued_ = false;
};

// A Runnable that can also wait on its loop's before-poll list (Loop::post_before_poll): doubly
// linked, so that a cancelled waiter leaves it at once, without a search.
class BeforePollRunnable : public Runnable {
 protected:
  ~BeforePollRunnable() = default;

 private:
  friend class Loop;
  BeforePollRunnable* prev_before_poll_ = nullptr;
  BeforePollRunnable* next_before_poll_ = nullptr;
  bool before_poll_queued_ = false;
};

}  // namespace curfew::rt
