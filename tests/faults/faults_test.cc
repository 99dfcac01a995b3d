// Fault injection against the real curfew binary and real peers on 127.0.0.1: upstreams that
// die, hang, refuse, reset or are not gRPC at all; callers that go silent, cancel at random points
// or all time out at once. For each: curfew stays up, every caller gets the right status quickly,
// upstream work is cancelled, the metrics account for every call, memory comes back to its
// baseline, and curfew drains and exits 0 with no sanitizer report (fixture TearDown).
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "burst.h"
#include "fault_fixture.h"
#include "fault_peers.h"
#include "interop_server.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using Mode = FaultyUpstream::Mode;

std::string upstream(const std::string& name, int port, const std::string& connect_timeout = "1s") {
  return "  - {name: " + name + ", endpoints: [127.0.0.1:" + std::to_string(port) +
         "], connect_timeout: " + connect_timeout + "}\n";
}

std::string route(const std::string& name, const std::string& method, const std::string& to,
                  const std::string& extra = "") {
  return "      - {name: " + name + ", match: {method: " + method + "}, upstream: " + to + extra +
         "}\n";
}

constexpr char kSlow[] = "/curfew.demo.Demo/Slow";
constexpr char kFail[] = "/curfew.demo.Demo/Fail";
constexpr char kStream[] = "/curfew.demo.Demo/Stream";

grpc::Status call_slow(demo::Demo::Stub& stub, int delay_ms,
                       std::optional<std::chrono::milliseconds> deadline = std::nullopt,
                       std::chrono::milliseconds* took = nullptr) {
  grpc::ClientContext ctx;
  if (deadline) ctx.set_deadline(std::chrono::system_clock::now() + *deadline);
  demo::SlowRequest request;
  request.set_delay_ms(delay_ms);
  demo::EchoReply reply;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub.Slow(&ctx, request, &reply);
  if (took) {
    *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  }
  return status;
}

// Without a deadline of its own: the route's timeout applies.
grpc::Status call_fail(demo::Demo::Stub& stub, std::chrono::milliseconds* took = nullptr) {
  grpc::ClientContext ctx;
  demo::FailRequest request;
  demo::EchoReply reply;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub.Fail(&ctx, request, &reply);
  if (took) {
    *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  }
  return status;
}

// ---- upstream faults ------------------------------------------------------------------------

