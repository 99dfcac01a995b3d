// Coroutine frames from a per-thread cache of freed frames, by size class.
//
// A proxied call creates and destroys a few dozen frames (each awaited Task is one), and glibc's
// malloc spent about a fifth of curfew's CPU on them at c=64: frames over ~1 KiB make every
// allocation consolidate its fast bins. A frame is almost always freed on the thread that
// allocated it (tasks never migrate between loops), so a free list per thread and size class
// serves nearly every frame without malloc. A frame freed on another thread simply joins that
// thread's list. Each list is bounded; frames over kMaxPooledBytes go to malloc.
//
// Under ASan and TSan frames go straight to malloc, so that the sanitizers see every frame's
// lifetime.
#pragma once

#include <cstddef>

namespace curfew::rt::detail {

void* allocate_frame(std::size_t bytes);
void deallocate_frame(void* frame, std::size_t bytes) noexcept;

}  // namespace curfew::rt::detail
