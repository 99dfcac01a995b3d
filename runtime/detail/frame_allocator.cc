#include "runtime/detail/frame_allocator.h"

#include <array>
#include <cstdint>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CURFEW_NO_FRAME_POOL 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CURFEW_NO_FRAME_POOL 1
#endif

namespace curfew::rt::detail {
namespace {

constexpr std::size_t kClassBytes = 64;
constexpr std::size_t kMaxPooledBytes = 4096;
constexpr std::size_t kClasses = kMaxPooledBytes / kClassBytes;
constexpr std::uint32_t kMaxPerClass = 256;  // frames kept per class and thread

#ifndef CURFEW_NO_FRAME_POOL
struct FreeFrame {
  FreeFrame* next;
};

struct FrameCache;
// Trivially destructible, so they can still be read while (and after) the thread's cache is
// destroyed: a frame allocated or freed that late goes to malloc.
thread_local bool cache_alive = false;
thread_local bool cache_dead = false;

struct FrameCache {
  FrameCache() { cache_alive = true; }
  ~FrameCache() {
    cache_alive = false;
    cache_dead = true;
    for (FreeFrame*& head : heads) {
      while (head != nullptr) {
        FreeFrame* next = head->next;
        ::operator delete(head);
        head = next;
      }
    }
    counts = {};
  }
  std::array<FreeFrame*, kClasses> heads{};
  std::array<std::uint32_t, kClasses> counts{};
};

FrameCache& cache() {
  thread_local FrameCache c;
  return c;
}
#endif

}  // namespace

void* allocate_frame(std::size_t bytes) {
#ifndef CURFEW_NO_FRAME_POOL
  if (bytes <= kMaxPooledBytes && bytes > 0 && !cache_dead) {
    const std::size_t c = (bytes - 1) / kClassBytes;
    FrameCache& fc = cache();
    if (FreeFrame* f = fc.heads[c]) {
      fc.heads[c] = f->next;
      --fc.counts[c];
      return f;
    }
    return ::operator new((c + 1) * kClassBytes);  // any frame of its class fits
  }
#endif
  return ::operator new(bytes);
}

void deallocate_frame(void* frame, std::size_t bytes) noexcept {
#ifndef CURFEW_NO_FRAME_POOL
  if (bytes <= kMaxPooledBytes && bytes > 0 && cache_alive) {
    const std::size_t c = (bytes - 1) / kClassBytes;
    FrameCache& fc = cache();
    if (fc.counts[c] < kMaxPerClass) {
      fc.heads[c] = new (frame) FreeFrame{fc.heads[c]};
      ++fc.counts[c];
      return;
    }
  }
#else
  (void)bytes;
#endif
  ::operator delete(frame);
}

}  // namespace curfew::rt::detail
