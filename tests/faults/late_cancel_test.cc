// Regression test (found by FaultTest.BurstWithHalfTheCallersCancellingAtRandomPoints): a caller
// that cancels after its call was accepted but before the handler task bound itself to the call
// (ServerCall::cancel_task_on_disconnect) must still cancel that task. Before the fix, the done
// notification came while no task was bound and was lost: curfew went on, called the upstream,
// let it run to completion and counted the call OK for a caller long gone.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/grpc_server.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "runtime/to_thread.h"
#include "runtime_generic_server.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;

namespace {

// The call's handler waits for `may_bind` before binding itself to the call.
class LateBindServer {
 public:
  int port() const { return server_.port(); }

  std::atomic<bool> accepted{false};
  std::atomic<bool> may_bind{false};
  std::atomic<int> outcome{0};  // 1: the task went on, 2: the task was cancelled

 private:
  rt::Task<void> handle(rt::ServerCallPtr call) {
    accepted = true;
    // Not bound yet: the caller cancels now, and its done notification is processed meanwhile.
    for (int i = 0; i < 2000 && !may_bind; ++i) co_await rt::sleep(5ms);
    co_await rt::sleep(100ms);
    call->cancel_task_on_disconnect(co_await rt::this_task{});
    try {
      grpc::ByteBuffer message;
      co_await call->read(message);
      co_await rt::sleep(2s);  // stands for the upstream call the proxy would make
      outcome = 1;
    } catch (const rt::CancelledError& e) {
      outcome = e.reason() == "caller cancelled" ? 2 : 3;
    }
  }

  // Last: destroyed first, while what its calls use is still there.
  curfew::testing::RuntimeGenericServer server_{
      [this](rt::ServerCallPtr call) { return handle(std::move(call)); }};
};

TEST(LateCancel, ACallerGoneBeforeTheTaskBindsStillCancelsIt) {
  LateBindServer server;
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto call = stub.PrepareCall(&ctx, "/t.S/Late", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  for (int i = 0; i < 500 && !server.accepted; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(server.accepted);
  ctx.TryCancel();
  server.may_bind = true;
  for (int i = 0; i < 500 && server.outcome == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server.outcome, 2) << "1: the handler went on for a caller already gone";
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
