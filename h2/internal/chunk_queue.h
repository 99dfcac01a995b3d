// ChunkQueue: a FIFO of byte chunks (one stream's inbound or outbound DATA). A vector and a
// read position instead of std::deque, whose libstdc++ constructor allocates a map and a 512-byte
// node before the first element; the first chunk's slot is inline: with two queues per stream and
// two streams per proxied call, a plain vector still cost four allocations per call for queues
// that mostly hold one chunk at a time.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace curfew::h2::internal {

class ChunkQueue {
 public:
  bool empty() const noexcept { return head_ == chunks_.size(); }
  std::string& front() noexcept { return chunks_[head_]; }
  void push_back(std::string chunk) { chunks_.push_back(std::move(chunk)); }
  template <class... A>
  void emplace_back(A&&... args) {
    chunks_.emplace_back(std::forward<A>(args)...);
  }
  void pop_front() noexcept {
    chunks_[head_] = std::string();   // frees the chunk now
    if (++head_ == chunks_.size()) {  // empty again: reuse the vector from the start
      chunks_.clear();
      head_ = 0;
    } else if (head_ >= 16 && head_ * 2 >= chunks_.size()) {
      // A queue that never drains (a steady stream) drops its taken slots now and then.
      chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  // Visits the chunks still queued, in order.
  template <class F>
  void for_each(F&& f) const {
    for (size_t i = head_; i < chunks_.size(); ++i) f(chunks_[i]);
  }

 private:
  absl::InlinedVector<std::string, 1> chunks_;
  size_t head_ = 0;  // chunks_[0, head_) were taken
};

}  // namespace curfew::h2::internal
