// Session: one HTTP/2 connection on nghttp2 1.52 (Debian's, with the rapid-reset and
// CONTINUATION fixes), driven by the runtime's epoll loop. Server role: serves a caller's
// connection, one task per stream. Client role: carries curfew's streams to one upstream.
//
//   h2::Session session(std::move(socket), h2::Role::kServer, limits);
//   co_await session.run([](std::shared_ptr<h2::Stream> s) -> rt::Task<void> { ... });
//
// run() reads the transport (h2/transport.h: a socket, or TLS) into nghttp2 (mem_recv) and writes
// what nghttp2 produces (mem_send, coalesced into one write per pass), until the connection ends.
// Flow control is the application's: the connection window is returned as bytes arrive, a stream's
// only when its reader takes them (Stream::read), so a slow reader throttles its writer end to end.
//
// Loop thread only. The Session must outlive run(); streams may outlive it (detached).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "h2/header.h"
#include "h2/internal/idle_reset_filter.h"
#include "h2/limits.h"
#include "h2/stream.h"
#include "h2/transport.h"
#include "runtime/before_poll.h"
#include "runtime/clock.h"
#include "runtime/event.h"
#include "runtime/socket.h"
#include "runtime/task.h"
#include "runtime/task_group.h"

struct nghttp2_session;