TEST_F(FaultTest, UpstreamSigkilledMidCallFailsEveryCallerFastAndRecovers) {
  const int backend_port = free_port();
  start(route("victim", kSlow, "victim", ", timeout: 30s"),
        upstream("victim", backend_port, "300ms"));
  warm_up();
  const int n = 24 / kScale + 4;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Child backend({DEMO_BACKEND_BINARY, "--address", "127.0.0.1:" + std::to_string(backend_port)},
                  dir_.path() / ("backend-" + std::to_string(round) + ".log"));
    ASSERT_TRUE(backend.wait_output("listening on", 20s)) << backend.output();
    // The upstream is back: curfew reconnects (its backoff is bounded by connect_timeout/1 s).
    int probes = 0;
    ASSERT_TRUE(within(15s, [&] {
      ++probes;
      return call_slow(*stub_, 0, 2s).ok();
    }));
    calls_made_ += probes;

    std::vector<BurstCall> calls(n);
    for (auto& c : calls) c.request.set_delay_ms(20'000);
    std::thread killer([&] {
      // Mid-call: once every call is in flight at the upstream.
      within(20s, [&] {
        return curfew_->sum("curfew_inflight_requests", {{"route", "victim"}}) == n;
      });
      backend.signal(SIGKILL);
    });
    ASSERT_TRUE(run_burst(*stub_, calls, 40s));
    killer.join();
    calls_made_ += n;
    for (const BurstCall& c : calls) {
      EXPECT_EQ(c.status.error_code(), grpc::StatusCode::UNAVAILABLE) << c.status.error_message();
      EXPECT_LT(c.took, 25s);  // the connection loss ended it, not the 30 s deadline
    }
    EXPECT_TRUE(curfew_->wait_sum("curfew_requests_total",
                                  {{"route", "victim"}, {"grpc_code", "UNAVAILABLE"}}, n * round))
        << curfew_->sum("curfew_requests_total",
                        {{"route", "victim"}, {"grpc_code", "UNAVAILABLE"}});
    backend.wait_exit(5s);
    if (round == 1) mark_baseline();  // steady state after one round
  }
  // With the upstream gone for good, calls fail at once.
  std::chrono::milliseconds took{};
  EXPECT_EQ(call_slow(*stub_, 0, 10s, &took).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_LT(took, 5s);
  ++calls_made_;
  expect_accounted(calls_made_);
  expect_memory_back();
}

// An upstream that accepts connections and never says a word (no HTTP/2 settings): the
// connection attempt is bounded by connect_timeout, the call by its deadline.
void expect_unreachable_upstream_fails_in_time(FaultTest& t, demo::Demo::Stub& stub, int n) {
  std::vector<grpc::Status> connect(n), deadline(n);
  std::vector<std::chrono::milliseconds> connect_took(n), deadline_took(n);
  parallel(n, [&](int i) {
    connect[i] = call_slow(stub, 0, std::nullopt, &connect_took[i]);
    deadline[i] = call_fail(stub, &deadline_took[i]);
  });
  for (int i = 0; i < n; ++i) {
    // Route "connect": 10 s deadline, upstream connect_timeout 300 ms -> UNAVAILABLE long before.
    EXPECT_EQ(connect[i].error_code(), grpc::StatusCode::UNAVAILABLE) << connect[i].error_message();
    EXPECT_LT(connect_took[i], 5s);
    // Route "deadline": 300 ms deadline, upstream connect_timeout 20 s -> DEADLINE_EXCEEDED.
    EXPECT_EQ(deadline[i].error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << "[" << deadline[i].error_message() << "] " << deadline_took[i].count() << "ms";
    EXPECT_NE(deadline[i].error_message().find("route 'deadline'"), std::string::npos)
        << deadline[i].error_message();
    EXPECT_LT(deadline_took[i], 5s);
  }
}

std::string unreachable_routes() {
  return route("connect", kSlow, "fast-giveup", ", timeout: 10s") +
         route("deadline", kFail, "slow-giveup", ", timeout: 300ms");
}

std::string unreachable_upstreams(int port) {
  return upstream("fast-giveup", port, "300ms") + upstream("slow-giveup", port, "20s");
}

TEST_F(FaultTest, UpstreamAcceptsAndNeverAnswers) {
  FaultyUpstream silent(Mode::kSilent);
  start(unreachable_routes(), unreachable_upstreams(silent.port()));
  warm_up();
  const int n = 16;
  for (int round = 0; round < 3; ++round) {
    expect_unreachable_upstream_fails_in_time(*this, *stub_, n);
    if (round == 0) mark_baseline();
  }
  calls_made_ += 3 * 2 * n;
  EXPECT_GT(silent.connections(), 0);  // curfew did connect; the peer just never answered
  settle();                            // every call reported (a report follows the caller's status)
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "connect"}, {"grpc_code", "UNAVAILABLE"}}),
      3 * n);
  EXPECT_EQ(curfew_->sum("curfew_timeouts_total", {{"route", "deadline"}, {"cause", "route"}}),
            3 * n);
  expect_accounted(calls_made_);
  expect_memory_back();
}

TEST_F(FaultTest, UpstreamBlackholedConnectHangs) {
  FaultyUpstream blackhole(Mode::kBlackhole);
  start(unreachable_routes(), unreachable_upstreams(blackhole.port()));
  warm_up();
  const int n = 16;
  for (int round = 0; round < 3; ++round) {
    expect_unreachable_upstream_fails_in_time(*this, *stub_, n);
    if (round == 0) mark_baseline();
  }
  calls_made_ += 3 * 2 * n;
  EXPECT_EQ(blackhole.connections(), 0);
  settle();  // every call reported (a report follows the caller's status)
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "connect"}, {"grpc_code", "UNAVAILABLE"}}),
      3 * n);
  EXPECT_EQ(curfew_->sum("curfew_timeouts_total", {{"route", "deadline"}, {"cause", "route"}}),
            3 * n);
  expect_accounted(calls_made_);
  expect_memory_back();
}

