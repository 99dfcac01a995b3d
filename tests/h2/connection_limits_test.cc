// A server session's own limits on one caller connection (h2/limits.h): the control-frame budget,
// the handshake and header-block timeouts. From outside, with frames written by hand; each test
// checks the connection is closed for the right reason (or, for legitimate traffic, never). The
// real binary under every attack: tests/faults/attacks_test.cc.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "h2/session.h"
#include "h2_test_server.h"
#include "raw_frames.h"
#include "runtime/sleep.h"

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
using namespace std::chrono_literals;
using curfew_test::connect_to;
using curfew_test::frame;
using curfew_test::H2TestServer;
using curfew_test::kClientPreface;
using curfew_test::read_until_close;
using curfew_test::request_block;

namespace {

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kPing = 0x6;
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;
constexpr long kEnhanceYourCalm = 0xb, kProtocolError = 0x1;

h2::StreamHandler answer_ok() {
  return [](std::shared_ptr<h2::Stream> s) -> rt::Task<void> {
    s->note_work_started();
    s->send_trailers_only(
        {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", "0"}});
    co_return;
  };
}

void send_all(int fd, const std::string& bytes) {
  for (size_t off = 0; off < bytes.size();) {  // the server may close while we write
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Waits (bounded) until the server has seen `n` connections end; their reasons.
std::vector<h2::CloseReason> closures(const H2TestServer& server, size_t n) {
  for (int i = 0; i < 500 && server.closures().size() < n; ++i) std::this_thread::sleep_for(10ms);
  return server.closures();
}

// The server ended `stream` (HEADERS or DATA with END_STREAM).
bool ended(const std::vector<curfew_test::RawFrame>& frames, uint32_t stream) {
  return std::any_of(frames.begin(), frames.end(), [&](const curfew_test::RawFrame& f) {
    return f.stream == stream && (f.type == kHeaders || f.type == kData) &&
           (f.flags & kEndStream) != 0;
  });
}

std::string hello() {
  return kClientPreface + frame(kSettings, 0, 0, "") + frame(kSettings, kAck, 0, "");
}

TEST(ControlFrameBudget, AFloodOfFramesThatDoNoWorkIsClosedWithEnhanceYourCalm) {
  h2::SessionLimits limits;
  limits.control_frame_burst = 100;
  limits.control_frames_per_second = 10;
  H2TestServer server(answer_ok(), limits);
  const int fd = connect_to(server.port());
  std::string out = hello();
  for (int i = 0; i < 3000; ++i) out += frame(kPing, 0, 0, std::string(8, 'p'));
  const auto start = std::chrono::steady_clock::now();
  send_all(fd, out);
  bool closed = false;
  const long goaway = read_until_close(fd, &closed);
  ::close(fd);
  EXPECT_EQ(goaway, kEnhanceYourCalm);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(closures(server, 1), std::vector{h2::CloseReason::kControlFlood});
}

// The budget is earned back by real traffic: a caller that sends a PING and a WINDOW_UPDATE with
// every call, 20 times the bucket over the connection's life, is never cut off.
TEST(ControlFrameBudget, ControlFramesThatComeWithRealTrafficAreNeverCutOff) {
  h2::SessionLimits limits;
  limits.control_frame_burst = 50;
  limits.control_frames_per_second = 1;
  H2TestServer server(answer_ok(), limits);
  const int fd = connect_to(server.port());
  send_all(fd, hello());
  const std::string block = request_block();
  constexpr int kCalls = 500;
  for (int i = 0; i < kCalls; ++i) {
    const uint32_t id = 1 + 2 * static_cast<uint32_t>(i);
    send_all(fd, frame(kHeaders, kEndHeaders, id, block) +
                     frame(kData, kEndStream, id, std::string("\0\0\0\0\0", 5)) +
                     frame(kPing, 0, 0, std::string(8, 'p')) +
                     frame(0x8, 0, 0, std::string("\0\0\0\x1", 4)));
    if (i % 50 == 49) std::this_thread::sleep_for(5ms);  // calls, not one burst
  }
  // Every call answered: END_STREAM on the last stream, and no GOAWAY.
  bool closed = false;
  const uint32_t last = 1 + 2 * (kCalls - 1);
  const auto frames = curfew_test::read_frames(
      fd, [&](const std::vector<curfew_test::RawFrame>& fs) { return ended(fs, last); }, &closed);
  ::close(fd);
  EXPECT_TRUE(ended(frames, last)) << "not every call was answered";
  EXPECT_FALSE(closed);
  for (const auto& f : frames) EXPECT_NE(f.type, 0x7) << "GOAWAY";
}

// Counts the streams whose handler found them still open when it first ran (and so would have
// started work for them: a proxy's upstream call), and answers them.
struct StartedStreams {
  std::shared_ptr<std::atomic<int>> count = std::make_shared<std::atomic<int>>(0);
  h2::StreamHandler handler() const {
    return [count = count](std::shared_ptr<h2::Stream> s) -> rt::Task<void> {
      if (s->closed()) co_return;
      count->fetch_add(1);
      s->note_work_started();
      s->send_trailers_only(
          {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", "0"}});
    };
  }
};

// A caller that opens more streams than the limit it acknowledged, in one write, breaks the
// protocol (nghttp2 ends the connection with PROTOCOL_ERROR). None of the streams of that write
// starts work: a proxy would otherwise call its upstream for each, only to reset them all.
TEST(StreamLimit, StreamsOfAWriteThatBreaksTheLimitStartNoWork) {
  h2::SessionLimits limits;
  limits.max_concurrent_streams = 10;
  StartedStreams started;
  H2TestServer server(started.handler(), limits);
  const int fd = connect_to(server.port());
  std::string out = hello();
  for (uint32_t i = 0; i < 30; ++i) out += frame(kHeaders, kEndHeaders, 1 + 2 * i, request_block());
  send_all(fd, out);
  bool closed = false;
  const long goaway = read_until_close(fd, &closed);
  ::close(fd);
  EXPECT_TRUE(closed);
  EXPECT_EQ(goaway, kProtocolError);
  EXPECT_EQ(closures(server, 1), std::vector{h2::CloseReason::kProtocolError});
  EXPECT_EQ(started.count->load(), 0);
}

// An invalid frame that costs only its stream (nghttp2 resets it) leaves the rest of the read
// alone: the other stream of the same write is served, and the connection stays open.
TEST(StreamLimit, AStreamErrorInAWriteFailsThatStreamAlone) {
  StartedStreams started;
  H2TestServer server(started.handler());
  const int fd = connect_to(server.port());
  constexpr uint8_t kRstStream = 0x3;
  // An upper-case header name: a malformed request, a stream error (RFC 9113 §8.2.1).
  send_all(fd, hello() + frame(kHeaders, kEndHeaders | kEndStream, 1, request_block()) +
                   frame(kHeaders, kEndHeaders | kEndStream, 3,
                         request_block() + curfew_test::literal("Bad-Name", "x")));
  bool closed = false;
  const auto frames = curfew_test::read_frames(
      fd,
      [](const std::vector<curfew_test::RawFrame>& fs) {
        return ended(fs, 1) && std::any_of(fs.begin(), fs.end(), [](const auto& f) {
                 return f.type == kRstStream && f.stream == 3;
               });
      },
      &closed);
  ::close(fd);
  EXPECT_TRUE(ended(frames, 1)) << "stream 1 was not answered";
  EXPECT_FALSE(closed);
  for (const auto& f : frames) EXPECT_NE(f.type, 0x7) << "GOAWAY";
  EXPECT_EQ(started.count->load(), 1);  // stream 3 was never a request
}

TEST(HandshakeTimeout, AConnectionThatNeverSendsItsPrefaceIsClosed) {
  h2::SessionLimits limits;
  limits.handshake_timeout = 200ms;
  H2TestServer server(answer_ok(), limits);
  const int fd = connect_to(server.port());
  send_all(fd, kClientPreface.substr(0, 10));  // and then nothing
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  read_until_close(fd, &closed);
  ::close(fd);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(closures(server, 1), std::vector{h2::CloseReason::kHandshakeTimeout});
}

// A header block begun and never finished holds the connection (nothing else is processed on it
// meanwhile): closed after the timeout; a caller on another connection is served throughout.
TEST(HeadersTimeout, AHeaderBlockLeftOpenIsClosedAndOtherConnectionsAreServed) {
  h2::SessionLimits limits;
  limits.headers_timeout = 200ms;
  H2TestServer server(answer_ok(), limits);
  const int stalled = connect_to(server.port());
  send_all(stalled, hello() + frame(kHeaders, 0 /*no END_HEADERS*/, 1, request_block()));
  const int other = connect_to(server.port());
  send_all(other, hello() + frame(kHeaders, kEndHeaders | kEndStream, 1, request_block()));
  bool other_closed = false;
  const auto answered = curfew_test::read_frames(
      other, [](const std::vector<curfew_test::RawFrame>& fs) { return ended(fs, 1); },
      &other_closed);
  EXPECT_TRUE(ended(answered, 1));
  EXPECT_FALSE(other_closed);
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  const long goaway = read_until_close(stalled, &closed);
  ::close(stalled);
  ::close(other);
  EXPECT_TRUE(closed);
  EXPECT_EQ(goaway, kProtocolError);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  const auto reasons = closures(server, 2);
  std::string names;
  for (h2::CloseReason r : reasons) names += std::string(h2::close_reason_name(r)) + " ";
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), h2::CloseReason::kHeadersTimeout),
            reasons.end())
      << names;
}

// Past max_age a connection gets GOAWAY and its calls finish; a grpc++ caller calling all along
// moves to a new connection without a failed call (the connection turns over several times).
TEST(MaxAge, AnAgedConnectionIsReplacedWithoutAFailedCall) {
  h2::SessionLimits limits;
  limits.max_age = 300ms;
  H2TestServer server(answer_ok(), limits);
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  int ok = 0, failed = 0;
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  for (int i = 0; i < 100000 && std::chrono::steady_clock::now() < until; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    grpc::CompletionQueue cq;
    grpc::Slice slice(std::string(5, '\0'));
    auto call = stub.PrepareUnaryCall(&ctx, "/a/B", grpc::ByteBuffer(&slice, 1), &cq);
    call->StartCall();
    grpc::ByteBuffer reply;
    grpc::Status status;
    call->Finish(&reply, &status, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool done = false;
    cq.Next(&tag, &done);
    if (status.ok()) {
      ++ok;
    } else if (++failed <= 3) {
      ADD_FAILURE() << "call failed: " << status.error_code() << " " << status.error_message();
    }
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 0);
  const auto reasons = closures(server, 2);
  EXPECT_GE(std::count(reasons.begin(), reasons.end(), h2::CloseReason::kMaxAge), 2)
      << "the caller's connection was not replaced";
}

// A call still open max_age_grace after the GOAWAY is not waited for: the connection closes.
TEST(MaxAge, WhatIsLeftAfterTheGraceIsClosed) {
  h2::SessionLimits limits;
  limits.max_age = 200ms;
  limits.max_age_grace = 300ms;
  H2TestServer server(
      [](std::shared_ptr<h2::Stream> s) -> rt::Task<void> {
        s->note_work_started();
        co_await rt::sleep(30s);  // never answers in time
      },
      limits);
  const int fd = connect_to(server.port());
  send_all(fd, hello() + frame(kHeaders, kEndHeaders, 1, request_block()));
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  const long goaway = read_until_close(fd, &closed);
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_TRUE(closed);
  EXPECT_EQ(goaway, 0) << "GOAWAY NO_ERROR expected";
  EXPECT_GE(took, 350ms);  // 200 ms ±10% + 300 ms
  EXPECT_LT(took, 3s);
  EXPECT_EQ(closures(server, 1), std::vector{h2::CloseReason::kMaxAge});
}

}  // namespace
