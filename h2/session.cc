#include "h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "runtime/errors.h"
#include "runtime/sleep.h"

namespace curfew::h2 {
namespace {

// nghttp2 copies header names and values at submit time: the array only lives for the call, on
// the stack for any usual block.
absl::InlinedVector<nghttp2_nv, 16> to_nv(const Headers& headers) {
  absl::InlinedVector<nghttp2_nv, 16> nv;
  nv.reserve(headers.size());
  for (const Header h : headers) {
    nv.push_back({const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(h.name.data())),
                  const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(h.value.data())),
                  h.name.size(), h.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

// Room reserved for a header block as it arrives (names, values, 8 bytes a field), at once instead
// of growing field by field: a gRPC request from grpc-core or grpc-go (4 pseudo-headers, te,
// content-type, user-agent, grpc-timeout, grpc-accept-encoding: ~300 bytes) and a response's
// headers or trailers (:status, content-type, grpc-encoding; grpc-status, grpc-message). Larger
// blocks grow the buffer (doubling). An idle stream keeps its request headers, so this is not
// generous.
constexpr size_t kRequestHeaderBytesReserved = 384;
constexpr size_t kResponseHeaderBytesReserved = 160;
// One write per pass of at most this much of nghttp2's output (frames coalesced).
constexpr size_t kWriteBatchBytes = 64 << 10;
constexpr size_t kReadBufferBytes = 16 << 10;
// Between the server's shutdown notice and its final GOAWAY: a generous round trip.
constexpr rt::Duration kShutdownNoticeGrace = std::chrono::milliseconds(100);
// Between closing a connection for a broken rule (GOAWAY queued) and shutting its socket down
// whether or not the peer read the GOAWAY.
constexpr rt::Duration kTerminateGrace = std::chrono::milliseconds(250);

// Frames that do no work for a stream: metered by the control-frame bucket (SessionLimits).
// HEADERS, CONTINUATION and RST_STREAM have their own rules; GOAWAY ends the connection.
bool does_no_work(uint8_t type, uint8_t flags, uint32_t length) {
  switch (type) {
    case NGHTTP2_DATA:
      return length == 0 && (flags & NGHTTP2_FLAG_END_STREAM) == 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_CONTINUATION:
    case NGHTTP2_RST_STREAM:
    case NGHTTP2_GOAWAY:
      return false;
    default:  // PING, SETTINGS, WINDOW_UPDATE, PRIORITY, PUSH_PROMISE, unknown extensions
      return true;
  }
}

}  // namespace

const char* close_reason_name(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::kOpen:
      return "open";
    case CloseReason::kPeerClosed:
      return "peer_closed";
    case CloseReason::kGoaway:
      return "goaway";
    case CloseReason::kProtocolError:
      return "protocol_error";
    case CloseReason::kFlooded:
      return "flooded";
    case CloseReason::kRapidReset:
      return "rapid_reset";
    case CloseReason::kOversizedHeaders:
      return "oversized_headers";
    case CloseReason::kRefusedStreams:
      return "refused_streams";
    case CloseReason::kControlFlood:
      return "control_flood";
    case CloseReason::kHandshakeTimeout:
      return "handshake_timeout";
    case CloseReason::kHeadersTimeout:
      return "headers_timeout";
    case CloseReason::kSocketError:
      return "socket_error";
    case CloseReason::kKeepaliveTimeout:
      return "keepalive_timeout";
    case CloseReason::kCancelled:
      return "cancelled";
    case CloseReason::kInternalError:
      return "internal_error";
    case CloseReason::kMaxAge:
      return "max_age";
  }
  return "unknown";
}

bool peer_broke_a_limit(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::kProtocolError:
    case CloseReason::kFlooded:
    case CloseReason::kRapidReset:
    case CloseReason::kOversizedHeaders:
    case CloseReason::kRefusedStreams:
    case CloseReason::kControlFlood:
    case CloseReason::kHandshakeTimeout:
    case CloseReason::kHeadersTimeout:
      return true;
    default:
      return false;
  }
}

// nghttp2's callbacks, each a thin step into Session or Stream state. They run inside
// nghttp2_session_mem_recv/mem_send on the loop thread and never destroy the session.
struct Session::Callbacks {
  static Session& self(void* user_data) { return *static_cast<Session*>(user_data); }

