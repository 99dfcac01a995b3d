// The rapid-reset rule (h2/limits.h, CVE-2023-44487) from outside: a raw HTTP/2 client that
// opens streams and resets each at once gets GOAWAY ENHANCE_YOUR_CALM and its connection closed,
// and almost none of its streams start work; a grpc++ caller whose calls often hit their deadline
// on one connection is never cut off. Frames are written by hand (an attacker is not a library).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

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
using curfew_test::read_until_close;
using curfew_test::request_block;

namespace {

// Counts streams whose work began (the proxy's handler marks it so).
h2::StreamHandler slow_handler(std::shared_ptr<std::atomic<int>> started) {
  return [started](std::shared_ptr<h2::Stream> s) -> rt::Task<void> {
    s->note_work_started();
    ++*started;
    co_await rt::sleep(20ms);
    s->send_trailers_only(
        {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", "0"}});
  };
}

TEST(RapidReset, AConnectionResettingStreamsBeforeAnyWorkIsClosedWithEnhanceYourCalm) {
  auto started = std::make_shared<std::atomic<int>>(0);
  H2TestServer server(slow_handler(started));
  const int fd = connect_to(server.port());
  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0, "");
  const std::string block = request_block();
  constexpr int kStreams = 5000;
  for (int i = 0; i < kStreams; ++i) {
    const uint32_t id = 1 + 2 * static_cast<uint32_t>(i);
    out += frame(0x1, 0x4 /*END_HEADERS*/, id, block);
    out += frame(0x3, 0, id, std::string("\0\0\0\x8", 4));  // RST_STREAM CANCEL
  }
  const auto start = std::chrono::steady_clock::now();
  // The server may close while we still write: a failed send is part of the outcome.
  for (size_t off = 0; off < out.size();) {
    const ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  bool closed = false;
  const long goaway = read_until_close(fd, &closed);
  ::close(fd);
  EXPECT_EQ(goaway, 0xb) << "GOAWAY ENHANCE_YOUR_CALM expected";
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  // Work started for a few streams at most (those whose reset had not arrived yet).
  EXPECT_LT(started->load(), kStreams / 10) << started->load();
}

// A legitimate caller on one connection: 64 calls at once, a fifth of them with a deadline that
// expires while the server works on them. Never cut off: every call without that deadline
// succeeds, on the same connection. Under CPU load grpc-core also writes some of those cancels
// as a RST_STREAM ahead of the stream's HEADERS (idle_reset_test.cc): before the session held
// those back, nghttp2 closed the connection in 8 of 10 runs with both cores busy.
TEST(RapidReset, DeadlinesThatExpireOftenNeverTripTheRule) {
  auto started = std::make_shared<std::atomic<int>>(0);
  H2TestServer server(slow_handler(started));
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  std::atomic<int> ok{0}, deadline{0}, other{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 64; ++t) {
    callers.emplace_back([&, t] {
      grpc::GenericStub stub(channel);
      for (int i = 0; i < 40; ++i) {
        const bool short_deadline = (t * 40 + i) % 5 == 0;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + (short_deadline ? 5ms : 10s));
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
        } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++deadline;
        } else {
          if (++other <= 3)
            ADD_FAILURE() << "call failed: " << status.error_code() << " "
                          << status.error_message();
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(other.load(), 0) << "a call failed otherwise than by its deadline: cut off?";
  EXPECT_GE(deadline.load(), 64 * 40 / 5 / 2);  // most short deadlines expired (generous)
  EXPECT_EQ(ok.load() + deadline.load(), 64 * 40);
}

}  // namespace
