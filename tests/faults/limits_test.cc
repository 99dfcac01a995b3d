// Overload and limits, on an in-process curfew (sidecar::Sidecar) in front of real upstreams on
// 127.0.0.1: max concurrent calls per listener and per route (RESOURCE_EXHAUSTED at once, counted
// in the CallReport, never queued, reloadable, slots given back however a call ends), max message
// size, max metadata size, max streams per connection, and upstream connection timeouts.
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "curfew/demo/demo.grpc.pb.h"
#include "fault_peers.h"
#include "generic_call.h"
#include "scripted_upstream.h"
#include "sidecar/call_report.h"
#include "sidecar/sidecar.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

// Records what the proxy reports. Test-only: a mutex is fine here.
class RecordingObserver final : public sidecar::CallObserver {
 public:
  struct Seen {
    std::string route;
    grpc::StatusCode code;
    sidecar::Rejection rejected;
    size_t attempts;
  };
  void call_started(const std::string&, const std::string*) override { ++started_; }
  void call_finished(const sidecar::CallReport& r) override {
    std::lock_guard lock(mu_);
    seen_.push_back({r.route ? *r.route : "", r.code, r.rejected, r.attempts.size()});
  }
  int started() const { return started_; }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  int count(sidecar::Rejection why) const {
    int n = 0;
    for (const Seen& s : seen()) n += s.rejected == why;
    return n;
  }

 private:
  std::atomic<int> started_{0};
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

// Echo holds the call until released (or cancelled), counting how many it holds at once.
class GateUpstream final : public demo::Demo::Service {
 public:
  GateUpstream() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    builder.SetMaxReceiveMessageSize(16 << 20);
    builder.SetMaxSendMessageSize(16 << 20);
    server_ = builder.BuildAndStart();
  }
  ~GateUpstream() override {
    open_ = true;
    server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }
  int port() const { return port_; }
  int started() const { return started_; }
  int active() const { return active_; }
  int max_active() const { return max_active_; }
  void open(bool v) { open_ = v; }  // true: answer at once; false: hold every call