  // Server role: every frame the caller sends, as its 9-byte header is read (IdleResetFilter),
  // before nghttp2 sees it: also the frames nghttp2 drops without a callback (DATA for a closed
  // stream, unknown types), which cost a read and a parse all the same.
  static void on_frame_header(void* context, const internal::IdleResetFilter::Frame& f) noexcept {
    Session& s = self(context);
    if (f.type == NGHTTP2_HEADERS || f.type == NGHTTP2_CONTINUATION) {
      const bool open = (f.flags & NGHTTP2_FLAG_END_HEADERS) == 0;
      if (open && f.type == NGHTTP2_HEADERS) ++s.header_blocks_begun_;
      s.in_header_block_ = open;
      // A HEADERS that opens no stream (trailers, or for a stream already closed: nghttp2
      // decodes and drops it) is work without a call.
      if (f.type == NGHTTP2_HEADERS && !f.opens_stream) ++s.control_spent_;
      return;
    }
    s.in_header_block_ = false;
    if (does_no_work(f.type, f.flags, f.length)) ++s.control_spent_;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Session& s = self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (s.role_ == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto stream = std::make_shared<Stream>(s, frame->hd.stream_id);
      stream->headers_.reserve(0, kRequestHeaderBytesReserved);
      nghttp2_session_set_stream_user_data(s.session_, frame->hd.stream_id, stream.get());
      s.streams_.emplace(frame->hd.stream_id, std::move(stream));
      ++s.streams_opened_;
      s.count_in_reset_window();
      return 0;
    }
    if (Stream* stream = s.find(frame->hd.stream_id)) {
      Headers& block = stream->block_receiving();  // response headers, or trailers
      block.clear();
      block.reserve(0, kResponseHeaderBytesReserved);
      stream->building_bytes_ = 0;
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user_data) {
    Session& s = self(user_data);
    Stream* stream = s.find(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    // nghttp2 only advertises SETTINGS_MAX_HEADER_LIST_SIZE; enforcing it is ours (RFC 7541
    // accounting). Failing here resets just this stream.
    stream->building_bytes_ += namelen + valuelen + 32;
    if (stream->building_bytes_ > s.limits_.max_header_list_bytes) {
      // nghttp2 resets the stream (INTERNAL_ERROR): our refusal, not the peer's reset.
      stream->reset_ = true;
      stream->reset_by_us_ = true;
      stream->reset_code_ = NGHTTP2_INTERNAL_ERROR;
      stream->header_list_too_large_ = true;
      if (s.role_ == Role::kServer) s.early_reset(Waste::kOversized);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    stream->block_receiving().push_back(
        {std::string_view(reinterpret_cast<const char*>(name), namelen),
         std::string_view(reinterpret_cast<const char*>(value), valuelen)});
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Session& s = self(user_data);
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    // Real traffic nghttp2 accepted earns control-frame tokens back (SessionLimits).
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.length > 0 || end_stream))
      s.earn_control_tokens(1);
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !s.peer_settings_) {
          s.peer_settings_ = true;
          s.ready_.set();
        }
        return 0;
      case NGHTTP2_HEADERS: {
        auto it = s.streams_.find(frame->hd.stream_id);
        if (it == s.streams_.end()) return 0;
        Stream& stream = *it->second;
        // The block arrived whole in headers_ or trailers_ (Stream::block_receiving): readers
        // look at either only from now on.
        if (!stream.headers_received_) {
          stream.headers_received_ = true;
          stream.headers_only_ = end_stream;
          if (s.role_ == Role::kServer) s.spawn_handler(it->second);
        }
        if (end_stream) stream.inbound_ended_ = true;
        stream.inbound_changed_.set();
        return 0;
      }
      case NGHTTP2_DATA:
        if (end_stream) {
          if (Stream* stream = s.find(frame->hd.stream_id)) {
            stream->inbound_ended_ = true;
            stream->inbound_changed_.set();
          }
        }
        return 0;
      default:
        return 0;
    }
  }

