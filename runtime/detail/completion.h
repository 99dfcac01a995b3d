// The two ways work reaches a loop thread: a Completion is a tag handed back by the gRPC
// completion queue; a Runnable is queued on the loop's ready list (asyncio's call_soon).
#pragma once

namespace curfew::rt {

// Base of every tag the runtime gives to a gRPC CompletionQueue. The queue returns the pointer
// when the operation finishes and the loop calls complete(ok) on its thread.
class Completion {
 public:
  virtual void complete(bool ok) = 0;

 protected:
  ~Completion() = default;
};

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

// ThreadSanitizer cannot see the hand-off through a completion queue (Debian's gRPC is not
// instrumented): announce it. release() before a tag is handed to gRPC, acquire() after the queue
// returns it.
namespace tsan {
#if defined(CURFEW_TSAN)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
inline void release(void* tag) { __tsan_release(tag); }
inline void acquire(void* tag) { __tsan_acquire(tag); }
#else
inline void release(void*) {}
inline void acquire(void*) {}
#endif
}  // namespace tsan

}  // namespace curfew::rt