TEST_F(FaultTest, UpstreamRefusingConnectionsFailsFast) {
  ClosedPort closed;
  start(route("refused", kSlow, "refused", ", timeout: 10s"), upstream("refused", closed.port()));
  warm_up();
  const int n = 32;
  for (int round = 0; round < 3; ++round) {
    std::vector<grpc::Status> status(n);
    std::vector<std::chrono::milliseconds> took(n);
    parallel(n, [&](int i) { status[i] = call_slow(*stub_, 0, std::nullopt, &took[i]); });
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(status[i].error_code(), grpc::StatusCode::UNAVAILABLE) << status[i].error_message();
      EXPECT_LT(took[i], 3s);
    }
    if (round == 0) mark_baseline();  // steady state after one round
  }
  calls_made_ += 3 * n;
  settle();  // every call reported (a report follows the caller's status)
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "refused"}, {"grpc_code", "UNAVAILABLE"}}),
      3 * n);
  expect_accounted(calls_made_);
  expect_memory_back();
}

TEST_F(FaultTest, UpstreamResettingStreamsPassesTheResetOn) {
  FaultyUpstream internal(Mode::kHttp2Reset, h2::kInternalError);
  FaultyUpstream refused(Mode::kHttp2Reset, h2::kRefusedStream);
  FaultyUpstream midstream(Mode::kHttp2ResetMidStream, h2::kInternalError);
  start(route("reset", kSlow, "internal", ", timeout: 10s") +
            route("refuse", kFail, "refused", ", timeout: 10s") +
            route("midstream", kStream, "midstream", ", timeout: 10s"),
        upstream("internal", internal.port()) + upstream("refused", refused.port()) +
            upstream("midstream", midstream.port()));
  warm_up();
  const int n = 16;
  for (int round = 0; round < 3; ++round) {
    std::vector<grpc::Status> a(n), b(n), c(n);
    std::vector<int> messages(n);
    parallel(n, [&](int i) {
      std::chrono::milliseconds took{};
      a[i] = call_slow(*stub_, 0, std::nullopt, &took);
      EXPECT_LT(took, 5s);
      b[i] = call_fail(*stub_, &took);
      EXPECT_LT(took, 5s);
      grpc::ClientContext ctx;
      demo::EchoRequest request;
      request.set_count(3);
      auto reader = stub_->Stream(&ctx, request);
      demo::EchoReply reply;
      while (reader->Read(&reply)) {
        EXPECT_EQ(reply.message(), "partial");
        ++messages[i];
      }
      c[i] = reader->Finish();
    });
    for (int i = 0; i < n; ++i) {
      // RST_STREAM INTERNAL_ERROR -> INTERNAL; REFUSED_STREAM -> UNAVAILABLE (no retry policy
      // on these routes; a refused stream is sent again once, transparently, and refused again).
      EXPECT_EQ(a[i].error_code(), grpc::StatusCode::INTERNAL) << a[i].error_message();
      EXPECT_EQ(b[i].error_code(), grpc::StatusCode::UNAVAILABLE) << b[i].error_message();
      // The message sent before the reset reaches the caller, then the reset's status.
      EXPECT_EQ(messages[i], 1);
      EXPECT_EQ(c[i].error_code(), grpc::StatusCode::INTERNAL) << c[i].error_message();
    }
    if (round == 0) mark_baseline();  // steady state after one round
  }
  calls_made_ += 3 * 3 * n;
  EXPECT_EQ(internal.streams(), 3 * n);  // each call reached the peer exactly once
  // A refused stream was never processed (RFC 9113 §8.7): curfew sends it again once, as gRPC's
  // transparent retry does.
  EXPECT_EQ(refused.streams(), 2 * 3 * n);
  settle();  // every call reported (a report follows the caller's status)
  EXPECT_EQ(curfew_->sum("curfew_requests_total", {{"route", "reset"}, {"grpc_code", "INTERNAL"}}),
            3 * n);
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "refuse"}, {"grpc_code", "UNAVAILABLE"}}),
      3 * n);
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "midstream"}, {"grpc_code", "INTERNAL"}}),
      3 * n);
  expect_accounted(calls_made_);
  expect_memory_back();
}