  static int on_data_chunk_recv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                const uint8_t* data, size_t len, void* user_data) {
    Session& s = self(user_data);
    Stream* stream = s.find(stream_id);
    if (stream == nullptr) {
      nghttp2_session_consume_connection(session, len);  // nobody will read these bytes
      return 0;
    }
    // The connection window is returned on receipt (one slow stream must not stall the others),
    // the stream's when its reader takes the bytes; past max_connection_buffer_bytes unread on
    // the whole connection, the connection's too waits for readers (bounded memory).
    s.inbound_buffered_ += len;
    if (s.inbound_buffered_ <= s.limits_.max_connection_buffer_bytes) {
      nghttp2_session_consume_connection(session, len);
    } else {
      s.connection_debt_ += len;
    }
    stream->inbound_.emplace_back(reinterpret_cast<const char*>(data), len);
    stream->inbound_changed_.set();
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                             void* user_data) {
    Session& s = self(user_data);
    auto it = s.streams_.find(stream_id);
    if (it == s.streams_.end()) return 0;
    std::shared_ptr<Stream> stream = std::move(it->second);
    s.streams_.erase(it);
    size_t unread = 0;
    stream->inbound_.for_each([&](const std::string& chunk) { unread += chunk.size(); });
    stream->closed_ = true;
    stream->session_ = nullptr;  // nothing more to ask of nghttp2 for this stream
    if (!stream->reset_by_us_ && (error_code != NGHTTP2_NO_ERROR || !stream->inbound_ended_)) {
      stream->reset_ = true;
      stream->reset_code_ = error_code;
      ++s.streams_reset_by_peer_;
      if (s.role_ == Role::kServer && !stream->work_started_) s.early_reset();
    }
    // The peer gave up on a stream we were still answering: cancel the task serving it.
    if (stream->task_.valid() && !stream->out_end_sent_ && !stream->reset_by_us_)
      stream->task_.cancel("the peer reset the stream");
    stream->inbound_changed_.set();
    stream->send_space_.set();
    stream->closed_event_.set();
    // Its unread bytes no longer count against the connection (still readable by its task,
    // which no longer returns them: the session has forgotten the stream).
    if (unread > 0) s.taken(unread);
    return 0;
  }

  // nghttp2 answers an invalid frame with a RST_STREAM or, for a connection error, a GOAWAY that
  // ends the session; which one shows only when the GOAWAY is produced (on_frame_send).
  static int on_invalid_frame_recv(nghttp2_session*, const nghttp2_frame*, int, void* user_data) {
    self(user_data).invalid_frame_in_read_ = true;
    return 0;
  }

  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Session& s = self(user_data);
    if (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)
      s.earn_control_tokens(2);
    // nghttp2 refused a stream over SETTINGS_MAX_CONCURRENT_STREAMS before opening it (no
    // on_begin_headers): it counts for the rapid-reset rule as an opened, wasted stream.
    if (s.role_ == Role::kServer && frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM &&
        s.find(frame->hd.stream_id) == nullptr) {
      s.count_in_reset_window();
      s.early_reset(Waste::kRefused);
    }
    // Our side of a server stream is complete while the caller is still sending: the request is
    // not wanted any more, and RST_STREAM(NO_ERROR) frees the stream (RFC 9113 §8.1) instead of
    // leaving it open, holding a concurrency slot and buffered bytes.
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && s.role_ == Role::kServer &&
        (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
      Stream* stream = s.find(frame->hd.stream_id);
      if (stream != nullptr && !stream->inbound_ended_ && !stream->reset_) {
        stream->reset_ = true;
        stream->reset_by_us_ = true;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
      }
    }
    // A GOAWAY with an error that curfew did not submit is nghttp2 shedding a misbehaving peer
    // (flood limits, protocol errors).
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      s.finish(frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM ? CloseReason::kFlooded
                                                                     : CloseReason::kProtocolError);
    }
    return 0;
  }

  static ssize_t read_data(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    // Looked up, not taken from the data source: a stream detached from the session (the
    // connection ended for reading) may still be asked for data by a last mem_send.
    Stream* stream = self(user_data).find(stream_id);
    if (stream == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = 0;
    while (n < length && !stream->out_.empty()) {
      const std::string& front = stream->out_.front();
      const size_t take = std::min(length - n, front.size() - stream->out_offset_);
      std::copy_n(front.data() + stream->out_offset_, take, reinterpret_cast<char*>(buf) + n);
      n += take;
      stream->out_offset_ += take;
      if (stream->out_offset_ == front.size()) {
        stream->out_.pop_front();
        stream->out_offset_ = 0;
      }
    }
    stream->out_bytes_ -= n;
    if (n > 0) stream->send_space_.set();
    if (stream->out_.empty()) {
      if (stream->out_end_) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!stream->out_trailers_.empty()) {
          *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          auto nv = to_nv(stream->out_trailers_);
          if (nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size()) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets this stream, not the connection
        }
        stream->out_end_sent_ = true;
      } else if (n == 0) {
        stream->deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }
};

