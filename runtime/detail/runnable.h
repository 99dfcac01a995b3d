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

}  // namespace curfew::rt