  grpc::Status Echo(grpc::ServerContext* ctx, const demo::EchoRequest* request,
                    demo::EchoReply* reply) override {
    ++started_;
    const int now = ++active_;
    for (int seen = max_active_; now > seen && !max_active_.compare_exchange_weak(seen, now);) {
    }
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (!open_ && !ctx->IsCancelled() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    --active_;
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    reply->set_message(request->message() + request->message().substr(0, request->count()));
    return grpc::Status::OK;
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> started_{0}, active_{0}, max_active_{0};
  std::atomic<bool> open_{false};
};

std::string config(int upstream_port, const std::string& limits, const std::string& routes) {
  return "listeners:\n"
         "  - name: inbound\n"
         "    address: 127.0.0.1:0\n"
         "    default_timeout: 20s\n" +
         limits + "    routes:\n" + routes +
         "upstreams:\n"
         "  - {name: up, endpoints: [127.0.0.1:" +
         std::to_string(upstream_port) + "]}\n";
}

constexpr char kCatchAll[] = "      - {name: all, match: {prefix: /}, upstream: up}\n";

// A call on its own thread, cancellable, whose status can be awaited.
class HeldCall {
 public:
  explicit HeldCall(demo::Demo::Stub& stub,
                    std::optional<std::chrono::milliseconds> deadline = std::nullopt) {
    if (deadline) ctx_.set_deadline(std::chrono::system_clock::now() + *deadline);
    thread_ = std::thread([this, &stub] {
      const std::string text = "x";
      demo::EchoRequest request;
      request.set_message(text);
      demo::EchoReply reply;
      status_ = stub.Echo(&ctx_, request, &reply);
      done_ = true;
    });
  }
  ~HeldCall() {
    ctx_.TryCancel();
    thread_.join();
  }
  void cancel() { ctx_.TryCancel(); }
  bool done() const { return done_; }
  grpc::Status wait() {
    thread_.join();
    thread_ = std::thread([] {});
    return status_;
  }

 private:
  grpc::ClientContext ctx_;
  grpc::Status status_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

grpc::Status echo(demo::Demo::Stub& stub, const std::string& text = "x",
                  std::chrono::milliseconds* took = nullptr, int count = 0) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  demo::EchoRequest request;
  request.set_message(text);
  request.set_count(count);
  demo::EchoReply reply;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = stub.Echo(&ctx, request, &reply);
  if (took)
    *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  return s;
}

class Limits : public ::testing::Test {
 protected:
  void start(const std::string& limits, const std::string& routes) {
    sidecar_ = start_sidecar(config(upstream_.port(), limits, routes), &observer_);
    ASSERT_NE(sidecar_, nullptr);
    channel_ = channel_to(sidecar_->port("inbound"));
    stub_ = demo::Demo::NewStub(channel_);
  }
  void reload(const std::string& limits, const std::string& routes) {
    auto loaded = config::load_config_string(config(upstream_.port(), limits, routes), "t.yaml");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE(sidecar_->reload(*std::move(loaded)).ok());
  }
  bool held_at_upstream(int n) {
    return eventually([&] { return upstream_.active() == n; }, 10s);
  }

  GateUpstream upstream_;
  RecordingObserver observer_;
  std::unique_ptr<sidecar::Sidecar> sidecar_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<demo::Demo::Stub> stub_;
};

TEST_F(Limits, ListenerLimitRefusesTheNextCallAtOnceAndCountsIt) {
  start("    limits: {max_concurrent_calls: 3}\n", kCatchAll);
  std::vector<std::unique_ptr<HeldCall>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<HeldCall>(*stub_));
  ASSERT_TRUE(held_at_upstream(3));

  std::chrono::milliseconds took{};
  grpc::Status refused = echo(*stub_, "x", &took);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(),
            "curfew: listener 'inbound' is at its limit of 3 concurrent calls "
            "(limits.max_concurrent_calls); the call was not forwarded");
  EXPECT_LT(took, 1s);                // at once, not queued until a slot frees
  EXPECT_EQ(upstream_.started(), 3);  // never forwarded
  ASSERT_TRUE(eventually([&] { return observer_.count(sidecar::Rejection::kListenerLimit) == 1; }));
  for (const auto& s : observer_.seen()) {
    if (s.rejected == sidecar::Rejection::kNone) continue;
    EXPECT_EQ(s.code, grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(s.route, "all");
    EXPECT_EQ(s.attempts, 0u);
  }

  // A slot frees when a held call ends: the next call gets through.
  held[0]->cancel();
  EXPECT_EQ(held[0]->wait().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(held_at_upstream(2));
  upstream_.open(true);
  EXPECT_TRUE(eventually([&] { return echo(*stub_).ok(); }, 5s));
}

TEST_F(Limits, RouteLimitRefusesOnlyThatRoute) {
  start("    limits: {max_concurrent_calls: 100}\n",
        "      - {name: hot, match: {method: /curfew.demo.Demo/Echo}, upstream: up, "
        "max_concurrent_calls: 2}\n"
        "      - {name: cold, match: {prefix: /}, upstream: up}\n");
  std::vector<std::unique_ptr<HeldCall>> held;
  for (int i = 0; i < 2; ++i) held.push_back(std::make_unique<HeldCall>(*stub_));
  ASSERT_TRUE(held_at_upstream(2));
  std::chrono::milliseconds took{};
  grpc::Status refused = echo(*stub_, "x", &took);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.error_message(),
            "curfew: route 'hot' is at its limit of 2 concurrent calls (max_concurrent_calls); the "
            "call was not forwarded");
  EXPECT_LT(took, 1s);
  EXPECT_EQ(upstream_.started(), 2);
  ASSERT_TRUE(eventually([&] { return observer_.count(sidecar::Rejection::kRouteLimit) == 1; }));

  // Another route is not affected: an unknown method on "cold" reaches the upstream (which
  // answers UNIMPLEMENTED).
  grpc::GenericStub generic(channel_);
  const grpc::Status cold = generic_call(generic, "/curfew.demo.Demo/Nope");
  EXPECT_EQ(cold.error_code(), grpc::StatusCode::UNIMPLEMENTED) << cold.error_message();
  EXPECT_EQ(cold.error_message().find("curfew"), std::string::npos) << "answered by the upstream";
}

TEST_F(Limits, BurstNeverExceedsTheLimitAndNothingQueues) {
  const int limit = 8, callers = 64;
  start("    limits: {max_concurrent_calls: " + std::to_string(limit) + "}\n", kCatchAll);
  upstream_.open(false);
  std::vector<grpc::Status> status(callers);
  std::vector<std::chrono::milliseconds> took(callers);
  std::vector<std::thread> threads;
  std::atomic<int> finished{0};
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      status[i] = echo(*stub_, "x", &took[i]);
      ++finished;
    });
  }
  // Every caller beyond the limit is answered while the admitted ones are still held.
  ASSERT_TRUE(eventually([&] { return finished == callers - limit; }, 20s)) << finished;
  EXPECT_TRUE(eventually([&] { return upstream_.active() == limit; }, 10s)) << upstream_.active();
  EXPECT_EQ(finished, callers - limit);  // the admitted ones are still held: none was queued
  upstream_.open(true);
  for (auto& t : threads) t.join();
  int ok = 0, exhausted = 0;
  for (const auto& s : status) {
    ok += s.ok();
    exhausted += s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  EXPECT_EQ(ok, limit);
  EXPECT_EQ(exhausted, callers - limit);
  EXPECT_LE(upstream_.max_active(), limit);
  EXPECT_EQ(upstream_.started(), limit);
  ASSERT_TRUE(eventually([&] { return static_cast<int>(observer_.seen().size()) == callers; }));
  EXPECT_EQ(observer_.count(sidecar::Rejection::kListenerLimit), callers - limit);
  EXPECT_EQ(observer_.started(), callers);
}

