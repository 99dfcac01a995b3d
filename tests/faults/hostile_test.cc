// Regression tests of the hostile-traffic defects, each forced at its critical point on an
// in-process curfew (sidecar::Sidecar) in front of real gRPC upstreams on 127.0.0.1:
//   1. a call keeping its retry budget across reloads that rename routes (use-after-free);
//   2. a client stream the caller resets after its messages reaching the upstream as complete;
//   3. a response message in flight when the deadline fires, cut short for the caller;
//   4. an internal error in one call taking down its worker's other calls.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpc/grpc.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "curfew/demo/demo.grpc.pb.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/h2_proxy_call.h"
#include "sidecar/sidecar.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

grpc::ByteBuffer bytes_of(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string config_yaml(int upstream_port, const std::string& routes, int workers = 1) {
  return "listeners:\n"
         "  - name: inbound\n"
         "    address: 127.0.0.1:0\n"
         "    default_timeout: 10s\n"
         "    routes:\n" +
         routes +
         "upstreams:\n  - {name: up, endpoints: [127.0.0.1:" + std::to_string(upstream_port) +
         "]}\nworkers: " + std::to_string(workers) + "\n";
}

std::unique_ptr<sidecar::Sidecar> start_with(const std::string& yaml, int workers,
                                             sidecar::CallObserver* observer = nullptr) {
  auto config = config::load_config_string(yaml, "hostile.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  config->worker_threads = workers;  // one loop: every call shares the same worker state
  auto started = sidecar::Sidecar::start(*std::move(config), observer);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? std::move(*started) : nullptr;
}

// A Demo upstream: Fail answers UNAVAILABLE (with a retry pushback when asked for one), Slow
// sleeps, Echo echoes, Stream sends one message of `count` bytes at once and then holds the stream
// until cancelled.
class HostileUpstream final : public demo::Demo::Service {
 public:
  HostileUpstream() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    builder.SetMaxSendMessageSize(16 << 20);
    server_ = builder.BuildAndStart();
  }
  ~HostileUpstream() override { server_->Shutdown(std::chrono::system_clock::now() + 1s); }
  int port() const { return port_; }

  grpc::Status Fail(grpc::ServerContext* ctx, const demo::FailRequest* request,
                    demo::EchoReply*) override {
    if (!request->message().empty())
      ctx->AddTrailingMetadata("grpc-retry-pushback-ms", request->message());
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "upstream: unavailable");
  }
  grpc::Status Echo(grpc::ServerContext*, const demo::EchoRequest* request,
                    demo::EchoReply* reply) override {
    reply->set_message(request->message());
    return grpc::Status::OK;
  }
  grpc::Status Slow(grpc::ServerContext* ctx, const demo::SlowRequest* request,
                    demo::EchoReply* reply) override {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(request->delay_ms());
    while (std::chrono::steady_clock::now() < until && !ctx->IsCancelled())
      std::this_thread::sleep_for(2ms);
    reply->set_message(request->message());
    return grpc::Status::OK;
  }
  grpc::Status Stream(grpc::ServerContext* ctx, const demo::EchoRequest* request,
                      grpc::ServerWriter<demo::EchoReply>* writer) override {
    demo::EchoReply reply;
    reply.set_message(std::string(static_cast<size_t>(request->count()), 'm'));
    writer->Write(reply);
    for (int i = 0; i < 3000 && !ctx->IsCancelled(); ++i) std::this_thread::sleep_for(10ms);
    return grpc::Status::OK;
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// 1. A call in its retry backoff keeps its retry budget while reloads rename the route and calls
// on the new names create budgets of their own (the worker's map rehashes, then prunes the old
// name). Before the fix the call held a reference into that map: heap-use-after-free under ASan.
TEST(Hostile, ARetryingCallKeepsItsBudgetAcrossReloadsThatRenameTheRoute) {
  HostileUpstream upstream;
  auto routes = [](int n) {
    return "      - name: retried-" + std::to_string(n) +
           "\n        match: {method: /curfew.demo.Demo/Fail}\n        upstream: up\n"
           "        timeout: 20s\n"
           "        retry: {attempts: 3, per_try_timeout: 5s, on: [UNAVAILABLE], budget_ratio: "
           "1.0}\n";
  };
  auto sidecar = start_with(config_yaml(upstream.port(), routes(0)), 1);
  ASSERT_NE(sidecar, nullptr);
  auto stub = demo::Demo::NewStub(channel_to(sidecar->port("inbound")));

  // The held call: each try is answered UNAVAILABLE with a 1.5 s pushback, so it sits in its
  // backoff, budget in hand, while the reloads below happen.
  grpc::Status held_status;
  std::thread held([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    demo::FailRequest request;
    request.set_message("1500");
    demo::EchoReply reply;
    held_status = stub->Fail(&ctx, request, &reply);
  });
  std::this_thread::sleep_for(300ms);
  for (int n = 1; n <= 40; ++n) {
    auto config =
        config::load_config_string(config_yaml(upstream.port(), routes(n)), "hostile.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    config->worker_threads = 1;
    ASSERT_TRUE(sidecar->reload(*std::move(config)).ok());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    demo::FailRequest request;
    request.set_message("0");  // retries at once: each call on a new route name
    demo::EchoReply reply;
    EXPECT_EQ(stub->Fail(&ctx, request, &reply).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  held.join();
  EXPECT_EQ(held_status.error_code(), grpc::StatusCode::UNAVAILABLE) << held_status.error_message();
  grpc::ClientContext ctx;
  demo::EchoRequest request;
  demo::EchoReply reply;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  // Still serving: Echo matches no route of this config.
  EXPECT_EQ(stub->Echo(&ctx, request, &reply).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// 3. A response message in flight when the route's deadline fires is never delivered cut short.
// The caller does not read at first, so curfew's write of the 2 MB message is stuck in flow
// control when the deadline (300 ms) fires. Messages are forwarded cut-through, never assembled:
// part of the message is already on the caller's stream and the rest went with the cancelled
// upstream call, so curfew resets the caller's stream (RST_STREAM CANCEL). No status may follow
// part of a message: the caller sees no message and CANCELLED, never a short message.
TEST(Hostile, AMessageInFlightWhenTheDeadlineFiresIsNeverCutShort) {
  HostileUpstream upstream;
  auto sidecar = start_with(
      config_yaml(upstream.port(),
                  "      - {name: stream, match: {method: /curfew.demo.Demo/Stream}, upstream: up, "
                  "timeout: 300ms, max_timeout: 300ms}\n"),
      1);
  ASSERT_NE(sidecar, nullptr);
  // A caller with a small window and no window growth: it takes nothing until it reads.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 65535);
  auto stub = demo::Demo::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(sidecar->port("inbound")),
                                grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 30s);
  demo::EchoRequest request;
  request.set_count(2 << 20);
  auto reader = stub->Stream(&ctx, request);
  std::this_thread::sleep_for(700ms);  // the deadline fires meanwhile, the write still in flight
  demo::EchoReply reply;
  int messages = 0;
  while (reader->Read(&reply)) {
    ++messages;
    EXPECT_EQ(reply.message().size(), size_t{2} << 20);
  }
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(messages, 0);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();
  EXPECT_NE(status.error_message().find("RST_STREAM"), std::string::npos) << status.error_message();
}

// Counts the reports of calls the fault boundary failed.
class FaultObserver final : public sidecar::CallObserver {
 public:
  void call_started(const std::string&, const std::string*) override {}
  void call_finished(const sidecar::CallReport& r) override {
    if (r.fault) {
      ++faults_;
      EXPECT_EQ(r.code, grpc::StatusCode::INTERNAL);
    }
  }
  int faults() const { return faults_; }

 private:
  std::atomic<int> faults_{0};
};

// 4. An internal error inside one call (here: a logic_error thrown by a test hook at the start of
// every Fail call) fails that call alone with INTERNAL, counted; the calls in flight on the same
// worker finish normally and curfew goes on serving. Before the fix the error failed the worker's
// task group: every other call was cancelled and the process terminated.
TEST(Hostile, AFaultInOneCallFailsThatCallAlone) {
  HostileUpstream upstream;
  FaultObserver observer;
  auto sidecar = start_with(
      config_yaml(upstream.port(),
                  "      - {name: all, match: {prefix: /}, upstream: up, timeout: 20s}\n"),
      1, &observer);
  ASSERT_NE(sidecar, nullptr);
  sidecar::set_call_fault_hook_for_testing([](const std::string& method) {
    if (method == "/curfew.demo.Demo/Fail") throw std::logic_error("injected fault");
  });
  struct Unhook {
    ~Unhook() { sidecar::set_call_fault_hook_for_testing(nullptr); }
  } unhook;
  auto stub = demo::Demo::NewStub(channel_to(sidecar->port("inbound")));

  constexpr int kSlow = 8;
  std::vector<grpc::Status> slow(kSlow);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSlow; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 30s);
      demo::SlowRequest request;
      request.set_delay_ms(800);
      demo::EchoReply reply;
      slow[i] = stub->Slow(&ctx, request, &reply);
    });
  }
  std::this_thread::sleep_for(200ms);  // the slow calls are in flight on the one worker
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    demo::FailRequest request;
    demo::EchoReply reply;
    const grpc::Status s = stub->Fail(&ctx, request, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(s.error_message().find("internal error on route 'all'"), std::string::npos)
        << s.error_message();
  }
  for (auto& t : threads) t.join();
  for (const grpc::Status& s : slow) EXPECT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  demo::EchoRequest request;
  request.set_message("after");
  demo::EchoReply reply;
  EXPECT_TRUE(stub->Echo(&ctx, request, &reply).ok());
  EXPECT_TRUE(eventually([&] { return observer.faults() == 5; }));
}

// An upstream for client streams: records, for each call, whether its request stream ended with
// a real half-close (END_STREAM from curfew) or a reset, at the read that found no more messages.
class UploadUpstream {
 public:
  UploadUpstream() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterAsyncGenericService(&service_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    thread_ = std::thread([this] { serve(); });
  }
  ~UploadUpstream() {
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
    cq_->Shutdown();
    thread_.join();
  }
  int port() const { return port_; }
  int half_closed() const { return half_closed_; }
  int reset() const { return reset_; }

 private:
  struct Call {
    grpc::GenericServerContext ctx;
    grpc::GenericServerAsyncReaderWriter stream{&ctx};
    grpc::ByteBuffer message;
    int state = 0;  // 0 accepting, 1 reading, 2 finishing
  };
  void accept() {
    auto* call = new Call;
    service_.RequestCall(&call->ctx, &call->stream, cq_.get(), cq_.get(), call);
  }
  void serve() {
    accept();
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      if (call->state == 0) {
        if (!ok) {
          delete call;
          continue;
        }
        accept();
        call->state = 1;
        call->stream.Read(&call->message, call);
      } else if (call->state == 1) {
        if (ok) {
          call->stream.Read(&call->message, call);
          continue;
        }
        (grpc_call_failed_before_recv_message(call->ctx.c_call()) == 0 ? half_closed_ : reset_)++;
        call->state = 2;
        call->stream.Finish(grpc::Status::OK, call);
      } else {
        delete call;
      }
    }
  }

  int port_ = 0;
  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::thread thread_;
  std::atomic<int> half_closed_{0};
  std::atomic<int> reset_{0};
};

// 2. Uploads that the caller resets after sending its messages, among others that half-close,
// with unary traffic alongside on the same worker: none of the reset ones reaches the upstream as
// a complete stream. curfew decides from what the transport reports at the read that ended the
// stream, not from when the done notification arrives (before the fix: 4 of 3,000 reached the
// upstream as complete under load).
TEST(Hostile, UploadsTheCallerResetNeverReachTheUpstreamAsComplete) {
  UploadUpstream upstream;
  auto sidecar = start_with(
      config_yaml(upstream.port(),
                  "      - {name: all, match: {prefix: /}, upstream: up, timeout: 20s}\n"),
      1);
  ASSERT_NE(sidecar, nullptr);
  auto channel = channel_to(sidecar->port("inbound"));
  grpc::GenericStub stub(channel);
  constexpr int kCallers = 4, kUploads = 60;
  std::atomic<int> completed{0}, reset_sent{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < kUploads; ++i) {
        const bool reset = (i + c) % 2 == 0;
        grpc::CompletionQueue cq;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 30s);
        void* tag;
        bool ok;
        auto call = stub.PrepareCall(&ctx, "/up.Load/Upload", &cq);
        call->StartCall(nullptr);
        cq.Next(&tag, &ok);
        for (int m = 0; m < 3; ++m) {
          call->Write(bytes_of(std::string(1024, 'u')), nullptr);
          cq.Next(&tag, &ok);
        }
        if (reset) {
          ctx.TryCancel();
          ++reset_sent;
        } else {
          call->WritesDone(nullptr);
          cq.Next(&tag, &ok);
        }
        grpc::ByteBuffer reply;
        call->Read(&reply, nullptr);
        cq.Next(&tag, &ok);
        grpc::Status status;
        call->Finish(&status, nullptr);
        cq.Next(&tag, &ok);
        if (!reset && status.ok()) ++completed;
        call.reset();
        cq.Shutdown();
        while (cq.Next(&tag, &ok)) {
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  const int half_closes = kCallers * kUploads - reset_sent;
  EXPECT_EQ(completed, half_closes);
  // Every half-closed upload reached the upstream as one; no reset one did.
  EXPECT_TRUE(eventually([&] { return upstream.half_closed() >= half_closes; }, 10s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(upstream.half_closed(), half_closes);
}

}  // namespace
}  // namespace curfew::testing
