// What the h2 session fuzz targets share: a socketpair on a fresh single-threaded epoll runtime,
// an h2::Session on one end, and the fuzzer's "peer" on the other, which reads and discards
// everything the session sends (so its writes never block) while writing the fuzz input once,
// then half-closes. Each input's whole processing is bounded in time.
//
// Outcomes of one input:
//   - the session ends (however: EOF, GOAWAY, protocol error...): normal;
//   - the bound (kInputBound) passes: not a crash, counted and reported when the process exits;
//     with CURFEW_FUZZ_TIMEOUT_IS_CRASH=1 in the environment it aborts instead (hang hunting);
//   - a std::system_error of the peer's own socket calls (the session closed its end): normal;
//   - any other exception out of the runtime: printed, then abort() (the fuzzer reports it);
//   - a coroutine frame still alive after the runtime returned: printed, then abort().
#pragma once

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>

#include "h2/limits.h"
#include "h2/session.h"
#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/loop.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/socket.h"
#include "runtime/task.h"
#include "runtime/timeout.h"

namespace curfew_fuzz {

namespace rt = curfew::rt;
namespace h2 = curfew::h2;

// How long one input may take, everything included.
inline constexpr std::chrono::seconds kInputBound{2};

// After writing the input the peer gives the session loop passes to read it and answer before
// it half-closes (the end of the stream cancels whatever still serves a stream, so without them
// the handlers would hardly run): at least kMinSettlePasses, then until no stream is open, at
// most kMaxSettlePasses.
inline constexpr int kMinSettlePasses = 4;
inline constexpr int kMaxSettlePasses = 64;

// Limits small enough for an input of a few frames to reach them.
inline h2::SessionLimits small_limits() {
  h2::SessionLimits limits;
  limits.max_concurrent_streams = 16;
  limits.stream_window_bytes = 65535;
  limits.connection_window_bytes = 65535;
  limits.max_header_list_bytes = 4096;
  limits.max_frame_bytes = 16384;
  limits.max_send_header_block_bytes = 16384;
  limits.reset_burst = 32;
  limits.reset_rate_per_second = 32;
  limits.max_continuations = 8;
  limits.max_outbound_ack = 64;
  limits.max_settings = 16;
  limits.stream_send_buffer_bytes = 4096;
  return limits;
}

// A connected pair of non-blocking, close-on-exec stream sockets. A failure here (EMFILE) means
// descriptors leak from earlier inputs: it escapes as a crash.
struct SocketPair {
  int session = -1;
  int peer = -1;
};
inline SocketPair make_socketpair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  return {fds[0], fds[1]};
}

// The fuzzer's end of the connection. Two tasks: drain() reads (one reader at a time per fd),
// send() writes; both end by themselves once the session has closed its end.
class Peer {
 public:
  Peer(rt::Loop& loop, int fd) : socket_(loop, fd) {}

  // Reads and discards until the end of the stream (or a socket error).
  rt::Task<void> drain() {
    std::array<char, 16 << 10> buf;
    try {
      for (;;) {
        const size_t n = co_await socket_.read_some(buf);
        got_bytes_.set();
        if (n == 0) break;
      }
    } catch (const std::system_error&) {
    }
    got_bytes_.set();  // also when the session closed before sending anything
  }

  // Writes `bytes` (first waiting for the session's first bytes when `after_session_speaks`: a
  // server answers a client's preface), lets the session settle, then half-closes.
  rt::Task<void> send(std::string bytes, const h2::Session& session, bool after_session_speaks) {
    if (after_session_speaks) co_await got_bytes_.wait();
    try {
      co_await socket_.write_all(bytes);
    } catch (const std::system_error&) {
      // The session closed its end first (it found the bytes invalid): nothing more to send.
    }
    for (int pass = 0; pass < kMaxSettlePasses; ++pass) {
      if (pass >= kMinSettlePasses && session.open_streams() == 0) break;
      co_await rt::yield_now();
    }
    socket_.shutdown_write();
  }

 private:
  rt::Socket socket_;
  rt::Event got_bytes_;
};

// Inputs that hit kInputBound, reported at exit.
struct TimeoutCount {
  long count = 0;
  ~TimeoutCount() {
    if (count > 0)
      std::fprintf(stderr, "h2 fuzz: %ld input(s) hit the %lld s bound\n", count,
                   static_cast<long long>(kInputBound.count()));
  }
};
inline TimeoutCount timeouts;

inline rt::Task<void> bounded(rt::Task<void> body) {
  try {
    rt::Timeout bound = rt::Timeout::after(kInputBound);
    co_await bound.run(std::move(body));
  } catch (const rt::TimeoutError&) {
    ++timeouts.count;
    if (const char* strict = std::getenv("CURFEW_FUZZ_TIMEOUT_IS_CRASH");
        strict != nullptr && *strict != '\0' && *strict != '0') {
      std::fprintf(stderr, "h2 fuzz: the input hit the %lld s bound (a hang?)\n",
                   static_cast<long long>(kInputBound.count()));
      std::abort();
    }
  }
}

// Runs make_body() (one input) on a fresh single-threaded epoll runtime, bounded by kInputBound.
template <class MakeBody>
void run_one(MakeBody make_body) {
  const long frames_before = rt::live_frames();  // before the body's own frame exists
  try {
    rt::run(bounded(make_body()), rt::RuntimeOptions{.blocking_threads = 0});
  } catch (...) {
    std::fprintf(stderr, "h2 fuzz: unexpected error: %s\n",
                 rt::describe_error(std::current_exception()).c_str());
    std::abort();
  }
  if (const long frames_after = rt::live_frames(); frames_after != frames_before) {
    std::fprintf(stderr, "h2 fuzz: %ld coroutine frame(s) alive after the runtime returned\n",
                 frames_after - frames_before);
    std::abort();
  }
}

}  // namespace curfew_fuzz
