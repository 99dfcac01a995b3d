// A caller's RST_STREAM for a stream it has not opened yet (grpc-core 1.51 writes one ahead of
// the stream's HEADERS, or alone, when a call is cancelled in its write queue). RFC 9113 makes it
// a connection error and nghttp2 would close the connection with GOAWAY PROTOCOL_ERROR, failing
// every call on it; curfew holds such a reset back (h2/internal/idle_reset_filter.h).
// First the filter alone, fed every chunking of one byte stream; then a server session played
// with hand-written frames.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "h2/internal/idle_reset_filter.h"
#include "h2/session.h"
#include "h2_test_server.h"
#include "raw_frames.h"
#include "runtime/sleep.h"

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
using namespace std::chrono_literals;
using curfew::h2::internal::IdleResetFilter;
using curfew_test::connect_to;
using curfew_test::frame;
using curfew_test::H2TestServer;
using curfew_test::kClientPreface;
using curfew_test::RawFrame;
using curfew_test::read_frames;
using curfew_test::request_block;

namespace {

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kGoaway = 0x7,
                  kContinuation = 0x9;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4;

std::string rst(uint32_t stream, uint8_t code = 0x8 /*CANCEL*/) {
  return frame(kRstStream, 0, stream, std::string("\0\0\0", 3) + static_cast<char>(code));
}

// What the caller sends, and what nghttp2 must see of it.
struct Stream {
  std::string sent;
  std::string expected;
  uint64_t held_back;
  uint64_t replayed;
};

Stream mixed_stream() {
  const std::string settings = frame(kSettings, 0, 0, "");
  const std::string h1 = frame(kHeaders, kEndHeaders, 1, request_block());
  const std::string d1 = frame(kData, kEndStream, 1, std::string("\0\0\0\0\0", 5));
  const std::string h5a = frame(kHeaders, 0, 5, request_block().substr(0, 10));
  const std::string h5b = frame(kContinuation, kEndHeaders, 5, request_block().substr(10));
  const std::string h7 = frame(kHeaders, kEndHeaders | kEndStream, 7, request_block());
  // A reset ahead of its stream's HEADERS (replayed after them, with its code), one for a stream
  // that never opens (dropped), resets of open or closed streams and of an even (server) id
  // (passed: nghttp2 judges those), and one ahead of a header block split over CONTINUATION.
  return {
      .sent = kClientPreface + settings + rst(1, 0x2) + h1 + d1 + rst(3) + rst(1) + rst(2) +
              rst(5) + h5a + h5b + h7 + rst(7),
      .expected = kClientPreface + settings + h1 + rst(1, 0x2) + d1 + rst(1) + rst(2) + h5a + h5b +
                  rst(5) + h7 + rst(7),
      .held_back = 3,
      .replayed = 2,
  };
}

// Every replaying() notification the filter gave, over the test.
uint64_t replaying_calls = 0;

// Feeds `chunks` of `sent` and returns what reached "nghttp2".
std::string filter(const std::string& sent, const std::vector<size_t>& cuts, IdleResetFilter& f,
                   uint64_t* held) {
  std::string seen;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(sent.size());
  for (size_t end : ends) {
    const std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(sent.data()) + from,
                                      end - from);
    EXPECT_TRUE(f.feed(
        in,
        [&](std::span<const uint8_t> b) {
          seen.append(reinterpret_cast<const char*>(b.data()), b.size());
          return true;
        },
        [&] { ++*held; }, [&] { ++replaying_calls; }));
    from = end;
  }
  return seen;
}

TEST(IdleResetFilter, HoldsBackResetsOfIdleStreamsAndReplaysThemAfterTheirHeaders) {
  const Stream s = mixed_stream();
  IdleResetFilter f;
  uint64_t held = 0;
  replaying_calls = 0;
  EXPECT_EQ(filter(s.sent, {}, f, &held), s.expected);
  EXPECT_EQ(held, s.held_back);
  EXPECT_EQ(replaying_calls, s.replayed);  // announced before each replay
  EXPECT_EQ(f.held_back_count(), s.held_back);
  EXPECT_EQ(f.replayed_count(), s.replayed);
}