TEST_F(FaultTest, NonGrpcPeersWhereAnUpstreamShouldBe) {
  FaultyUpstream web(Mode::kHttp2NotFound);  // an HTTP/2 web server
  FaultyUpstream plain(Mode::kPlainTcp);     // not HTTP/2 at all
  start(route("web", kSlow, "web", ", timeout: 10s") +
            route("plain", kFail, "plain", ", timeout: 10s"),
        upstream("web", web.port()) + upstream("plain", plain.port(), "500ms"));
  warm_up();
  const int n = 16;
  for (int round = 0; round < 3; ++round) {
    std::vector<grpc::Status> a(n), b(n);
    parallel(n, [&](int i) {
      std::chrono::milliseconds took{};
      a[i] = call_slow(*stub_, 0, std::nullopt, &took);
      EXPECT_LT(took, 5s);
      b[i] = call_fail(*stub_, &took);
      EXPECT_LT(took, 5s);
    });
    for (int i = 0; i < n; ++i) {
      // HTTP 404 without grpc-status: gRPC's HTTP-to-gRPC mapping gives UNIMPLEMENTED.
      EXPECT_EQ(a[i].error_code(), grpc::StatusCode::UNIMPLEMENTED) << a[i].error_message();
      // A peer that does not speak HTTP/2: the connection fails, UNAVAILABLE.
      EXPECT_EQ(b[i].error_code(), grpc::StatusCode::UNAVAILABLE) << b[i].error_message();
    }
    if (round == 0) mark_baseline();  // steady state after one round
  }
  calls_made_ += 3 * 2 * n;
  settle();  // every call reported (a report follows the caller's status)
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "web"}, {"grpc_code", "UNIMPLEMENTED"}}),
      3 * n);
  EXPECT_EQ(
      curfew_->sum("curfew_requests_total", {{"route", "plain"}, {"grpc_code", "UNAVAILABLE"}}),
      3 * n);
  expect_accounted(calls_made_);
  expect_memory_back();
}

// ---- caller faults --------------------------------------------------------------------------

TEST_F(FaultTest, CallersThatOpenStreamsAndGoSilent) {
  auto interop = InteropServer::Start("127.0.0.1:0");
  ASSERT_NE(interop, nullptr);
  start(route("silent", kSlow, "healthy", ", timeout: 300ms") +
            route("duplex", "/grpc.testing.TestService/FullDuplexCall", "interop",
                  ", timeout: 300ms"),
        upstream("interop", interop->port()));
  warm_up();
  const int baseline_fds = curfew_->process().open_fds();
  const int streams = 20;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // (a) Raw HTTP/2 callers: request headers, then nothing (no message, no end of stream, no
    // reads). curfew's deadline ends each call.
    {
      std::vector<std::unique_ptr<SilentCaller>> silent;
      for (int i = 0; i < 3; ++i) {
        silent.push_back(std::make_unique<SilentCaller>(port_, kSlow, streams));
        ASSERT_TRUE(silent.back()->sent());
      }
      // Meanwhile, idle TCP connections that never even send the HTTP/2 preface.
      std::vector<int> idle;
      for (int i = 0; i < 50; ++i) idle.push_back(connect_to(port_));
      // Other callers are served all along.
      for (int i = 0; i < 20; ++i) EXPECT_TRUE(echo(*stub_).ok());
      calls_made_ += 20;
      EXPECT_TRUE(curfew_->wait_sum(
          "curfew_timeouts_total", {{"route", "silent"}, {"cause", "route"}}, 3 * streams * round));
      for (int fd : idle) close(fd);
    }
    calls_made_ += 3 * streams;
    // (b) gRPC callers that open bidi streams and never write: the upstream's streams are
    // cancelled at the deadline.
    auto channel = channel_to_port(port_);
    grpc::GenericStub generic(channel);
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::GenericClientAsyncReaderWriter>> calls;
    grpc::CompletionQueue cq;
    for (int i = 0; i < streams; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      calls.push_back(generic.PrepareCall(contexts.back().get(),
                                          "/grpc.testing.TestService/FullDuplexCall", &cq));
      calls.back()->StartCall(reinterpret_cast<void*>(1));
    }
    std::vector<grpc::Status> status(streams);
    int pending = streams;
    for (int i = 0; i < streams; ++i) calls[i]->Finish(&status[i], reinterpret_cast<void*>(2));
    const auto until = std::chrono::system_clock::now() + 20s;
    while (pending > 0) {
      void* tag;
      bool ok;
      if (cq.AsyncNext(&tag, &ok, until) != grpc::CompletionQueue::GOT_EVENT) break;
      if (tag == reinterpret_cast<void*>(2)) --pending;
    }
    EXPECT_EQ(pending, 0);
    for (auto& c : contexts) c->TryCancel();
    while (pending > 0) {
      void* tag;
      bool ok;
      if (!cq.Next(&tag, &ok)) break;
      if (tag == reinterpret_cast<void*>(2)) --pending;
    }
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
    for (const auto& s : status) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
    }
    calls_made_ += streams;
    EXPECT_TRUE(within(10s, [&] { return interop->cancellations_observed() == streams * round; }))
        << interop->cancellations_observed();
    if (round == 1) mark_baseline();  // steady state after one round
  }
  // What each caller was told is what curfew counted.
  settle();  // every call reported (a report follows the caller's status)
  EXPECT_EQ(curfew_->sum("curfew_requests_total",
                         {{"route", "duplex"}, {"grpc_code", "DEADLINE_EXCEEDED"}}),
            3 * streams);
  EXPECT_EQ(curfew_->sum("curfew_requests_total",
                         {{"route", "silent"}, {"grpc_code", "DEADLINE_EXCEEDED"}}),
            3 * 3 * streams);
  // Nearly every one is cancelled upstream by the deadline; on a slow (sanitizer) build the
  // upstream's own answer can win the race with the cancellation for the odd call, which is then
  // no cancellation. The status each caller got is still counted exactly (above).
  const double deadline_cancels =
      curfew_->sum("curfew_cancellations_total", {{"route", "duplex"}, {"cause", "deadline"}});
  EXPECT_LE(deadline_cancels, 3 * streams);
  EXPECT_GE(deadline_cancels, 3 * streams - (3 * streams) / 10);
  expect_accounted(calls_made_);
  expect_memory_back();
  // Every connection the silent callers opened is gone again.
  int fds = 0;
  EXPECT_TRUE(
      within(10s, [&] { return (fds = curfew_->process().open_fds()) <= baseline_fds + 4; }))
      << fds << " open, " << baseline_fds << " at the start";
}

