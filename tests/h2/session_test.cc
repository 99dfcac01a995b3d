// h2::Session against an independent peer: grpc++ clients call a server session, and a client
// session calls grpc++'s interop server. Real sockets on loopback; every wait bounded.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "grpc/testing/messages.pb.h"
#include "h2/session.h"
#include "h2_test_server.h"
#include "interop_server.h"
#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/socket.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
using namespace std::chrono_literals;
using curfew_test::H2TestServer;
using rt::Task;

namespace {

std::string framed(const std::string& message) {
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + message;
}

// Answers every call with the request's own bytes (a unary echo at the gRPC level); calls to
// /test/Stall never answer, and count how their handler ended.
struct EchoHandler {
  std::shared_ptr<std::atomic<int>> stalls_cancelled = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);

  h2::StreamHandler handler() const {
    return [stalls = stalls_cancelled, calls = calls](std::shared_ptr<h2::Stream> s) -> Task<void> {
      ++*calls;
      const auto path = h2::find_header(s->headers(), ":path");
      if (path && *path == "/test/Stall") {
        try {
          co_await rt::sleep(60s);
        } catch (const rt::CancelledError&) {
          ++*stalls;
          throw;
        }
        co_return;
      }
      std::string body;
      for (int i = 0; i < 100000; ++i) {  // bounded: far more chunks than any test sends
        auto chunk = co_await s->read();
        if (!chunk) break;
        body += *chunk;
      }
      s->send_headers({{":status", "200"}, {"content-type", "application/grpc"}});
      co_await s->write(std::move(body));
      s->end({{"grpc-status", "0"}});
    };
  }
};

grpc::ByteBuffer buffer_of(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string string_of(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  (void)b.Dump(&slices);
  std::string out;
  for (auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// One unary call through grpc++'s generic stub; returns the status and fills `reply`.
grpc::Status generic_unary(grpc::GenericStub& stub, const std::string& method,
                           const std::string& request, std::string* reply,
                           std::chrono::milliseconds deadline = 10s) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, method, buffer_of(request), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  if (reply != nullptr && status.ok()) *reply = string_of(response);
  return status;
}

grpc::ChannelArguments big_messages() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return args;
}

// A grpc++ client's unary calls, small and large (8 MiB: past every window, so flow control
// and the send buffer's backpressure are exercised), reach a server session and come back whole.
TEST(H2Session, ServesAGrpcClientsCallsOfEverySize) {
  EchoHandler echo;
  H2TestServer server(echo.handler());
  auto channel = grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(),
                                           big_messages());
  grpc::GenericStub stub(channel);
  for (size_t size : {0ul, 1ul, 100ul, 16384ul, 70000ul, 1ul << 20, 8ul << 20}) {
    SCOPED_TRACE(size);
    std::string request(size, 'a');
    for (size_t i = 0; i < size; i += 4096) request[i] = static_cast<char>('a' + i % 26);
    std::string reply;
    const grpc::Status status = generic_unary(stub, "/test/Echo", request, &reply);
    EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
    EXPECT_EQ(reply, request);
  }
  EXPECT_EQ(echo.calls->load(), 7);
}

// 64 calls at once on one connection: every one completes with its own bytes.
TEST(H2Session, ServesConcurrentCallsOnOneConnection) {
  EchoHandler echo;
  H2TestServer server(echo.handler());
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  std::vector<std::thread> callers;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      grpc::GenericStub stub(channel);
      for (int i = 0; i < 8; ++i) {
        const std::string request = "call-" + std::to_string(t) + "-" + std::to_string(i);
        std::string reply;
        if (generic_unary(stub, "/test/Echo", request, &reply).ok() && reply == request) ++good;
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(good.load(), 64);
}

// A caller whose deadline expires resets its stream: the task serving it is cancelled at once
// (not when it next finishes something), and the session keeps serving others.
TEST(H2Session, APeerResetCancelsTheTaskServingTheStream) {
  EchoHandler echo;
  H2TestServer server(echo.handler());
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  for (int i = 0; i < 5; ++i) {
    const grpc::Status status = generic_unary(stub, "/test/Stall", "x", nullptr, 100ms);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  for (int i = 0; i < 500 && echo.stalls_cancelled->load() < 5; ++i)  // bounded: 5 s
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(echo.stalls_cancelled->load(), 5);
  std::string reply;
  EXPECT_TRUE(generic_unary(stub, "/test/Echo", "still serving", &reply).ok());
  EXPECT_EQ(reply, "still serving");
}

// A client session calls grpc++'s interop server (grpc.testing.TestService/UnaryCall): request
// headers, a framed message, the half-close; then response headers, the message and trailers.
TEST(H2Session, CallsAGrpcServerAsAClient) {
  auto upstream = curfew::testing::InteropServer::Start("127.0.0.1:0");
  ASSERT_NE(upstream, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(upstream->port());
  int good = 0;
  std::string status_seen;
  h2::CloseReason reason = h2::CloseReason::kOpen;
  rt::run([&]() -> Task<void> {
    rt::Loop& loop = (co_await rt::this_task{}).loop();
    rt::Socket socket =
        co_await rt::Timeout::after(5s).run(rt::connect(loop, rt::SocketAddress::parse(address)));
    h2::Session session(std::move(socket), h2::Role::kClient, {});
    rt::TaskGroup group;
    co_await rt::Timeout::after(20s).run(group.run([&]() -> Task<void> {
      group.spawn(session.run(nullptr), "session");
      for (int i = 0; i < 20; ++i) {
        grpc::testing::SimpleRequest request;
        request.set_response_size(100 + i);
        auto stream = session.open_stream({{":method", "POST"},
                                           {":scheme", "http"},
                                           {":path", "/grpc.testing.TestService/UnaryCall"},
                                           {":authority", address},
                                           {"content-type", "application/grpc"},
                                           {"te", "trailers"}});
        EXPECT_NE(stream, nullptr);
        if (stream == nullptr) break;
        co_await stream->write(framed(request.SerializeAsString()));
        stream->end();
        EXPECT_TRUE(co_await stream->wait_headers());
        std::string body;
        while (auto chunk = co_await stream->read()) body += *chunk;
        const auto status = h2::find_header(stream->trailers(), "grpc-status");
        status_seen = status ? *status : "(none)";
        grpc::testing::SimpleResponse response;
        if (body.size() >= 5 && response.ParseFromString(body.substr(5)) &&
            response.payload().body().size() == static_cast<size_t>(100 + i) &&
            status_seen == "0" && stream->ended_cleanly())
          ++good;
      }
      session.shutdown();  // GOAWAY: run() ends once nothing is open
    }()));
    reason = session.close_reason();
  }());
  EXPECT_EQ(good, 20);
  EXPECT_EQ(status_seen, "0");
  EXPECT_EQ(reason, h2::CloseReason::kGoaway) << h2::close_reason_name(reason);
}

}  // namespace
