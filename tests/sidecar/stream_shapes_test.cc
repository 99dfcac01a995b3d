// Streams whose shape the forwarding must not assume: the upstream speaking first (the caller
// sends its headers and then waits to read), and a caller that half-closes without a message.
// curfew opens the upstream stream as soon as the caller's headers arrive; these would hang if it
// waited for a first message.
//
// Both peers are grpc++'s own (generic async API, each driven step by step on a completion queue
// of its own by one thread), so nothing of curfew's code sits on either end.
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

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
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Waits for the one operation outstanding on `cq`: its ok, or false once the queue is shut down.
bool step(grpc::CompletionQueue& cq) {
  void* tag;
  bool ok;
  return cq.Next(&tag, &ok) && ok;
}

// A generic upstream, one call at a time on a thread of its own. Every call: writes "hello"
// before reading anything, then echoes each message, then finishes OK when the caller
// half-closes.
class ServerFirstUpstream {
 public:
  ServerFirstUpstream() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterAsyncGenericService(&service_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    thread_ = std::thread([this] { serve(); });
  }
  ~ServerFirstUpstream() {
    stopping_ = true;
    server_->Shutdown(std::chrono::system_clock::now());  // cancels a call in flight
    thread_.join();
  }

  int port() const { return port_; }
  int finished_ok() const { return finished_ok_; }

 private:
  void serve() {
    while (!stopping_) {
      grpc::GenericServerContext ctx;
      grpc::GenericServerAsyncReaderWriter stream(&ctx);
      service_.RequestCall(&ctx, &stream, cq_.get(), cq_.get(), this);
      if (!step(*cq_)) continue;  // shutting down (a request fails after Shutdown began)
      serve_one(stream);          // every operation it started has completed
    }
    // Only this thread uses the queue: shut down once no request can be made on it any more.
    cq_->Shutdown();
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
    }
  }

  void serve_one(grpc::GenericServerAsyncReaderWriter& stream) {
    const grpc::ByteBuffer hello = bytes("hello");
    stream.Write(hello, this);
    if (!step(*cq_)) return;
    grpc::ByteBuffer message;
    for (;;) {
      stream.Read(&message, this);
      if (!step(*cq_)) break;  // the caller half-closed
      stream.Write(message, this);
      if (!step(*cq_)) return;
    }
    stream.Finish(grpc::Status::OK, this);
    if (step(*cq_)) ++finished_ok_;
  }

  int port_ = 0;
  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> finished_ok_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// A generic bidi call driven by the test's thread, one operation at a time; the context's
// deadline (5 s) bounds every wait.
class BlockingCall {
 public:
  BlockingCall(grpc::GenericStub& stub, const std::string& method) {
    ctx_.set_deadline(std::chrono::system_clock::now() + 5s);
    call_ = stub.PrepareCall(&ctx_, method, &cq_);
    call_->StartCall(this);
    step(cq_);
  }
  ~BlockingCall() {
    if (!finished_) {
      ctx_.TryCancel();
      finish();
    }
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  std::optional<std::string> read() {
    grpc::ByteBuffer message;
    call_->Read(&message, this);
    if (!step(cq_)) return std::nullopt;
    return text(message);
  }
  bool write(const std::string& message) {
    const grpc::ByteBuffer buffer = bytes(message);
    call_->Write(buffer, this);
    return step(cq_);
  }
  bool writes_done() {
    call_->WritesDone(this);
    return step(cq_);
  }
  grpc::Status finish() {
    grpc::Status status;
    call_->Finish(&status, this);
    step(cq_);
    finished_ = true;
    return status;
  }

 private:
  grpc::ClientContext ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool finished_ = false;
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
  BlockingCall call(stub, "/t.S/ServerFirst");
  // Nothing sent yet: a forwarding that waited for the caller's first message would hang here
  // until the deadline.
  EXPECT_EQ(call.read(), "hello");
  EXPECT_TRUE(call.write("ping"));
  EXPECT_EQ(call.read(), "ping");
  EXPECT_TRUE(call.writes_done());
  EXPECT_EQ(call.read(), std::nullopt);
  const grpc::Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  // The upstream records its end after its status went out: the caller may see the status first.
  EXPECT_TRUE(eventually([&] { return upstream_.finished_ok() == 1; })) << upstream_.finished_ok();
}

TEST_F(StreamShapes, CallerHalfClosesWithoutAMessage) {
  grpc::GenericStub stub(channel_);
  BlockingCall call(stub, "/t.S/ServerFirst");
  EXPECT_TRUE(call.writes_done());
  EXPECT_EQ(call.read(), "hello");
  EXPECT_EQ(call.read(), std::nullopt);
  const grpc::Status status = call.finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(eventually([&] { return upstream_.finished_ok() == 1; })) << upstream_.finished_ok();
}

}  // namespace
}  // namespace curfew::testing
