// IdleResetFilter: takes a caller's RST_STREAM for a stream it has not opened yet out of the
// byte stream before nghttp2 sees it.
//
// grpc-core 1.51 (seen under CPU load) can write the RST_STREAM of a call it cancelled ahead of
// that call's HEADERS (its queued control frames go out first), or with no HEADERS at all.
// RFC 9113 §6.4 makes a RST_STREAM on an idle stream a connection error, and nghttp2 answers it
// with GOAWAY PROTOCOL_ERROR, failing every call on the connection. A reset of a stream that
// never opened cancels nothing, so it is held back; if that stream's HEADERS follow, the reset
// is replayed right after them, so the stream still ends reset before any work.
//
// Server role only. The filter follows frame boundaries itself (9-byte frame headers, lengths):
// it sees every frame whole however the socket splits the bytes, and passes everything else
// through in contiguous runs, uncopied. Since it sees every frame header, including those nghttp2
// ignores without a callback (DATA for a closed stream, unknown types), it also tells an observer
// about each one: the session meters frames that do no work there (SessionLimits).
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace curfew::h2::internal {

class IdleResetFilter {
 public:
  using Bytes = std::span<const uint8_t>;

  // Feeds bytes read from the socket. Calls `deliver(Bytes)` for the bytes nghttp2 is to see, in
  // order; `deliver` returns false to stop (nghttp2 failed the connection), and then so does
  // feed. Calls `held_back()` once for each reset taken out, and `replaying()` right before a
  // held-back reset is delivered after its stream's HEADERS (the stream is then counted as any
  // other: the caller undoes what it counted at `held_back()`).
  template <class Deliver, class HeldBack, class Replaying>
  bool feed(Bytes in, Deliver&& deliver, HeldBack&& held_back, Replaying&& replaying);
  template <class Deliver, class HeldBack>
  bool feed(Bytes in, Deliver&& deliver, HeldBack&& held_back) {
    return feed(in, deliver, held_back, [] {});
  }

  // Each frame's header as it is read, before nghttp2 sees the frame. `opens_stream`: a HEADERS
  // frame for a stream id above every one opened so far.
  struct Frame {
    uint32_t length;
    uint8_t type;
    uint8_t flags;
    bool opens_stream;
  };
  using Observer = void (*)(void* context, const Frame& frame) noexcept;
  void observe_frames(Observer observer, void* context) noexcept {
    observer_ = observer;
    observer_context_ = context;
  }

  // Resets taken out / replayed after their stream's HEADERS, since the connection began.
  uint64_t held_back_count() const noexcept { return held_back_; }
  uint64_t replayed_count() const noexcept { return replayed_; }

 private:
  static constexpr size_t kFrameHeader = 9;
  static constexpr size_t kPreface = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  static constexpr size_t kPendingSlots = 16;

  struct FrameHeader {
    uint32_t length;
    uint8_t type;
    uint8_t flags;
    uint32_t stream_id;
  };
  static FrameHeader parse(const uint8_t* p) noexcept;
  // Decides about a frame whose header was just read: true to take it out.
  bool hold_back(const FrameHeader& h) noexcept;
  // The frame just passed ended: the RST_STREAM to replay after it, if any (else empty).
  Bytes after_frame() noexcept;

  size_t preface_left_ = kPreface;
  std::array<uint8_t, kFrameHeader> header_{};  // a frame header split across reads
  size_t header_have_ = 0;
  size_t payload_left_ = 0;
  bool dropping_ = false;             // the current frame's payload is taken out
  uint32_t max_opened_ = 0;           // highest stream id whose HEADERS were passed
  uint32_t replay_after_ = 0;         // stream whose header block ends with the current frame
  std::array<uint8_t, 13> replay_{};  // the RST_STREAM frame being replayed

  // Streams whose reset was held back (ring), with the reset's error code (network order).
  struct Pending {
    uint32_t stream_id = 0;
    std::array<uint8_t, 4> error_code{};
  };
  std::array<Pending, kPendingSlots> pending_{};
  size_t pending_next_ = 0;
  Pending* dropping_into_ = nullptr;  // where the held-back reset's error code goes
  size_t error_code_have_ = 0;

  uint64_t held_back_ = 0;
  uint64_t replayed_ = 0;
  Observer observer_ = nullptr;
  void* observer_context_ = nullptr;
};

template <class Deliver, class HeldBack, class Replaying>
bool IdleResetFilter::feed(Bytes in, Deliver&& deliver, HeldBack&& held_back,
                           Replaying&& replaying) {
  const size_t n = in.size();
  size_t i = 0;
  size_t run = 0;  // in[run, i) is still to be delivered
  auto flush = [&](size_t end) {
    const bool ok = end <= run || deliver(in.subspan(run, end - run));
    run = end;
    return ok;
  };
  while (i < n) {
    if (preface_left_ > 0) {
      const size_t k = std::min(preface_left_, n - i);
      preface_left_ -= k;
      i += k;
      continue;
    }
    if (payload_left_ > 0) {
      const size_t k = std::min(payload_left_, n - i);
      if (dropping_) {
        if (!flush(i)) return false;
        for (size_t j = 0; j < k && error_code_have_ < 4; ++j)
          dropping_into_->error_code[error_code_have_++] = in[i + j];
        run = i + k;
      }
      i += k;
      payload_left_ -= k;
      if (payload_left_ == 0 && !dropping_) {
        const Bytes replay = after_frame();
        if (!replay.empty()) {
          if (!flush(i)) return false;
          replaying();
          if (!deliver(replay)) return false;
        }
      }
      continue;
    }
    // At a frame header: read it from the input, or gather it when it straddles reads.
    FrameHeader h;
    bool header_in_input = false;
    if (header_have_ == 0 && n - i >= kFrameHeader) {
      h = parse(&in[i]);
      header_in_input = true;
    } else {
      if (header_have_ == 0 && !flush(i)) return false;
      const size_t k = std::min(kFrameHeader - header_have_, n - i);
      std::copy_n(&in[i], k, &header_[header_have_]);
      header_have_ += k;
      i += k;
      run = i;
      if (header_have_ < kFrameHeader) break;
      h = parse(header_.data());
      header_have_ = 0;
    }
    if (observer_ != nullptr) {
      observer_(observer_context_, {h.length, h.type, h.flags,
                                    h.type == 0x1 /*HEADERS*/ && h.stream_id > max_opened_});
    }
    if (hold_back(h)) {
      if (header_in_input) {
        if (!flush(i)) return false;
        i += kFrameHeader;
        run = i;
      }
      held_back();
      dropping_ = true;
    } else {
      if (header_in_input) {
        i += kFrameHeader;
      } else if (!deliver(Bytes(header_))) {
        return false;
      }
      dropping_ = false;
    }
    payload_left_ = h.length;
    if (payload_left_ == 0 && !dropping_) {
      const Bytes replay = after_frame();
      if (!replay.empty()) {
        if (!flush(i)) return false;
        replaying();
        if (!deliver(replay)) return false;
      }
    }
  }
  return flush(i);
}

}  // namespace curfew::h2::internal