Session::Session(std::unique_ptr<Transport> transport, Role role, const SessionLimits& limits)
    : transport_(std::move(transport)),
      role_(role),
      limits_(limits),
      control_tokens_(limits.control_frame_burst) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            Callbacks::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, Callbacks::on_frame_send);
  if (role_ == Role::kServer) {
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks,
                                                                 Callbacks::on_invalid_frame_recv);
  }

  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_send_header_block_length(option, limits_.max_send_header_block_bytes);
  nghttp2_option_set_stream_reset_rate_limit(option, limits_.reset_burst,
                                             limits_.reset_rate_per_second);
  nghttp2_option_set_max_continuations(option, limits_.max_continuations);
  nghttp2_option_set_max_outbound_ack(option, limits_.max_outbound_ack);
  nghttp2_option_set_max_settings(option, limits_.max_settings);
  // gRPC metadata values may carry leading or trailing blanks; RFC 9113's stricter rule would
  // reset such a stream.
  nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(option, 1);

  const int rv = role_ == Role::kServer
                     ? nghttp2_session_server_new2(&session_, callbacks, this, option)
                     : nghttp2_session_client_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) throw std::runtime_error(std::string("nghttp2 session: ") + nghttp2_strerror(rv));

  std::vector<nghttp2_settings_entry> settings = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits_.stream_window_bytes)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_bytes},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, limits_.max_frame_bytes},
  };
  if (role_ == Role::kClient) settings.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        limits_.connection_window_bytes);
  // The session neither moves nor copies: `this` stays valid for the filter.
  if (role_ == Role::kServer) idle_resets_.observe_frames(&Callbacks::on_frame_header, this);
}

Session::~Session() {
  detach_streams();
  nghttp2_session_del(session_);
}

