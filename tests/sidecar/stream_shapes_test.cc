// Streams whose shape the forwarding must not assume: the upstream speaking first (the caller
// sends its headers and then waits to read), and a caller that half-closes without a message.
// curfew corks the upstream call's headers only when the caller's first message is already there;
// these would hang if it waited for one.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "runtime/grpc_client.h"
#include "runtime/grpc_server.h"
#include "runtime/runtime.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "runtime/to_thread.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

grpc::ByteBuffer bytes(const std::string& text) {
  grpc::Slice slice(text);
  return grpc::ByteBuffer(&slice, 1);
}

std::string text(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A generic upstream on curfew's runtime. Every call: writes "hello" before reading anything,
// then echoes each message, then finishes OK when the caller half-closes.
class ServerFirstUpstream {
 public:
  ServerFirstUpstream() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterAsyncGenericService(&service_);
    runtime_ = std::make_unique<rt::Runtime>(rt::RuntimeOptions{.threads = 1, .server_builder = &builder});
    server_ = builder.BuildAndStart();
    thread_ = std::thread([this] { runtime_->run([this](int) { return serve(); }); });
  }
  ~ServerFirstUpstream() {
    runtime_->cancel("test over");
    thread_.join();
    server_.reset();
    EXPECT_EQ(runtime_->close(), 0u);
  }
  int port() const { return port_; }
  int finished_ok() const { return finished_ok_; }

 private:
  rt::Task<void> serve() {
    rt::Loop& loop = *rt::Loop::current();
    try {
      rt::TaskGroup group;
      co_await group.run([](ServerFirstUpstream& self, rt::TaskGroup& g, rt::Loop& loop) -> rt::Task<void> {
        while (rt::ServerCallPtr call = co_await rt::accept(self.service_, loop)) {
          g.spawn(self.handle(std::move(call)));
        }
      }(*this, group, loop));
    } catch (const rt::CancelledError&) {
    }
    grpc::Server* server = server_.get();
    co_await rt::to_thread([server] { server->Shutdown(std::chrono::system_clock::now()); });
  }

  rt::Task<void> handle(rt::ServerCallPtr call) {
    call->cancel_task_on_disconnect(co_await rt::this_task{});
    if (!co_await call->write(bytes("hello"))) co_return;
    grpc::ByteBuffer message;
    while (co_await call->read(message)) {
      if (!co_await call->write(message)) co_return;
    }
    if (co_await call->finish(grpc::Status::OK)) ++finished_ok_;
  }

  int port_ = 0;
  grpc::AsyncGenericService service_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::unique_ptr<grpc::Server> server_;
  std::thread thread_;
  std::atomic<int> finished_ok_{0};
};

class StreamShapes : public ::testing::Test {
 protected:
  void SetUp() override {
    sidecar_ = start_sidecar(
        "listeners:\n  - name: inbound\n    address: 127.0.0.1:0\n    routes:\n"
        "      - {name: r, match: {prefix: /}, upstream: app, timeout: 10s}\n"
        "upstreams:\n  - {name: app, endpoints: [127.0.0.1:" + std::to_string(upstream_.port()) + "]}\n");
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
  EXPECT_EQ(upstream_.finished_ok(), 1);
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
  EXPECT_EQ(upstream_.finished_ok(), 1);
}

}  // namespace
}  // namespace curfew::testing
