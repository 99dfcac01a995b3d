// Stream: one HTTP/2 stream of a Session, as the task that serves it sees it (loop thread only).
//
// Inbound: the peer's headers, then body chunks as they arrive (read(): each chunk taken returns
// its bytes to the stream's flow-control window, so a reader that stops reading stops the peer),
// then trailers or a reset. Outbound: headers (server: the response; client: sent by
// Session::open_stream), body chunks (write() waits while more than the send buffer limit is
// queued: backpressure end to end), then the end with trailers (server) or a half-close (client),
// or a reset.
//
// A Stream is shared (std::shared_ptr) between its Session and the task serving it; when the
// Session ends first, the stream is detached: it reads as ended by `connection_lost()` and
// writes are refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "h2/header.h"
#include "h2/internal/chunk_queue.h"
#include "runtime/event.h"
#include "runtime/task.h"
#include "runtime/task_group.h"

namespace curfew::h2 {

class Session;

class Stream {
 public:
  Stream(Session& session, int32_t id) : session_(&session), id_(id) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int32_t id() const noexcept { return id_; }

  // --- Inbound ---

  // The peer's first header block: request headers (server), response headers or a trailers-only
  // response (client). Waits for it; false when the stream ended without one.
  rt::Task<bool> wait_headers();
  const Headers& headers() const noexcept { return headers_; }
  // The first header block carried END_STREAM (a gRPC trailers-only response).
  bool headers_only() const noexcept { return headers_only_; }

  // The next chunk of body bytes, or nullopt once the body ended (END_STREAM, trailers, reset,
  // or the connection lost: see ended_cleanly()).
  rt::Task<std::optional<std::string>> read();
  // Body bytes are waiting to be read, or the inbound side has ended: read() returns at once.
  bool readable_now() const noexcept { return !inbound_.empty() || inbound_ended_ || closed_; }
  // The trailers, once read() returned nullopt after a clean end (may be empty).
  const Headers& trailers() const noexcept { return trailers_; }
  // The peer ended its side with END_STREAM: its body is complete (a reset or a lost
  // connection after that does not change it).
  bool ended_cleanly() const noexcept { return inbound_ended_; }
  // The peer's whole body is here and has been read: END_STREAM came, nothing is left queued.
  bool body_read_to_end() const noexcept { return inbound_ended_ && inbound_.empty(); }
  // We refused the peer's header block: over SessionLimits::max_header_list_bytes.
  bool header_list_too_large() const noexcept { return header_list_too_large_; }
  // Frees the received header block (headers(), empty after this) once nobody reads it again: a
  // long-lived idle stream keeps only what it still needs.
  void release_headers() noexcept { headers_ = Headers(); }

  // --- Outbound ---

  // Server: sends the response headers; the body and trailers follow. Client: not used (the
  // request headers went with Session::open_stream). False when the stream is gone.
  bool send_headers(const Headers& headers);
  // Server: a trailers-only response (one HEADERS frame with END_STREAM).
  bool send_trailers_only(const Headers& headers);
  // Queues body bytes; waits while the send buffer holds more than its limit. False when the
  // stream is gone (reset, closed, connection lost): stop writing.
  rt::Task<bool> write(std::string bytes);
  // Queues body bytes without waiting for send space: for a bounded amount the caller already
  // holds (a request's first DATA chunk, at most one frame). False when the stream is gone.
  bool write_now(std::string bytes);
  // Ends our side: with trailers (server), or a plain END_STREAM (client: `trailers` empty).
  void end(Headers trailers = {});
  // Resets the stream with an HTTP/2 error code (RFC 9113: CANCEL = 8). Idempotent.
  void reset(uint32_t error_code);

  // --- State ---

  // The task serving this stream has begun its work (server role): a reset from now on is an
  // ordinary cancellation, not one counted by the rapid-reset rule (SessionLimits).
  void note_work_started() noexcept { work_started_ = true; }

  // Waits until the stream is closed on both sides (or reset, or the connection lost).
  rt::Task<void> wait_closed();
  bool closed() const noexcept { return closed_; }
  // The peer reset the stream (RST_STREAM), with this code.
  bool reset_by_peer() const noexcept { return reset_ && !reset_by_us_; }
  uint32_t reset_code() const noexcept { return reset_code_; }
  bool connection_lost() const noexcept { return connection_lost_; }
  // Bytes queued for sending and not yet taken by nghttp2.
  size_t send_buffered() const noexcept { return out_bytes_; }

 private:
  friend class Session;

  Session* session_;  // null once detached
  int32_t id_;

  // Inbound.
  Headers headers_;
  Headers trailers_;
  // The header block being received goes straight where it is read from once complete: the
  // first block to headers_, a later one to trailers_ (no third Headers per stream).
  Headers& block_receiving() noexcept { return headers_received_ ? trailers_ : headers_; }
  size_t building_bytes_ = 0;  // its RFC 7541 size
  bool headers_received_ = false;
  bool headers_only_ = false;
  bool inbound_ended_ = false;
  internal::ChunkQueue inbound_;
  rt::Event inbound_changed_;

  // Outbound.
  internal::ChunkQueue out_;
  size_t out_offset_ = 0;  // bytes of out_.front() already sent
  size_t out_bytes_ = 0;
  bool out_end_ = false;
  bool out_end_sent_ = false;
  Headers out_trailers_;
  bool deferred_ = false;  // nghttp2 asked for data we did not have yet
  bool headers_sent_ = false;
  rt::Event send_space_;

  // End of life.
  bool closed_ = false;
  bool reset_ = false;
  bool reset_by_us_ = false;
  uint32_t reset_code_ = 0;
  bool connection_lost_ = false;
  bool header_list_too_large_ = false;
  bool work_started_ = false;
  rt::Event closed_event_;

  // Server: the task serving this stream (cancelled when the peer resets it).
  rt::TaskHandle<void> task_;  // invalid until spawned
};

}  // namespace curfew::h2