Stream* Session::find(int32_t id) noexcept {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

bool Session::accepting_streams() const noexcept {
  if (done_ || shutting_down_) return false;
  return role_ == Role::kServer || nghttp2_session_check_request_allowed(session_) != 0;
}

void Session::early_reset(Waste why) noexcept {
  ++streams_reset_before_work_;
  ++window_early_resets_;
  if (why == Waste::kOversized) ++window_oversized_;
  if (why == Waste::kRefused) ++window_refused_;
  if (window_oversized_ >= limits_.max_oversized_header_lists) {
    terminate(CloseReason::kOversizedHeaders, NGHTTP2_ENHANCE_YOUR_CALM);
    return;
  }
  if (window_early_resets_ >= limits_.rapid_reset_min_streams &&
      uint64_t{window_early_resets_} * 100 >=
          uint64_t{window_opened_} * limits_.rapid_reset_percent) {
    // Named after what most of the wasted streams were, for the metrics and the log.
    CloseReason reason = CloseReason::kRapidReset;
    if (window_oversized_ * 2 > window_early_resets_) reason = CloseReason::kOversizedHeaders;
    if (window_refused_ * 2 > window_early_resets_) reason = CloseReason::kRefusedStreams;
    terminate(reason, NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

void Session::settle_control_frames() noexcept {
  // Settled once per read, after nghttp2 took the read's frames: what their real traffic earned
  // counts before what its control frames cost (a caller's WINDOW_UPDATEs and PINGs usually
  // arrive in the same read as the calls that justify them).
  if (control_spent_ == 0) return;
  int64_t available = int64_t{control_tokens_} + std::exchange(control_earned_, 0);
  const int64_t spent = std::exchange(control_spent_, 0);
  if (spent > available && limits_.control_frames_per_second > 0) {
    const rt::TimePoint now = rt::Clock::now();
    const int64_t earned =
        std::chrono::duration_cast<std::chrono::microseconds>(now - control_refilled_at_).count() *
        limits_.control_frames_per_second / 1000000;
    if (earned > 0) {
      available += std::min<int64_t>(earned, limits_.control_frame_burst);
      control_refilled_at_ = now;
    }
  }
  if (spent <= available) {
    control_tokens_ =
        static_cast<uint32_t>(std::min<int64_t>(available - spent, limits_.control_frame_burst));
    return;
  }
  control_tokens_ = 0;
  terminate(CloseReason::kControlFlood, NGHTTP2_ENHANCE_YOUR_CALM);
}

void Session::terminate(CloseReason reason, uint32_t error_code) noexcept {
  if (close_reason_ != CloseReason::kOpen) return;
  close_reason_ = reason;
  nghttp2_session_terminate_session(session_, error_code);
  kick();
  if (group_ != nullptr && !group_->aborting()) {
    try {
      group_->spawn(shut_down_later(), "h2-terminate");
    } catch (...) {  // no memory for the timer: shut down now, GOAWAY or not
      transport_->shutdown_both();
    }
  }
}

rt::Task<void> Session::shut_down_later() {
  co_await rt::sleep(kTerminateGrace);
  // A peer that reads its GOAWAY is gone by now; one that does not read is cut off.
  if (!done_) transport_->shutdown_both();
}

rt::Task<void> Session::stall_guard() {
  const rt::TimePoint born = rt::Clock::now();
  if (limits_.handshake_timeout > rt::Duration::zero()) {
    co_await ready_.wait_until(born + limits_.handshake_timeout);
    if (!peer_settings_) {
      if (!done_) terminate(CloseReason::kHandshakeTimeout, NGHTTP2_PROTOCOL_ERROR);
      co_return;
    }
  }
  const bool check_headers = limits_.headers_timeout > rt::Duration::zero();
  std::optional<rt::TimePoint> age_at, grace_at;
  if (limits_.max_age > rt::Duration::zero()) {
    // ±10%, from the session's address and birth: no shared random state across loop threads.
    const uint64_t mix = (reinterpret_cast<uintptr_t>(this) >> 4) ^
                         static_cast<uint64_t>(born.time_since_epoch().count());
    const double jitter = 0.9 + 0.2 * static_cast<double>(mix % 1001) / 1000.0;
    age_at = born + std::chrono::duration_cast<rt::Duration>(limits_.max_age * jitter);
  }
  // The same header block open at two checks a timeout apart was open at least that long.
  std::optional<uint64_t> open_block;
  rt::TimePoint next_check = born + limits_.headers_timeout;
  for (;;) {  // until serve() cancels it as the connection ends, or nothing is left to watch
    rt::TimePoint wake = rt::TimePoint::max();
    if (check_headers) wake = next_check;
    if (age_at && !aged_out_) wake = std::min(wake, *age_at);
    if (grace_at) wake = std::min(wake, *grace_at);
    if (wake == rt::TimePoint::max()) co_return;
    co_await rt::sleep_until(wake);
    if (done_ || close_reason_ != CloseReason::kOpen) co_return;
    const rt::TimePoint now = rt::Clock::now();
    if (age_at && !aged_out_ && now >= *age_at) {
      aged_out_ = true;
      shutdown();  // GOAWAY: no new streams; those open finish
      if (limits_.max_age_grace > rt::Duration::zero()) grace_at = now + limits_.max_age_grace;
    }
    if (grace_at && now >= *grace_at) {
      terminate(CloseReason::kMaxAge, NGHTTP2_NO_ERROR);
      co_return;
    }
    if (check_headers && now >= next_check) {
      if (in_header_block_ && open_block == header_blocks_begun_) {
        terminate(CloseReason::kHeadersTimeout, NGHTTP2_PROTOCOL_ERROR);
        co_return;
      }
      open_block = in_header_block_ ? std::optional(header_blocks_begun_) : std::nullopt;
      next_check = now + limits_.headers_timeout;
    }
  }
}

void Session::idle_reset() noexcept {
  // A stream opened and reset at once, for the rapid-reset rule: a flood of such resets is
  // caught as one of HEADERS and RST_STREAM pairs is.
  count_in_reset_window();
  early_reset();
}

void Session::idle_reset_replayed() noexcept {
  // The stream opened after all and its reset follows now: nghttp2's callbacks count both, so
  // what idle_reset() counted for it is taken back (saturating: a new window may have begun).
  if (window_opened_ > 0) --window_opened_;
  if (window_early_resets_ > 0) --window_early_resets_;
  if (streams_reset_before_work_ > 0) --streams_reset_before_work_;
}

void Session::count_in_reset_window() noexcept {
  if (++window_opened_ > limits_.rapid_reset_window) {  // a new window begins
    window_opened_ = 1;
    window_early_resets_ = 0;
    window_oversized_ = 0;
    window_refused_ = 0;
  }
}

void Session::finish(CloseReason reason) noexcept {
  // A connection that aged out ends when its last call did (or its peer, told by the GOAWAY,
  // closed it): it ended for its age.
  if (aged_out_ && (reason == CloseReason::kGoaway || reason == CloseReason::kPeerClosed))
    reason = CloseReason::kMaxAge;
  if (close_reason_ == CloseReason::kOpen) close_reason_ = reason;
  done_ = true;
  ready_.set();
}

rt::Task<bool> Session::wait_ready() {
  if (!ready_.is_set()) co_await ready_.wait();
  co_return peer_settings_ && !done_;
}

void Session::detach_streams() noexcept {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, stream] : streams) {
    stream->session_ = nullptr;
    stream->closed_ = true;
    stream->connection_lost_ = true;
    if (stream->task_.valid()) stream->task_.cancel("the connection was lost");
    stream->inbound_changed_.set();
    stream->send_space_.set();
    stream->closed_event_.set();
  }
}

void Session::spawn_handler(const std::shared_ptr<Stream>& stream) {
  if (group_ == nullptr || !handler_ || group_->aborting()) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id(), NGHTTP2_REFUSED_STREAM);
    return;
  }
  stream->task_ = group_->spawn(handler_(stream), "h2-stream");
}

