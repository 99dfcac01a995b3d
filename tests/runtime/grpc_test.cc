// The runtime's gRPC awaitables against a real server and client on 127.0.0.1: cancellation of a
// task blocked in an operation cancels the RPC itself, and a caller that goes away cancels the
// server-side task.
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/grpc_client.h"
#include "runtime/grpc_server.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "runtime/to_thread.h"
#include "runtime_generic_server.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;

namespace {

using curfew::testing::bytes;
using curfew::testing::text;

// A generic server on the runtime: "/t.S/Echo" echoes every message; "/t.S/Hang" reads one
// message and then waits until the call is cancelled, counting what it observed.
class RuntimeServer {
 public:
  int port() const { return server_.port(); }
  int hang_cancelled() const { return hang_cancelled_.load(); }
  int hang_started() const { return hang_started_.load(); }
  // "/t.S/Upload": how the callers' uploads ended, as the server classified them at the read
  // that found no more messages.
  int uploads_half_closed() const { return uploads_half_closed_.load(); }
  int uploads_reset() const { return uploads_reset_.load(); }

 private:
  rt::Task<void> handle(rt::ServerCallPtr call) {
    // Upload is not cancelled by its caller going away: it must see its last read either way.
    rt::TaskState& task = co_await rt::this_task{};
    if (call->method() != "/t.S/Upload") call->cancel_task_on_disconnect(task);
    grpc::ByteBuffer message;
    if (call->method() == "/t.S/Hang") {
      co_await call->read(message);
      hang_started_++;
      try {
        co_await rt::sleep(1h);
      } catch (const rt::CancelledError& e) {
        if (e.reason() == "caller cancelled") hang_cancelled_++;
        throw;
      }
      co_return;
    }
    if (call->method() == "/t.S/Upload") {
      while (co_await call->read(message)) {
      }
      (call->caller_half_closed() ? uploads_half_closed_ : uploads_reset_)++;
      co_await call->finish(grpc::Status::OK);
      co_return;
    }
    if (call->method() == "/t.S/Last") {
      // The reply and the status in one operation, with a trailer.
      EXPECT_TRUE(co_await call->read(message));
      call->context().AddTrailingMetadata("x-last", "yes");
      EXPECT_TRUE(co_await call->write_and_finish(message, grpc::Status::OK));
      EXPECT_TRUE(call->finished());
      co_return;
    }
    while (co_await call->read(message)) {
      if (!co_await call->write(message)) co_return;
    }
    co_await call->finish(grpc::Status::OK);
  }

  std::atomic<int> hang_started_{0};
  std::atomic<int> hang_cancelled_{0};
  std::atomic<int> uploads_half_closed_{0};
  std::atomic<int> uploads_reset_{0};
  // Last: destroyed first, while what its calls use is still there.
  curfew::testing::RuntimeGenericServer server_{
      [this](rt::ServerCallPtr call) { return handle(std::move(call)); }};
};

// Waits (on the loop) until `pred` holds, at most `limit`.
template <class Pred>
rt::Task<bool> eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  for (auto until = rt::Clock::now() + limit; rt::Clock::now() < until;) {
    if (pred()) co_return true;
    co_await rt::sleep(5ms);
  }
  co_return pred();
}

struct Client {
  explicit Client(int port)
      : channel(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                    grpc::InsecureChannelCredentials())),
        stub(channel) {}
  std::shared_ptr<grpc::Channel> channel;
  grpc::GenericStub stub;
};

TEST(RuntimeGrpc, EchoRoundTripOverGenericCalls) {
  RuntimeServer server;
  Client client(server.port());
  rt::run([](Client& c) -> rt::Task<void> {
    rt::ClientCall call(c.stub, "/t.S/Echo", *rt::Loop::current());
    call.context().set_deadline(std::chrono::system_clock::now() + 10s);
    EXPECT_TRUE(co_await call.start());
    for (std::string m : {std::string("one"), std::string("two"), std::string(1 << 20, 'x')}) {
      EXPECT_TRUE(co_await call.write(bytes(m)));
      grpc::ByteBuffer reply;
      EXPECT_TRUE(co_await call.read(reply));
      EXPECT_EQ(text(reply), m);
    }
    EXPECT_TRUE(co_await call.writes_done());
    grpc::ByteBuffer extra;
    EXPECT_FALSE(co_await call.read(extra));
    grpc::Status status = co_await call.finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
  }(client));
}