TEST_F(FaultTest, BurstWithHalfTheCallersCancellingAtRandomPoints) {
  start(route("burst", kSlow, "healthy", ", timeout: 10s"), "");
  warm_up();
  const int n = 400 / kScale;
  std::mt19937 random(20240611);
  int ok_total = 0, cancelled_total = 0;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int started_before = healthy_->calls_started();
    const int completed_before = healthy_->slow_calls_completed();
    const int cancelled_before = healthy_->slow_calls_cancelled();
    std::vector<BurstCall> calls(n);
    std::bernoulli_distribution coin(0.5);
    std::uniform_int_distribution<int> when(0, 400);
    int cancelling = 0;
    for (auto& c : calls) {
      // 2 s: far beyond the latest cancellation (400 ms), so that one propagating slowly through
      // a loaded machine (the backend polls 400 handlers for cancellation) is still in time: an
      // upstream call of a cancelled caller that completes means a cancellation was lost.
      c.request.set_delay_ms(2000);
      if (coin(random)) {
        c.cancel_after = std::chrono::milliseconds(when(random));
        ++cancelling;
      }
    }
    ASSERT_TRUE(run_burst(*stub_, calls, 60s));
    int ok = 0, cancelled = 0;
    for (const BurstCall& c : calls) {
      if (c.cancel_after) {
        EXPECT_EQ(c.status.error_code(), grpc::StatusCode::CANCELLED) << c.status.error_message();
        cancelled += c.status.error_code() == grpc::StatusCode::CANCELLED;
      } else {
        EXPECT_TRUE(c.status.ok()) << c.status.error_message();
        ok += c.status.ok();
      }
    }
    EXPECT_EQ(cancelled, cancelling);
    ok_total += ok;
    cancelled_total += cancelled;
    // Upstream: the callers that stayed got their full answer; every upstream call of a
    // cancelled caller was cancelled (none ran to completion).
    EXPECT_TRUE(
        within(10s, [&] { return healthy_->slow_calls_completed() - completed_before == ok; }))
        << "completed " << healthy_->slow_calls_completed() - completed_before << ", ok " << ok
        << ", OK counted by curfew "
        << curfew_->sum("curfew_requests_total", {{"route", "burst"}, {"grpc_code", "OK"}})
        << " of " << ok_total;
    EXPECT_TRUE(within(10s,
                       [&] {
                         return healthy_->slow_calls_cancelled() - cancelled_before ==
                                healthy_->calls_started() - started_before - ok;
                       }))
        << "started " << healthy_->calls_started() - started_before << ", completed "
        << healthy_->slow_calls_completed() - completed_before << ", cancelled "
        << healthy_->slow_calls_cancelled() - cancelled_before;
    // Metrics: every OK exactly; every cancellation that reached curfew (a caller cancelling in
    // its first microseconds may be gone before its call reached curfew at all).
    EXPECT_TRUE(curfew_->wait_sum("curfew_inflight_requests", {}, 0));
    EXPECT_EQ(curfew_->sum("curfew_requests_total", {{"route", "burst"}, {"grpc_code", "OK"}}),
              ok_total);
    const double counted_cancelled =
        curfew_->sum("curfew_requests_total", {{"route", "burst"}, {"grpc_code", "CANCELLED"}});
    EXPECT_LE(counted_cancelled, cancelled_total);
    EXPECT_GE(counted_cancelled,
              cancelled_total - (round * n / 10));  // nearly all of them reach curfew
    EXPECT_EQ(curfew_->sum("curfew_requests_total", {{"route", "burst"}}),
              ok_total + counted_cancelled);
    EXPECT_EQ(curfew_->sum("curfew_cancellations_total", {{"route", "burst"}, {"cause", "caller"}}),
              counted_cancelled);
    if (round == 1) mark_baseline();  // steady state after one round
  }
  calls_made_ += static_cast<int>(curfew_->sum("curfew_requests_total", {{"route", "burst"}}));
  expect_accounted(calls_made_);
  expect_memory_back();
}