std::shared_ptr<Stream> Session::open_stream(const Headers& headers) {
  if (role_ != Role::kClient || !accepting_streams()) return nullptr;
  auto stream = std::make_shared<Stream>(*this, 0);
  nghttp2_data_provider provider{};
  provider.source.ptr = stream.get();
  provider.read_callback = Callbacks::read_data;
  auto nv = to_nv(headers);
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), &provider, stream.get());
  if (id < 0) return nullptr;
  stream->id_ = id;
  stream->headers_sent_ = true;
  streams_.emplace(id, stream);
  ++streams_opened_;
  kick();
  return stream;
}

bool Session::submit_response(Stream& s, const Headers& headers, bool with_body) {
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = Callbacks::read_data;
  auto nv = to_nv(headers);
  const int rv = nghttp2_submit_response(session_, s.id(), nv.data(), nv.size(),
                                         with_body ? &provider : nullptr);
  if (rv != 0) return false;
  s.headers_sent_ = true;
  if (!with_body) s.out_end_sent_ = true;
  kick();
  return true;
}

void Session::resume(Stream& s) {
  if (s.deferred_ && s.headers_sent_) {
    s.deferred_ = false;
    nghttp2_session_resume_data(session_, s.id());
  }
  kick();
}

void Session::consume(Stream& s, size_t bytes) {
  nghttp2_session_consume_stream(session_, s.id(), bytes);
  taken(bytes);
}

void Session::taken(size_t bytes) {
  inbound_buffered_ -= std::min(inbound_buffered_, bytes);
  if (connection_debt_ > 0 && inbound_buffered_ < limits_.max_connection_buffer_bytes) {
    nghttp2_session_consume_connection(session_, connection_debt_);
    connection_debt_ = 0;
  }
  kick();
}

void Session::submit_reset(Stream& s, uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id(), error_code);
  kick();
}

