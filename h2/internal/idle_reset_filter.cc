#include "h2/internal/idle_reset_filter.h"

#include <nghttp2/nghttp2.h>

namespace curfew::h2::internal {

IdleResetFilter::FrameHeader IdleResetFilter::parse(const uint8_t* p) noexcept {
  return {.length = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2],
          .type = p[3],
          .flags = p[4],
          .stream_id =
              ((uint32_t{p[5]} << 24) | (uint32_t{p[6]} << 16) | (uint32_t{p[7]} << 8) | p[8]) &
              0x7fffffffU};
}

bool IdleResetFilter::hold_back(const FrameHeader& h) noexcept {
  replay_after_ = 0;
  // A caller's stream (odd id) above every stream it opened is idle. A malformed reset (length
  // other than 4) goes to nghttp2, which fails the connection as the protocol says.
  if (h.type == NGHTTP2_RST_STREAM && h.length == 4 && (h.stream_id & 1U) != 0 &&
      h.stream_id > max_opened_) {
    dropping_into_ = &pending_[pending_next_];
    pending_next_ = (pending_next_ + 1) % kPendingSlots;
    *dropping_into_ = Pending{.stream_id = h.stream_id};
    error_code_have_ = 0;
    ++held_back_;
    return true;
  }
  if (h.type == NGHTTP2_HEADERS && h.stream_id > max_opened_) max_opened_ = h.stream_id;
  if ((h.type == NGHTTP2_HEADERS || h.type == NGHTTP2_CONTINUATION) &&
      (h.flags & NGHTTP2_FLAG_END_HEADERS) != 0) {
    for (Pending& p : pending_) {
      if (p.stream_id != 0 && p.stream_id == h.stream_id) {
        replay_after_ = h.stream_id;
        replay_ = {0,
                   0,
                   4,
                   NGHTTP2_RST_STREAM,
                   0,
                   static_cast<uint8_t>(h.stream_id >> 24),
                   static_cast<uint8_t>(h.stream_id >> 16),
                   static_cast<uint8_t>(h.stream_id >> 8),
                   static_cast<uint8_t>(h.stream_id),
                   p.error_code[0],
                   p.error_code[1],
                   p.error_code[2],
                   p.error_code[3]};
        p.stream_id = 0;
        break;
      }
    }
  }
  return false;
}

IdleResetFilter::Bytes IdleResetFilter::after_frame() noexcept {
  if (replay_after_ == 0) return {};
  replay_after_ = 0;
  ++replayed_;
  return Bytes(replay_);
}

}  // namespace curfew::h2::internal