TEST(RuntimeGrpc, ServerWriteAndFinishSendsReplyStatusAndTrailersInOneStep) {
  RuntimeServer server;
  Client client(server.port());
  rt::run([](Client& c) -> rt::Task<void> {
    rt::ClientCall call(c.stub, "/t.S/Last", *rt::Loop::current());
    call.context().set_deadline(std::chrono::system_clock::now() + 10s);
    EXPECT_TRUE(co_await call.start());
    EXPECT_TRUE(co_await call.write(bytes("only")));
    grpc::ByteBuffer reply;
    EXPECT_TRUE(co_await call.read(reply));
    EXPECT_EQ(text(reply), "only");
    grpc::ByteBuffer extra;
    EXPECT_FALSE(co_await call.read(extra));
    grpc::Status status = co_await call.finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    auto trailers = call.context().GetServerTrailingMetadata();
    auto it = trailers.find("x-last");
    EXPECT_NE(it, trailers.end());
    if (it != trailers.end()) EXPECT_EQ(std::string(it->second.data(), it->second.size()), "yes");
  }(client));
}

TEST(RuntimeGrpc, CorkedStartSendsHeadersWithTheFirstMessageAndHalfClose) {
  RuntimeServer server;
  Client client(server.port());
  rt::run([](Client& c) -> rt::Task<void> {
    rt::ClientCall call(c.stub, "/t.S/Echo", *rt::Loop::current());
    call.context().set_deadline(std::chrono::system_clock::now() + 10s);
    call.context().AddMetadata("x-corked", "1");
    call.start_corked();  // nothing to await: the headers go with write_last()
    EXPECT_TRUE(co_await call.write_last(bytes("ping")));
    grpc::ByteBuffer reply;
    EXPECT_TRUE(co_await call.read(reply));
    EXPECT_EQ(text(reply), "ping");
    EXPECT_FALSE(co_await call.read(reply));
    grpc::Status status = co_await call.finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
  }(client));
}

TEST(RuntimeGrpc, CorkedStartThenHalfCloseWithoutMessages) {
  RuntimeServer server;
  Client client(server.port());
  rt::run([](Client& c) -> rt::Task<void> {
    rt::ClientCall call(c.stub, "/t.S/Echo", *rt::Loop::current());
    call.context().set_deadline(std::chrono::system_clock::now() + 10s);
    call.start_corked();
    EXPECT_TRUE(co_await call.writes_done());  // carries the headers
    grpc::ByteBuffer reply;
    EXPECT_FALSE(co_await call.read(reply));
    grpc::Status status = co_await call.finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
  }(client));
}

TEST(RuntimeGrpc, CancellingTaskBlockedInClientReadCancelsTheRpcAndServerObservesIt) {
  RuntimeServer server;
  Client client(server.port());
  rt::run([](Client& c, RuntimeServer& s) -> rt::Task<void> {
    bool reader_cancelled = false;
    rt::TaskGroup group;
    co_await group.run([](Client& c, RuntimeServer& s, rt::TaskGroup& g,
                          bool& reader_cancelled) -> rt::Task<void> {
      auto reader = g.spawn([](Client& c, bool& cancelled) -> rt::Task<void> {
        rt::ClientCall call(c.stub, "/t.S/Hang", *rt::Loop::current());
        call.context().set_deadline(std::chrono::system_clock::now() + 30s);
        co_await call.start();
        co_await call.write(bytes("hello"));
        grpc::ByteBuffer reply;
        try {
          co_await call.read(reply);  // the server never answers
        } catch (const rt::CancelledError&) {
          cancelled = true;
          throw;
        }
      }(c, reader_cancelled));
      EXPECT_TRUE(co_await eventually([&] { return s.hang_started() == 1; }));
      reader.cancel("test cancels the reader");
      EXPECT_TRUE(co_await eventually([&] { return s.hang_cancelled() == 1; }))
          << "server did not observe the cancellation";
    }(c, s, group, reader_cancelled));
    EXPECT_TRUE(reader_cancelled);
  }(client, server));
}

