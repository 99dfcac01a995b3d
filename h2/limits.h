// SessionLimits: every limit of an HTTP/2 session, set on purpose (nghttp2's defaults are not
// curfew's: its reset bucket would disconnect a legitimate caller whose deadlines expire often).
// The sidecar fills these from its config; the defaults are what a gRPC proxy wants.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace curfew::h2 {

// Client role, keepalive: while streams are open and nothing arrived for `time`, a PING goes out;
// when nothing at all arrives within `timeout` after it, the peer is gone (a vanished pod, a
// dropped route): the connection ends (CloseReason::kKeepaliveTimeout) and its streams fail,
// instead of waiting for their deadlines. No PING on a connection without streams, and none more
// often than `time`: gRPC servers answer pings more frequent than every 5 minutes without data,
// or any without calls, with GOAWAY too_many_pings. Zero time: off.
struct Keepalive {
  std::chrono::nanoseconds time{0};
  std::chrono::nanoseconds timeout{0};
};

struct SessionLimits {
  // SETTINGS_MAX_CONCURRENT_STREAMS we advertise (server side: per caller connection).
  uint32_t max_concurrent_streams = 1000;
  // SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window. nghttp2 has no BDP probing, so
  // this is what one stream may have in flight: 1 MiB covers ~1 Gbit/s at 8 ms RTT.
  int32_t stream_window_bytes = 1 << 20;
  // The connection's receive window (returned as bytes arrive, not as streams take them).
  int32_t connection_window_bytes = 16 << 20;
  // Bytes received on a connection and not yet taken by its streams' readers beyond which the
  // connection window too waits for readers: bounds one connection's buffered memory (else
  // max_concurrent_streams × stream window).
  size_t max_connection_buffer_bytes = 32 << 20;
  // SETTINGS_MAX_HEADER_LIST_SIZE advertised and enforced on received header blocks (RFC 7541
  // accounting: name + value + 32 per field).
  uint32_t max_header_list_bytes = 16 << 10;
  // SETTINGS_MAX_FRAME_SIZE we accept.
  uint32_t max_frame_bytes = 16 << 10;
  // Largest header block we send (a forwarded trailer may be large: at least the metadata limit).
  size_t max_send_header_block_bytes = 64 << 10;
  // Incoming RST_STREAM token bucket (nghttp2: GOAWAY when empty). Sized so that legitimate
  // cancellation never trips it: a caller at c=64 whose calls all hit 10 ms deadlines resets
  // 6,400 streams/s; rapid reset is caught by curfew's own rule on top (streams reset before any
  // work), not by this bucket.
  uint64_t reset_burst = 10000;
  uint64_t reset_rate_per_second = 10000;
  // curfew's own rapid-reset rule (CVE-2023-44487), on top of nghttp2's bucket: among the last
  // `rapid_reset_window` streams a caller opened, once `rapid_reset_min_streams` were reset by
  // it before curfew did any work for them (their task had not run) and they are at least
  // `rapid_reset_percent` of the streams opened, the connection is closed with GOAWAY
  // ENHANCE_YOUR_CALM. A legitimate caller cancels calls curfew is already serving: those do not
  // count, however many of its deadlines expire.
  uint32_t rapid_reset_window = 1000;
  uint32_t rapid_reset_min_streams = 200;
  uint32_t rapid_reset_percent = 50;
  // The rule counts, beside resets, the streams curfew refused for a header list over
  // max_header_list_bytes (HPACK bloat: cheap to send, costly to decode, no work done), and on
  // its own closes a connection after `max_oversized_header_lists` of those among the window's
  // streams: no client sends that many by mistake, and each costs a whole block's decoding.
  uint32_t max_oversized_header_lists = 16;
  // Server role, against a caller that holds a connection without speaking (slowloris): the
  // preface and first SETTINGS must arrive within `handshake_timeout`, and a header block once
  // begun (HEADERS without END_HEADERS) must be complete within `headers_timeout` (nghttp2
  // processes nothing else on the connection meanwhile); else the connection is closed. 0: off.
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds headers_timeout = std::chrono::seconds(10);
  // Server role, frames that do no work (PING, SETTINGS, WINDOW_UPDATE, PRIORITY, unknown types,
  // DATA with neither payload nor END_STREAM, HEADERS that open no stream; counted as they are
  // read, including those nghttp2 drops unseen): each costs a token from a bucket of
  // `control_frame_burst`, refilled at `control_frames_per_second` and by the connection's real
  // traffic (a token per HEADERS or DATA frame received, two per one sent: a peer's window
  // updates and BDP pings follow the data it receives). Empty: GOAWAY ENHANCE_YOUR_CALM. nghttp2
  // alone only catches floods whose ACKs the attacker does not read (max_outbound_ack).
  uint32_t control_frame_burst = 1000;
  uint32_t control_frames_per_second = 100;
  // Server role: a connection older than `max_age` (±10%, so that connections opened together do
  // not all turn over together) gets GOAWAY and its calls finish; `max_age_grace` later,
  // whatever is left is closed. Callers reconnect, maybe to another replica: long-lived
  // connections rebalance after a scale-up. 0: never / no forced close.
  std::chrono::nanoseconds max_age{0};
  std::chrono::nanoseconds max_age_grace{0};
  // CONTINUATION frames after one HEADERS (CVE-2024-28182).
  size_t max_continuations = 8;
  // Queued outbound SETTINGS/PING ACKs before the peer is treated as flooding.
  size_t max_outbound_ack = 1000;
  // Entries in one SETTINGS frame.
  size_t max_settings = 32;
  // Bytes a stream may queue for sending before its writer waits (backpressure end to end).
  size_t stream_send_buffer_bytes = 256 << 10;
  // Client role: see Keepalive.
  Keepalive keepalive;
};

}  // namespace curfew::h2
