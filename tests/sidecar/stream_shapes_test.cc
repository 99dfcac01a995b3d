// Streams whose shape the forwarding must not assume: the upstream speaking first (the caller
// sends its headers and then waits to read), and a caller that half-closes without a message.
// curfew corks the upstream call's headers only when the caller's first message is already there;
// these would hang if it waited for one.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "runtime/grpc_client.h"
#include "runtime/runtime.h"
#include "runtime/timeout.h"
#include "runtime_generic_server.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

// A generic upstream on curfew's runtime. Every call: writes "hello" before reading anything,
// then echoes each message, then finishes OK when the caller half-closes.
class ServerFirstUpstream {
 public:
  int port() const { return server_.port(); }
  int finished_ok() const { return finished_ok_; }

 private:
  rt::Task<void> handle(rt::ServerCallPtr call) {
    call->cancel_task_on_disconnect(co_await rt::this_task{});
    if (!co_await call->write(bytes("hello"))) co_return;
    grpc::ByteBuffer message;
    while (co_await call->read(message)) {
      if (!co_await call->write(message)) co_return;
    }
    if (co_await call->finish(grpc::Status::OK)) ++finished_ok_;
  }

  std::atomic<int> finished_ok_{0};
  // Last: destroyed first, while what its calls use is still there.
  RuntimeGenericServer server_{[this](rt::ServerCallPtr call) { return handle(std::move(call)); }};
};

class StreamShapes : public ::testing::Test {
 protected:
  void SetUp() override {
    sidecar_ = start_sidecar(
        "listeners:\n  - name: inbound\n    address: 127.0.0.1:0\n    routes:\n"
        "      - {name: r, match: {prefix: /}, upstream: app, timeout: 10s}\n"
        "upstreams:\n  - {name: app, endpoints: [127.0.0.1:" +
        std::to_string(upstream_.port()) + "]}\n");
    ASSERT_NE(sidecar_, nullptr);
    channel_ = channel_to(sidecar_->port("inbound"));
  }
  ServerFirstUpstream upstream_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(StreamShapes, UpstreamSpeaksFirstWhileTheCallerWaitsToRead) {
  grpc::GenericStub stub(channel_);
  std::string first, echoed;
  bool ended = false;
  grpc::Status status(grpc::StatusCode::UNKNOWN, "not run");
  rt::run([&]() -> rt::Task<void> {
    // Bounded: a forwarding that waited for the caller's first message would hang here.
    co_await rt::timeout(5s, [&]() -> rt::Task<void> {
      rt::ClientCall call(stub, "/t.S/ServerFirst", *rt::Loop::current());
      co_await call.start();
      grpc::ByteBuffer message;
      if (co_await call.read(message)) first = text(message);  // nothing sent yet
      co_await call.write(bytes("ping"));
      if (co_await call.read(message)) echoed = text(message);
      co_await call.writes_done();
      ended = !co_await call.read(message);
      status = co_await call.finish();
    }());
  }());
  EXPECT_EQ(first, "hello");
  EXPECT_EQ(echoed, "ping");
  EXPECT_TRUE(ended);
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  // The upstream's handler records its end after its status went out: the caller may see the
  // status first.
  EXPECT_TRUE(eventually([&] { return upstream_.finished_ok() == 1; })) << upstream_.finished_ok();
}

TEST_F(StreamShapes, CallerHalfClosesWithoutAMessage) {
  grpc::GenericStub stub(channel_);
  std::string first;
  bool ended = false;
  grpc::Status status(grpc::StatusCode::UNKNOWN, "not run");
  rt::run([&]() -> rt::Task<void> {
    co_await rt::timeout(5s, [&]() -> rt::Task<void> {
      rt::ClientCall call(stub, "/t.S/ServerFirst", *rt::Loop::current());
      co_await call.start();
      co_await call.writes_done();
      grpc::ByteBuffer message;
      if (co_await call.read(message)) first = text(message);
      ended = !co_await call.read(message);
      status = co_await call.finish();
    }());
  }());
  EXPECT_EQ(first, "hello");
  EXPECT_TRUE(ended);
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  // The upstream's handler records its end after its status went out: the caller may see the
  // status first.
  EXPECT_TRUE(eventually([&] { return upstream_.finished_ok() == 1; })) << upstream_.finished_ok();
}

}  // namespace
}  // namespace curfew::testing