void Session::shutdown() {
  if (done_ || shutting_down_) return;
  shutting_down_ = true;
  if (role_ == Role::kServer && group_ != nullptr && !group_->aborting()) {
    nghttp2_submit_shutdown_notice(session_);
    group_->spawn(final_goaway_later(), "h2-goaway");
  } else {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                          nullptr, 0);
  }
  kick();
}

rt::Task<void> Session::final_goaway_later() {
  co_await rt::sleep(kShutdownNoticeGrace);
  if (done_) co_return;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  kick();
}

rt::Task<void> Session::run(StreamHandler handler) {
  handler_ = std::move(handler);
  rt::TaskGroup group;
  group_ = &group;
  try {
    co_await group.run(serve(group));
  } catch (...) {
    // A cancellation (curfew stopping) is not an exception; anything else is a failure inside.
    CloseReason why = CloseReason::kInternalError;
    try {
      throw;
    } catch (const std::exception&) {
    } catch (...) {
      why = CloseReason::kCancelled;
    }
    finish(why);
    group_ = nullptr;
    detach_streams();
    transport_->close();
    throw;
  }
  group_ = nullptr;
  detach_streams();
  transport_->close();
}

rt::Task<void> Session::serve(rt::TaskGroup& group) {
  kick();  // our SETTINGS (queued by the constructor) go first
  auto writer = group.spawn(write_loop(), "h2-writer");
  rt::TaskHandle<void> keepalive;
  last_read_ = rt::Clock::now();
  if (role_ == Role::kClient && limits_.keepalive.time > rt::Duration::zero())
    keepalive = group.spawn(keepalive_loop(), "h2-keepalive");
  rt::TaskHandle<void> guard;
  if (role_ == Role::kServer) {
    control_refilled_at_ = last_read_;
    guard = group.spawn(stall_guard(), "h2-stall-guard");
  }
  co_await read_loop();
  if (keepalive.valid()) keepalive.cancel("the connection is over");
  if (guard.valid()) guard.cancel("the connection is over");
  // The connection is over for reading: whatever is still being served has no one to answer.
  // Nothing more is sent for its streams (nghttp2 stops asking for their data); a GOAWAY goes
  // out if the socket still takes it.
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  done_ = true;
  kick();
  detach_streams();
  // The writer ends by itself once it flushed, unless the peer stopped taking bytes. kick() put
  // it on the before-poll list ahead of this task: a few such turns let it flush.
  for (int turn = 0; turn < 3 && !writer.done(); ++turn) co_await rt::before_poll();
  if (!writer.done()) writer.cancel("the connection is closed");
}

rt::Task<void> Session::read_loop() {
  std::array<char, kReadBufferBytes> buf;  // in the coroutine frame: one per connection
  bool drained = false;  // the last read took less than the buffer: the socket is (likely) empty
  for (;;) {
    if (done_ ||
        (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0)) {
      finish(CloseReason::kGoaway);
      co_return;
    }
    size_t n = 0;
    try {
      // After a short read, wait for the next edge instead of reading again at once: that read
      // would mostly say EAGAIN, and meanwhile the streams' tasks run and more bytes gather, so
      // one read takes many frames (measured: ~6 reads per write without this at c=64).
      if (drained) co_await transport_->readable();
      n = co_await transport_->read_some(buf);
    } catch (const std::system_error&) {
      finish(CloseReason::kSocketError);
      co_return;
    }
    if (n == 0) {
      finish(CloseReason::kPeerClosed);
      co_return;
    }
    if (role_ == Role::kClient && limits_.keepalive.time > rt::Duration::zero()) {
      last_read_ = rt::Clock::now();  // no clock read per read when keepalive is off
      if (awaiting_peer_) {           // any bytes will do as the answer to a keepalive PING
        awaiting_peer_ = false;
        heard_from_peer_.set();
      }
    }
    drained = n < buf.size();
    // Closing for a broken rule: nothing more the peer sends is worth decoding; read on only to
    // see the connection end.
    if (close_reason_ != CloseReason::kOpen) continue;
    ssize_t rv = 0;
    auto deliver = [&](std::span<const uint8_t> bytes) {
      rv = nghttp2_session_mem_recv(session_, bytes.data(), bytes.size());
      return rv >= 0;
    };
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(buf.data()), n);
    if (role_ == Role::kServer) {
      idle_resets_.feed(
          bytes, deliver, [this] { idle_reset(); }, [this] { idle_reset_replayed(); });
      settle_control_frames();
    } else {
      deliver(bytes);
    }
    if (invalid_frame_in_read_ && rv >= 0) {  // server role: see on_invalid_frame_recv
      // The peer sent an invalid frame: if nghttp2 is ending the connection for it, the streams
      // this read opened must start no work (a caller over the stream limit would otherwise
      // have each of its streams reach the upstream, only to be reset there). nghttp2 says so
      // only as it produces its GOAWAY, so the output is produced now (the writer sends it
      // first); a connection error marks the session done, and serve() detaches the streams
      // before their tasks first run.
      invalid_frame_in_read_ = false;
      produce_output(early_out_);
    }
    kick();
    if (rv < 0) {
      // Fatal for the connection; nghttp2 has queued a GOAWAY where the protocol asks for one,
      // and the writer flushes it before the socket closes.
      finish(rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                 ? CloseReason::kFlooded
                 : CloseReason::kProtocolError);
      co_return;
    }
  }
}