TEST(IdleResetFilter, EveryWayTheSocketSplitsTheBytesGivesTheSameStream) {
  const Stream s = mixed_stream();
  // One cut at every position, two cuts at every pair of positions, and byte by byte.
  for (size_t a = 0; a <= s.sent.size(); ++a) {
    for (size_t b = a; b <= s.sent.size(); b += (a % 7 == 0 ? 1 : 13)) {
      IdleResetFilter f;
      uint64_t held = 0;
      ASSERT_EQ(filter(s.sent, {a, b}, f, &held), s.expected) << "cuts at " << a << ", " << b;
      ASSERT_EQ(held, s.held_back);
    }
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < s.sent.size(); ++i) every_byte.push_back(i);
  IdleResetFilter f;
  uint64_t held = 0;
  EXPECT_EQ(filter(s.sent, every_byte, f, &held), s.expected);
  EXPECT_EQ(f.replayed_count(), s.replayed);
}

TEST(IdleResetFilter, StopsWhenNghttp2FailsTheConnection) {
  const Stream s = mixed_stream();
  IdleResetFilter f;
  int calls = 0;
  const std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(s.sent.data()), s.sent.size());
  EXPECT_FALSE(f.feed(
      in, [&](std::span<const uint8_t>) { return ++calls < 2; }, [] {}));
  EXPECT_EQ(calls, 2);
}

h2::StreamHandler answering_handler(std::shared_ptr<std::atomic<int>> started) {
  return [started](std::shared_ptr<h2::Stream> s) -> rt::Task<void> {
    s->note_work_started();
    ++*started;
    co_await rt::sleep(20ms);
    s->send_trailers_only(
        {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", "0"}});
  };
}

bool answered(const std::vector<RawFrame>& frames, uint32_t stream) {
  for (const RawFrame& f : frames)
    if (f.type == kHeaders && f.stream == stream) return true;
  return false;
}

// The session end to end: the connection lives on, the stream whose reset came first never
// gets an answer, the next stream does.
TEST(IdleReset, AResetAheadOfItsStreamCancelsThatStreamAloneAndTheConnectionServesOn) {
  auto started = std::make_shared<std::atomic<int>>(0);
  H2TestServer server(answering_handler(started));
  const int fd = connect_to(server.port());
  const std::string out = kClientPreface + frame(kSettings, 0, 0, "") + rst(1) +
                          frame(kHeaders, kEndHeaders | kEndStream, 1, request_block()) +
                          rst(3) /* never opens */ +
                          frame(kHeaders, kEndHeaders | kEndStream, 5, request_block());
  ASSERT_EQ(::send(fd, out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
  bool closed = false;
  const auto frames = read_frames(
      fd, [](const std::vector<RawFrame>& f) { return answered(f, 5); }, &closed);
  ::close(fd);
  EXPECT_FALSE(closed);
  EXPECT_TRUE(answered(frames, 5)) << "the stream after the early resets was not served";
  EXPECT_FALSE(answered(frames, 1)) << "a stream reset ahead of its HEADERS was answered";
  for (const RawFrame& f : frames) EXPECT_NE(f.type, kGoaway) << "the connection was closed";
  EXPECT_EQ(started->load(), 1);  // stream 5 only: stream 1 was reset before its task ran
}

// The exemption is not a loophole: resets of streams never opened count for the rapid-reset
// rule like HEADERS+RST_STREAM pairs.
TEST(IdleReset, AFloodOfResetsOfStreamsNeverOpenedIsClosedWithEnhanceYourCalm) {
  H2TestServer server(answering_handler(std::make_shared<std::atomic<int>>(0)));
  const int fd = connect_to(server.port());
  std::string out = kClientPreface + frame(kSettings, 0, 0, "");
  for (uint32_t i = 0; i < 5000; ++i) out += rst(1 + 2 * i);
  for (size_t off = 0; off < out.size();) {  // the server may close while we still write
    const ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  bool closed = false;
  const long goaway = curfew_test::read_until_close(fd, &closed);
  ::close(fd);
  EXPECT_EQ(goaway, 0xb) << "GOAWAY ENHANCE_YOUR_CALM expected";
  EXPECT_TRUE(closed);
}

}  // namespace