TEST_F(Limits, SlotsAreGivenBackHoweverACallEnds) {
  start("    limits: {max_concurrent_calls: 2}\n",
        "      - {name: echo, match: {method: /curfew.demo.Demo/Echo}, upstream: up, timeout: "
        "100ms}\n");
  // Calls ending by the deadline, by the caller cancelling, by an unmatched method, and by
  // being refused themselves: none may keep a slot.
  for (int round = 0; round < 10; ++round) {
    {
      HeldCall d(*stub_);  // no deadline of its own: the route's 100 ms
      EXPECT_EQ(d.wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    }
    {
      HeldCall c(*stub_, 20s);
      ASSERT_TRUE(eventually([&] { return upstream_.active() >= 1; }, 5s));
      c.cancel();
      EXPECT_EQ(c.wait().error_code(), grpc::StatusCode::CANCELLED);
    }
    grpc::GenericStub generic(channel_);
    const grpc::Status unmatched = generic_call(generic, "/other.Service/Method");
    EXPECT_EQ(unmatched.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  ASSERT_TRUE(eventually([&] { return upstream_.active() == 0; }, 5s));
  // Exactly two slots are free: two calls are admitted, the third is refused.
  upstream_.open(true);
  EXPECT_TRUE(echo(*stub_).ok());
  upstream_.open(false);
  auto a = std::make_unique<HeldCall>(*stub_, 20s);
  auto b = std::make_unique<HeldCall>(*stub_, 20s);
  ASSERT_TRUE(eventually([&] { return upstream_.active() == 2; }, 5s));
  EXPECT_EQ(echo(*stub_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(Limits, LimitsAreReloadableWithoutAWindowAboveTheRouteLimit) {
  const std::string routes1 =
      "      - {name: hot, match: {method: /curfew.demo.Demo/Echo}, upstream: up, "
      "max_concurrent_calls: 1}\n";
  start("    limits: {max_concurrent_calls: 10}\n", routes1);
  auto first = std::make_unique<HeldCall>(*stub_);
  ASSERT_TRUE(held_at_upstream(1));
  EXPECT_EQ(echo(*stub_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Same route, same limit, after a reload: the call admitted before still counts.
  reload("    limits: {max_concurrent_calls: 10}\n", routes1);
  std::this_thread::sleep_for(100ms);  // the new routing is posted to every loop
  EXPECT_EQ(echo(*stub_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // A higher route limit applies at once to new calls.
  reload("    limits: {max_concurrent_calls: 10}\n",
         "      - {name: hot, match: {method: /curfew.demo.Demo/Echo}, upstream: up, "
         "max_concurrent_calls: 3}\n");
  auto second = std::make_unique<HeldCall>(*stub_);
  auto third = std::make_unique<HeldCall>(*stub_);
  ASSERT_TRUE(held_at_upstream(3));
  EXPECT_EQ(echo(*stub_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // A lower listener limit too.
  reload("    limits: {max_concurrent_calls: 2}\n",
         "      - {name: hot, match: {method: /curfew.demo.Demo/Echo}, upstream: up}\n");
  std::this_thread::sleep_for(100ms);
  grpc::Status s = echo(*stub_);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("listener 'inbound' is at its limit of 2"), std::string::npos)
      << s.error_message();
}

TEST_F(Limits, BusyPollNeedsARestartAndTheOldConfigKeepsServing) {
  start("", kCatchAll);
  upstream_.open(true);
  for (const char* extra : {"busy_poll: 0.05ms\n"}) {
    auto loaded =
        config::load_config_string(config(upstream_.port(), "", kCatchAll) + extra, "t.yaml");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    absl::Status status = sidecar_->reload(*std::move(loaded));
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << extra;
    EXPECT_NE(status.message().find("restart curfew"), std::string::npos) << status.message();
  }
  EXPECT_TRUE(echo(*stub_).ok());
}

TEST_F(Limits, MaxMessageBytes) {
  start("    limits: {max_message_bytes: 1024}\n", kCatchAll);
  upstream_.open(true);
  EXPECT_TRUE(echo(*stub_, std::string(900, 'a')).ok());
  // A request above the limit is refused by curfew; the upstream never sees it.
  grpc::Status big = echo(*stub_, std::string(2000, 'a'));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.error_message();
  EXPECT_EQ(upstream_.started(), 1);
  // A response above the limit is not sent to the caller either (the reply doubles the text).
  grpc::Status big_reply = echo(*stub_, std::string(900, 'a'), nullptr, 900);
  EXPECT_EQ(big_reply.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << big_reply.error_message();
  EXPECT_TRUE(echo(*stub_, "still fine").ok());
}

TEST_F(Limits, MaxMetadataBytes) {
  start("    limits: {max_metadata_bytes: 2048}\n", kCatchAll);
  upstream_.open(true);
  auto with_header = [&](size_t bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    // An oversized header may cost the caller its connection: wait for the reconnect.
    ctx.set_wait_for_ready(true);
    ctx.AddMetadata("x-big", std::string(bytes, 'm'));
    demo::EchoRequest request;
    demo::EchoReply reply;
    return stub_->Echo(&ctx, request, &reply);
  };
  EXPECT_TRUE(with_header(500).ok());
  grpc::Status big = with_header(8000);
  EXPECT_NE(big.error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(upstream_.started(), 1);  // refused before any upstream call
  // And curfew serves on. gRPC may close the caller's connection over the oversized header; a
  // call racing that close fails on the caller's side, so allow a few tries (bounded).
  bool served = false;
  grpc::Status last;
  for (int i = 0; i < 20 && !served; ++i) {
    last = with_header(500);
    served = last.ok();
    if (!served) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(served) << last.error_code() << " " << last.error_message();
}

TEST_F(Limits, MaxConcurrentStreamsPerConnection) {
  start("    limits: {max_concurrent_streams_per_connection: 2}\n", kCatchAll);
  // Three calls on one connection: the third waits in the caller's HTTP/2 stack (it is the
  // caller's queue, not curfew's) until a stream is free.
  auto a = std::make_unique<HeldCall>(*stub_);
  auto b = std::make_unique<HeldCall>(*stub_);
  ASSERT_TRUE(held_at_upstream(2));
  auto c = std::make_unique<HeldCall>(*stub_);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(upstream_.started(), 2);
  // Another connection has streams of its own.
  auto other = demo::Demo::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(sidecar_->port("inbound")),
                                grpc::InsecureChannelCredentials(), [] {
                                  grpc::ChannelArguments args;
                                  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
                                  return args;
                                }()));
  auto d = std::make_unique<HeldCall>(*other);
  ASSERT_TRUE(held_at_upstream(3));
  // A stream frees: the waiting call goes through.
  a->cancel();
  a->wait();
  EXPECT_TRUE(eventually([&] { return upstream_.started() == 4; }, 5s)) << upstream_.started();
}

// An upstream's headers and trailers as large as the listener accepts from callers pass through
// (gRPC's client default, 8 KiB, would otherwise fail the call on curfew's side of the upstream).
TEST(UpstreamMetadata, TrailersUpToTheListenersLimitPassThrough) {
  const std::string big(20000, 't');
  ScriptedUpstream upstream("big", always(Script{.trailers = {{"x-big-trailer", big}}}));
  auto sidecar = start_sidecar(
      config(upstream.port(), "    limits: {max_metadata_bytes: 65536}\n", kCatchAll), nullptr);
  ASSERT_NE(sidecar, nullptr);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, 65536);
  auto stub = demo::Demo::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(sidecar->port("inbound")),
                                grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  demo::EchoRequest request;
  request.set_message("x");
  demo::EchoReply reply;
  grpc::Status status = stub->Echo(&ctx, request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  auto trailer = ctx.GetServerTrailingMetadata().find("x-big-trailer");
  ASSERT_NE(trailer, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(trailer->second.size(), big.size());
}

// ---- upstream connection timeouts -----------------------------------------------------------

class ConnectTimeout : public ::testing::TestWithParam<FaultyUpstream::Mode> {};

TEST_P(ConnectTimeout, UnreachableUpstreamFailsWithinItsDeadline) {
  FaultyUpstream peer(GetParam());
  const std::string yaml =
      "listeners:\n"
      "  - name: inbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - {name: short, match: {method: /curfew.demo.Demo/Echo}, upstream: patient, timeout: "
      "300ms}\n"
      "      - {name: long, match: {prefix: /}, upstream: impatient, timeout: 20s}\n"
      "upstreams:\n"
      "  - {name: patient, endpoints: [127.0.0.1:" +
      std::to_string(peer.port()) +
      "], connect_timeout: 30s}\n"
      "  - {name: impatient, endpoints: [127.0.0.1:" +
      std::to_string(peer.port()) + "], connect_timeout: 400ms}\n";
  auto sidecar = start_sidecar(yaml);
  ASSERT_NE(sidecar, nullptr);
  auto stub = demo::Demo::NewStub(channel_to(sidecar->port("inbound")));
  for (int i = 0; i < 3; ++i) {
    // The call's deadline (the route's 300 ms: the caller sends none) comes before the
    // connection attempt gives up (30 s).
    grpc::ClientContext short_ctx;
    demo::EchoRequest short_request;
    demo::EchoReply short_reply;
    auto start = std::chrono::steady_clock::now();
    grpc::Status s = stub->Echo(&short_ctx, short_request, &short_reply);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
    EXPECT_NE(s.error_message().find("route 'short'"), std::string::npos) << s.error_message();
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 3s);
    // The connection attempt gives up (400 ms) long before the call's deadline (20 s).
    grpc::ClientContext ctx;
    demo::SlowRequest request;
    demo::EchoReply reply;
    start = std::chrono::steady_clock::now();
    s = stub->Slow(&ctx, request, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  }
}

INSTANTIATE_TEST_SUITE_P(Peers, ConnectTimeout,
                         ::testing::Values(FaultyUpstream::Mode::kSilent,
                                           FaultyUpstream::Mode::kBlackhole),
                         [](const auto& info) {
                           return info.param == FaultyUpstream::Mode::kSilent ? "AcceptsButSilent"
                                                                              : "Blackholed";
                         });

}  // namespace
}  // namespace curfew::testing