rt::Task<void> Session::keepalive_loop() {
  for (;;) {  // until serve() cancels it as the connection ends
    const rt::TimePoint due = last_read_ + limits_.keepalive.time;
    if (rt::Clock::now() < due) {
      co_await rt::sleep_until(due);
      continue;
    }
    if (streams_.empty() || done_) {  // no calls: no PING (see Keepalive)
      co_await rt::sleep(limits_.keepalive.time);
      continue;
    }
    heard_from_peer_.clear();
    awaiting_peer_ = true;
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    kick();
    // wait_until says whether the event was set before the waiter resumed: an answer read in
    // the same loop pass as the timeout still counts.
    if (!co_await heard_from_peer_.wait_until(rt::Clock::now() + limits_.keepalive.timeout)) {
      awaiting_peer_ = false;  // not even the PING's ACK: the peer is gone
      finish(CloseReason::kKeepaliveTimeout);
      transport_->shutdown_both();  // the reader sees the end; the streams fail
      co_return;
    }
  }
}

void Session::produce_output(std::string& out) {
  while (out.size() < kWriteBatchBytes) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      finish(CloseReason::kProtocolError);
      return;
    }
    if (n == 0) return;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
}

rt::Task<void> Session::write_loop() {
  std::string out;
  bool more = false;  // the last write was a full batch: nghttp2 may have more at once
  for (;;) {
    // Woken by kick() just before the loop next polls: every frame this burst of work queued
    // (a proxied request's HEADERS, DATA and END_STREAM; a response's HEADERS, DATA and
    // trailers) leaves in one write, with no loop pass spent waiting for the rest.
    if (!done_ && !more) co_await want_write_.wait();
    // Cleared before asking nghttp2, so a kick() made while this pass writes is not lost.
    want_write_.clear();
    // What the reader produced early goes first (out is empty here: cleared after each write).
    // Appended and released, not swapped: a connection keeps one write buffer, not two.
    if (!early_out_.empty()) {
      out.append(early_out_);
      std::string().swap(early_out_);
    }
    // Coalesce what nghttp2 has into one buffer, then one write.
    produce_output(out);
    try {
      std::string_view pending = out;
      while (!pending.empty()) {
        pending.remove_prefix(transport_->try_write(pending));
        if (!pending.empty()) co_await transport_->writable();
      }
    } catch (const std::system_error&) {
      finish(CloseReason::kSocketError);
      transport_->shutdown_both();  // the reader sees the end
      co_return;
    }
    more = out.size() >= kWriteBatchBytes || !early_out_.empty();
    out.clear();
    if (more) {
      // A full batch: nghttp2 may have more at once, but the loop's other connections, timers
      // and cancellations get a pass first.
      co_await rt::yield_now();
      continue;
    }
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
      finish(CloseReason::kGoaway);
      transport_->shutdown_both();
      co_return;
    }
    if (done_) {
      transport_->shutdown_both();
      co_return;
    }
  }
}

}  // namespace curfew::h2