TEST_F(FaultTest, DeadlineStormEveryCallTimesOut) {
  start(route("storm", kSlow, "healthy", ", timeout: 150ms, max_timeout: 150ms"), "");
  warm_up();
  const int n = 300 / kScale;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int started_before = healthy_->calls_started();
    const int cancelled_before = healthy_->slow_calls_cancelled();
    std::vector<BurstCall> calls(n);
    for (size_t i = 0; i < calls.size(); ++i) {
      calls[i].request.set_delay_ms(10'000);
      if (i % 2) calls[i].deadline = 5s;  // capped to 150 ms by the route's max_timeout
    }
    ASSERT_TRUE(run_burst(*stub_, calls, 60s));
    // Every call ends DEADLINE_EXCEEDED. Nearly always curfew says so itself (naming the route);
    // on a starved machine the upstream's own clock can run out first, by more than curfew's
    // slack, and its "Deadline Exceeded" is then passed through as the upstream's answer.
    int named = 0;
    for (const BurstCall& c : calls) {
      EXPECT_EQ(c.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
          << c.status.error_message();
      if (c.status.error_message().find("route 'storm'") != std::string::npos) ++named;
      EXPECT_LT(c.took, 5s);
    }
    EXPECT_GE(named, n / 2) << "curfew named its route in only " << named << " of " << n;
    // Every upstream call was cancelled at the deadline; none ran its 10 s.
    EXPECT_TRUE(within(10s, [&] {
      return healthy_->slow_calls_cancelled() - cancelled_before ==
             healthy_->calls_started() - started_before;
    }));
    EXPECT_TRUE(curfew_->wait_sum("curfew_timeouts_total", {{"route", "storm"}}, n * round));
    EXPECT_EQ(curfew_->sum("curfew_requests_total",
                           {{"route", "storm"}, {"grpc_code", "DEADLINE_EXCEEDED"}}),
              n * round);
    if (round == 1) mark_baseline();  // steady state after one round
  }
  EXPECT_EQ(healthy_->slow_calls_completed(), 0);
  calls_made_ += 3 * n;
  expect_accounted(calls_made_);
  expect_memory_back();
}

}  // namespace
}  // namespace curfew::testing