namespace curfew::h2 {

enum class Role { kServer, kClient };

// Serves one stream of a server session; spawned when its request headers are complete and
// cancelled when the peer resets the stream or the connection is lost.
using StreamHandler = std::function<rt::Task<void>(std::shared_ptr<Stream>)>;

// Why a session ended, for metrics and logs.
enum class CloseReason {
  kOpen,              // still running
  kPeerClosed,        // the peer closed the connection (EOF)
  kGoaway,            // GOAWAY exchanged and the last stream finished
  kProtocolError,     // nghttp2 found the peer's bytes invalid (it sends GOAWAY itself)
  kFlooded,           // nghttp2's flood limits (SETTINGS, PING ACKs, resets, CONTINUATION)
  kRapidReset,        // curfew's rapid-reset rule (SessionLimits::rapid_reset_*)
  kOversizedHeaders,  // the same rule, tripped mostly by header lists over the limit
  kRefusedStreams,    // the same rule, tripped mostly by streams over the stream limit
  kControlFlood,      // frames that do no work beyond SessionLimits::control_frame_*
  kHandshakeTimeout,  // no preface and SETTINGS within SessionLimits::handshake_timeout
  kHeadersTimeout,    // a header block left open past SessionLimits::headers_timeout
  kSocketError,       // read or write failed
  kKeepaliveTimeout,  // client role: nothing arrived within Keepalive::timeout of a PING
  kCancelled,         // run() was cancelled (curfew stopping)
  kInternalError,     // run() failed inside (a bug, memory): logged by whoever ran it
  kMaxAge,            // server role: past SessionLimits::max_age (GOAWAY, calls finished)
};
const char* close_reason_name(CloseReason reason) noexcept;
// The peer broke the protocol or one of the session's limits (a misbehaving or hostile peer).
bool peer_broke_a_limit(CloseReason reason) noexcept;

class Session {
 public:
  Session(std::unique_ptr<Transport> transport, Role role, const SessionLimits& limits);
  // On a plain socket.
  Session(rt::Socket socket, Role role, const SessionLimits& limits)
      : Session(std::make_unique<SocketTransport>(std::move(socket)), role, limits) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Serves the connection until it ends (server role: `handler` for each stream; client role:
  // pass nullptr). Returns normally however the connection ended (close_reason() says how);
  // cancelling it closes the connection at once and cancels every stream task.
  rt::Task<void> run(StreamHandler handler);

  // Client role: opens a stream with these request headers (pseudo-headers first); its body
  // follows with Stream::write/end. Null when the session accepts no new stream (GOAWAY, closed,
  // stream ids exhausted).
  std::shared_ptr<Stream> open_stream(const Headers& headers);

  // Waits until the peer's first SETTINGS arrived (the HTTP/2 connection is established, as
  // gRPC counts it) or the connection ended; true in the first case. run() must be running.
  rt::Task<bool> wait_ready();

  // Graceful close: GOAWAY with the last stream id processed; streams already open finish, no
  // new ones start. Server role: a shutdown notice first, the final GOAWAY one round trip later.
  void shutdown();

  // Streams that are open.
  size_t open_streams() const noexcept { return streams_.size(); }
  // New streams may be opened (client) or are accepted (server).
  bool accepting_streams() const noexcept;
  CloseReason close_reason() const noexcept { return close_reason_; }
  const std::string& peer() const noexcept { return transport_->peer(); }
  // Streams the peer reset since the session began (rapid-reset accounting).
  uint64_t streams_reset_by_peer() const noexcept { return streams_reset_by_peer_; }
  uint64_t streams_opened() const noexcept { return streams_opened_; }
  // Streams the peer reset before curfew did any work for them.
  uint64_t streams_reset_before_work() const noexcept { return streams_reset_before_work_; }

 private:
  friend class Stream;
  struct Callbacks;  // nghttp2's C callbacks (session.cc)

  rt::Task<void> serve(rt::TaskGroup& group);
  rt::Task<void> read_loop();
  rt::Task<void> write_loop();
  rt::Task<void> keepalive_loop();
  rt::Task<void> final_goaway_later();
  // Appends what nghttp2 has to send to `out`, up to a write batch (kWriteBatchBytes).
  void produce_output(std::string& out);
  // Wakes the writer, just before the loop next polls: nghttp2 may have something to send.
  void kick() noexcept { want_write_.set(); }
  void finish(CloseReason reason) noexcept;
  // A stream the peer opened came to nothing before any work was done for it: the rapid-reset
  // rule, which also counts streams refused for their header list or the stream limit.
  enum class Waste { kReset, kOversized, kRefused };
  void early_reset(Waste why = Waste::kReset) noexcept;
  // Closes the connection for a rule the peer broke: GOAWAY `error_code`, nothing more read,
  // and the socket shut down within kTerminateGrace even if the peer does not read the GOAWAY.
  void terminate(CloseReason reason, uint32_t error_code) noexcept;
  rt::Task<void> shut_down_later();
  // Charges the frames that did no work in the last read to the control-frame bucket (see
  // SessionLimits::control_frame_burst); closes the connection when it runs dry.
  void settle_control_frames() noexcept;
  // Real traffic: `tokens` for the control-frame bucket, settled with the next read's costs. At
  // most a bucket and a read's worth wait to be settled: earnings do not pile up for a flood.
  void earn_control_tokens(uint32_t tokens) noexcept {
    control_earned_ = std::min(control_earned_ + tokens, limits_.control_frame_burst + 2048);
  }
  // Server role: the handshake and header-block timeouts, and the connection's age
  // (SessionLimits).
  rt::Task<void> stall_guard();
  // The caller reset a stream it had not opened yet (IdleResetFilter held the reset back).
  void idle_reset() noexcept;
  // ...and its stream's HEADERS came after all: the reset is replayed and counted as usual.
  void idle_reset_replayed() noexcept;
  // A stream the caller opened, in the rapid-reset rule's window.
  void count_in_reset_window() noexcept;
  void detach_streams() noexcept;
  Stream* find(int32_t id) noexcept;
  void spawn_handler(const std::shared_ptr<Stream>& stream);

  // Stream operations (stream.cc calls these).
  bool submit_response(Stream& s, const Headers& headers, bool with_body);
  void resume(Stream& s);
  void consume(Stream& s, size_t bytes);
  // `bytes` buffered on the connection were taken (or dropped): may return connection window.
  void taken(size_t bytes);
  void submit_reset(Stream& s, uint32_t error_code);

  std::unique_ptr<Transport> transport_;
  Role role_;
  SessionLimits limits_;
  nghttp2_session* session_ = nullptr;
  StreamHandler handler_;
  rt::TaskGroup* group_ = nullptr;  // while run() runs
  std::unordered_map<int32_t, std::shared_ptr<Stream>> streams_;
  internal::IdleResetFilter idle_resets_;  // server role
  rt::BeforePollEvent want_write_;
  // Output the reader produced before the writer's turn (see read_loop), sent first. A member
  // apart from the writer's own buffer: the writer may be suspended mid-write of that one.
  std::string early_out_;
  bool invalid_frame_in_read_ = false;  // nghttp2 rejected a frame of the read being processed
  rt::Event ready_;                     // the peer's SETTINGS arrived, or the session ended
  // Keepalive (client role): when bytes last arrived; a PING is out and bytes are awaited; they
  // arrived.
  rt::TimePoint last_read_{};
  bool awaiting_peer_ = false;
  rt::Event heard_from_peer_;
  bool peer_settings_ = false;
  bool done_ = false;
  bool shutting_down_ = false;
  CloseReason close_reason_ = CloseReason::kOpen;
  uint64_t streams_reset_by_peer_ = 0;
  size_t inbound_buffered_ = 0;  // received, not yet taken by the streams' readers
  size_t connection_debt_ = 0;   // connection window not returned yet (over the buffer limit)
  uint64_t streams_opened_ = 0;
  uint64_t streams_reset_before_work_ = 0;
  uint32_t window_opened_ = 0;  // the rapid-reset rule's window (SessionLimits)
  uint32_t window_early_resets_ = 0;
  uint32_t window_oversized_ = 0;  // of which header lists curfew refused
  uint32_t window_refused_ = 0;    // and streams refused over the stream limit
  // The control-frame bucket (SessionLimits::control_frame_*); time refills it lazily, when it
  // runs dry, so that the per-frame path reads no clock.
  uint32_t control_tokens_ = 0;
  uint32_t control_spent_ = 0;   // in the read being processed
  uint32_t control_earned_ = 0;  // since the last settlement
  rt::TimePoint control_refilled_at_{};
  // A header block is open (HEADERS or CONTINUATION without END_HEADERS seen last), and how many
  // have begun: the headers timeout sees the same block open at two of its checks.
  bool in_header_block_ = false;
  bool aged_out_ = false;  // GOAWAY sent for max_age: the connection's end is reported so
  uint64_t header_blocks_begun_ = 0;
};

}  // namespace curfew::h2