TEST(RuntimeGrpc, DeadlineScopeAroundAnRpcRaisesTimeoutAndCancelsTheServerSide) {
  RuntimeServer server;
  Client client(server.port());
  rt::run([](Client& c, RuntimeServer& s) -> rt::Task<void> {
    const auto started = rt::Clock::now();
    bool timed_out = false;
    try {
      co_await rt::timeout(200ms, [](Client& c) -> rt::Task<void> {
        rt::ClientCall call(c.stub, "/t.S/Hang", *rt::Loop::current());
        co_await call.start();
        co_await call.write(bytes("hello"));
        grpc::ByteBuffer reply;
        co_await call.read(reply);
      }(c));
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_LT(rt::Clock::now() - started, 2s) << "a 200 ms deadline must fire well before 2 s";
    EXPECT_TRUE(co_await eventually([&] { return s.hang_cancelled() == 1; }));
  }(client, server));
}

TEST(RuntimeGrpc, CallerDisconnectCancelsTheServerSideTask) {
  RuntimeServer server;
  {
    // A synchronous client on a thread of its own whose channel goes away mid-call.
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()),
                                       grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    auto call = stub.PrepareCall(&context, "/t.S/Hang", &cq);
    void* tag;
    bool ok;
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
    grpc::ByteBuffer hello = bytes("hello");
    call->Write(hello, reinterpret_cast<void*>(2));
    ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
    for (int i = 0; i < 500 && server.hang_started() == 0; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_EQ(server.hang_started(), 1);
    context.TryCancel();  // the caller goes away (RST_STREAM)
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(3));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
    call.reset();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
  for (int i = 0; i < 500 && server.hang_cancelled() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server.hang_cancelled(), 1);
}

// A read that finds no more messages tells a half-close from a reset exactly, at that read: the
// decision never depends on when the done notification is processed.
TEST(RuntimeGrpc, AReadTellsAHalfCloseFromAResetAtOnce) {
  RuntimeServer server;
  Client client(server.port());
  constexpr int kUploads = 60;
  for (int i = 0; i < kUploads; ++i) {
    const bool reset = i % 2 == 1;
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 60s);
    void* tag;
    bool ok;
    auto call = client.stub.PrepareCall(&context, "/t.S/Upload", &cq);
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    for (int m = 0; m < 3; ++m) {
      call->Write(bytes(std::string(1000, 'u')), reinterpret_cast<void*>(2));
      ASSERT_TRUE(cq.Next(&tag, &ok));
    }
    if (reset) {
      context.TryCancel();  // RST_STREAM, never a half-close
    } else {
      call->WritesDone(reinterpret_cast<void*>(3));
      ASSERT_TRUE(cq.Next(&tag, &ok));
    }
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(4));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    call.reset();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
  for (int i = 0; i < 500 && server.uploads_half_closed() + server.uploads_reset() < kUploads;
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(server.uploads_half_closed(), kUploads / 2);
  EXPECT_EQ(server.uploads_reset(), kUploads / 2);
}

TEST(RuntimeGrpc, ManyConcurrentCallsWithDeadlinesLeaveNoFrameOrTagBehind) {
  const long frames_before = rt::live_frames();
  {
    RuntimeServer server;
    Client client(server.port());
    rt::run([](Client& c) -> rt::Task<void> {
      rt::TaskGroup group;
      co_await group.run([](Client& c, rt::TaskGroup& g) -> rt::Task<void> {
        for (int i = 0; i < 200; ++i) {
          g.spawn([](Client& c, int i) -> rt::Task<void> {
            const bool hang = i % 2 == 0;
            try {
              // Only the hanging calls may run out of time: an echo's deadline cannot fire on a
              // slow, busy machine.
              co_await rt::timeout(hang ? 100ms : 60s, [](Client& c, bool hang) -> rt::Task<void> {
                rt::ClientCall call(c.stub, hang ? "/t.S/Hang" : "/t.S/Echo", *rt::Loop::current());
                co_await call.start();
                co_await call.write(bytes("x"));
                co_await call.writes_done();
                grpc::ByteBuffer reply;
                while (co_await call.read(reply)) {
                }
                grpc::Status status = co_await call.finish();
                EXPECT_TRUE(status.ok());
              }(c, hang));
              EXPECT_FALSE(hang);
            } catch (const rt::TimeoutError&) {
              EXPECT_TRUE(hang);
            }
          }(c, i));
        }
        co_return;
      }(c, group));
    }(client));
  }
  EXPECT_EQ(rt::live_frames(), frames_before);
}

}  // namespace
