// curfew-soak: mixed traffic against the real curfew binary for a given time, with reloads every
// few seconds, then exact accounting, memory and file descriptor checks, and a clean drain.
//
//   curfew-soak --curfew PATH [--seconds 25] [--callers 12] [--reload-every 3] [--seed N]
//
// The traffic (weights per call, each caller thread picking at random):
//   30%  caller cancels: Slow (3 s) on route "slow", cancelled at a random point 0-150 ms after
//        the upstream received it (so the call certainly reached curfew: accounting stays exact)
//   20%  deadline hits: Slow (3 s) on route "deadline" (timeout 100 ms / 150 ms, alternating on
//        reloads): DEADLINE_EXCEEDED, upstream call cancelled
//   10%  fan-out failures: Fail(OK) on route "scatter-fail", fan-out `all` to a live upstream and
//        a closed port: UNAVAILABLE
//   10%  fan-out successes: Echo on route "scatter", fan-out `all` to two live upstreams
//    5%  hedged calls: Slow (0-40 ms) on route "hedge", hedge after 20 ms / 30 ms
//    5%  errors passed through: Fail(NOT_FOUND) on route "fail"
//   20%  plain calls: Echo on route "echo"
// Reloads: every --reload-every seconds the config file is rewritten (the alternate timeouts);
// odd ones are announced with SIGHUP, even ones left to curfew's file watch.
//
// Checks (any failure: exit 1, every failure printed):
//   - every caller got the status its class must get;
//   - exact accounting: curfew_requests_total by route and code equals what the callers got,
//     curfew_timeouts_total / curfew_cancellations_total match, nothing left in flight (a deadline
//     hit the upstream enforced a little early on a starved machine counts as an upstream timeout:
//     allowed for at most 5% of them);
//   - every reload applied (none refused);
//   - no growth: VmRSS and open file descriptors of curfew sampled every second; the last fifth
//     of the run may not exceed the second fifth by more than a generous slack, and after the
//     traffic stops memory is back within that slack;
//   - SIGTERM: curfew drains and exits 0 (under ASan that includes LeakSanitizer's verdict) and
//     its log holds no sanitizer report.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "curfew_binary.h"
#include "curfew_process.h"  // free_port, TempDir
#include "fault_peers.h"     // ClosedPort

#include "config/status_codes.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- the upstreams -----------------------------------------------------------------------------

class SoakBackend final : public demo::Demo::Service {
 public:
  explicit SoakBackend(std::string name) : name_(std::move(name)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~SoakBackend() override { server_->Shutdown(std::chrono::system_clock::now() + 2s); }
  int port() const { return port_; }
  // Slow calls of 1 s or more that ran to the end (those of cancelled or timed-out callers).
  int long_completed() const { return long_completed_; }
  int slow_cancelled() const { return slow_cancelled_; }

  // Waits (at most `limit`) until a Slow call whose message is `id` has arrived.
  bool wait_arrival(const std::string& id, std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    const bool seen = cv_.wait_for(lock, limit, [&] { return arrived_.count(id) > 0; });
    arrived_.erase(id);
    return seen;
  }

  grpc::Status Echo(grpc::ServerContext*, const demo::EchoRequest* request,
                    demo::EchoReply* reply) override {
    reply->set_message(request->message());
    reply->add_parts(name_);
    return grpc::Status::OK;
  }
  grpc::Status Fail(grpc::ServerContext*, const demo::FailRequest* request,
                    demo::EchoReply*) override {
    return grpc::Status(static_cast<grpc::StatusCode>(request->code()), request->message());
  }
  grpc::Status Slow(grpc::ServerContext* ctx, const demo::SlowRequest* request,
                    demo::EchoReply* reply) override {
    if (!request->message().empty()) {
      std::lock_guard lock(mu_);
      arrived_.insert(request->message());
      cv_.notify_all();
    }
    const auto until = Clock::now() + std::chrono::milliseconds(request->delay_ms());
    while (Clock::now() < until) {
      if (ctx->IsCancelled()) {
        ++slow_cancelled_;
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      std::this_thread::sleep_for(2ms);
    }
    if (request->delay_ms() >= 1000) ++long_completed_;
    reply->add_parts(name_);
    return grpc::Status::OK;
  }

 private:
  std::string name_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_set<std::string> arrived_;
  std::atomic<int> long_completed_{0}, slow_cancelled_{0};
};

// ---- configuration --------------------------------------------------------------------------

struct Ports {
  int main, deadline, fanout, a, b, dead;
};

std::string config_text(const Ports& p, int version) {
  const std::string deadline = version % 2 ? "150ms" : "100ms";
  const std::string hedge = version % 2 ? "30ms" : "20ms";
  auto addr = [](int port) { return "127.0.0.1:" + std::to_string(port); };
  return "# curfew-soak, version " + std::to_string(version) +
         "\n"
         "admin: {address: 127.0.0.1:0}\n"
         "drain_timeout: 5s\n"
         "workers: 2\n"
         "listeners:\n"
         "  - name: main\n"
         "    address: " +
         addr(p.main) +
         "\n"
         "    default_timeout: 10s\n"
         "    limits: {max_concurrent_calls: 5000}\n"
         "    routes:\n"
         "      - {name: echo, match: {method: /curfew.demo.Demo/Echo}, upstream: a}\n"
         "      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: a}\n"
         "      - {name: fail, match: {method: /curfew.demo.Demo/Fail}, upstream: a}\n"
         "  - name: deadline\n"
         "    address: " +
         addr(p.deadline) +
         "\n"
         "    routes:\n"
         "      - {name: deadline, match: {prefix: /}, upstream: a, timeout: " +
         deadline +
         "}\n"
         "  - name: fanout\n"
         "    address: " +
         addr(p.fanout) +
         "\n"
         "    default_timeout: 5s\n"
         "    routes:\n"
         "      - {name: scatter, match: {method: /curfew.demo.Demo/Echo}, fanout: {mode: all, "
         "upstreams: [a, b]}}\n"
         "      - {name: scatter-fail, match: {method: /curfew.demo.Demo/Fail}, fanout: {mode: "
         "all, upstreams: [a, dead]}}\n"
         "      - {name: hedge, match: {method: /curfew.demo.Demo/Slow}, fanout: {mode: hedge, "
         "upstreams: [a, b], delay: " +
         hedge +
         "}}\n"
         "upstreams:\n"
         "  - {name: a, endpoints: [" +
         addr(p.a) +
         "]}\n"
         "  - {name: b, endpoints: [" +
         addr(p.b) +
         "]}\n"
         "  - {name: dead, endpoints: [" +
         addr(p.dead) + "], connect_timeout: 200ms}\n";
}

// ---- traffic --------------------------------------------------------------------------------

enum Class { kCancel, kDeadline, kFanoutFail, kFanoutOk, kHedge, kPassthrough, kEcho, kClasses };
constexpr int kWeights[kClasses] = {30, 20, 10, 10, 5, 5, 20};
constexpr const char* kRoute[kClasses] = {"slow",  "deadline", "scatter-fail", "scatter",
                                          "hedge", "fail",     "echo"};
constexpr grpc::StatusCode kExpected[kClasses] = {
    grpc::StatusCode::CANCELLED,   grpc::StatusCode::DEADLINE_EXCEEDED,
    grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::OK,
    grpc::StatusCode::OK,          grpc::StatusCode::NOT_FOUND,
    grpc::StatusCode::OK};

// What the callers saw: calls by route and code.
struct Tally {
  std::mutex mu;
  std::map<std::pair<std::string, int>, long> by_route_code;
  std::vector<std::string> failures;
  long total = 0;
  std::atomic<long> upstream_deadlines{0};  // DEADLINE_EXCEEDED on "deadline" from the upstream
  void add(const std::string& route, grpc::StatusCode code) {
    std::lock_guard lock(mu);
    ++by_route_code[{route, static_cast<int>(code)}];
    ++total;
  }
  void fail(std::string what) {
    std::lock_guard lock(mu);
    if (failures.size() < 50) failures.push_back(std::move(what));
  }
};

const char* code_name(int code) {
  return code >= 0 && code <= 16 ? config::kStatusCodeNames[code] : "?";
}

struct Stubs {
  std::unique_ptr<demo::Demo::Stub> main, deadline, fanout;
};

void caller(int index, const Stubs& stubs, SoakBackend& a, Tally& tally,
            const std::atomic<bool>& stop, unsigned seed) {
  std::mt19937 random(seed + index);
  std::discrete_distribution<int> pick(std::begin(kWeights), std::end(kWeights));
  long n = 0;
  while (!stop.load()) {
    const Class c = static_cast<Class>(pick(random));
    grpc::ClientContext ctx;
    demo::EchoReply reply;
    grpc::Status status;
    switch (c) {
      case kCancel: {
        // Async, so this thread can cancel it once the upstream has it.
        const std::string id = "c:" + std::to_string(index) + ":" + std::to_string(n++);
        demo::SlowRequest request;
        request.set_message(id);
        request.set_delay_ms(3000);
        grpc::CompletionQueue cq;
        auto rpc = stubs.main->PrepareAsyncSlow(&ctx, request, &cq);
        rpc->StartCall();
        rpc->Finish(&reply, &status, nullptr);
        if (!a.wait_arrival(id, 10s))
          tally.fail("a cancelled call never reached the upstream: " + id);
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 150)(random)));
        ctx.TryCancel();
        void* tag;
        bool ok;
        cq.Next(&tag, &ok);
        cq.Shutdown();
        while (cq.Next(&tag, &ok)) {
        }
        break;
      }
      case kDeadline: {
        demo::SlowRequest request;
        request.set_delay_ms(3000);
        status = stubs.deadline->Slow(&ctx, request, &reply);
        // Normally curfew's own answer, naming the route. On a starved machine the upstream can
        // enforce the propagated deadline noticeably early (its clock reading for the arrival is
        // stale) and curfew passes the upstream's DEADLINE_EXCEEDED on: counted apart.
        if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
            status.error_message().find("route 'deadline'") == std::string::npos) {
          ++tally.upstream_deadlines;
        }
        break;
      }
      case kFanoutFail: {
        demo::FailRequest request;
        status = stubs.fanout->Fail(&ctx, request, &reply);
        break;
      }
      case kFanoutOk: {
        demo::EchoRequest request;
        request.set_message("x");
        status = stubs.fanout->Echo(&ctx, request, &reply);
        if (status.ok() && reply.parts_size() != 2)
          tally.fail("fan-out reply not merged from both upstreams");
        break;
      }
      case kHedge: {
        demo::SlowRequest request;
        request.set_delay_ms(std::uniform_int_distribution<int>(0, 40)(random));
        status = stubs.fanout->Slow(&ctx, request, &reply);
        break;
      }
      case kPassthrough: {
        demo::FailRequest request;
        request.set_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
        request.set_message("not here");
        status = stubs.main->Fail(&ctx, request, &reply);
        break;
      }
      case kEcho:
      default: {
        demo::EchoRequest request;
        request.set_message("hello");
        status = stubs.main->Echo(&ctx, request, &reply);
        break;
      }
    }
    tally.add(kRoute[c], status.error_code());
    if (status.error_code() != kExpected[c]) {
      tally.fail(std::string("route ") + kRoute[c] + ": got " + code_name(status.error_code()) +
                 " (" + status.error_message() + "), expected " +
                 code_name(static_cast<int>(kExpected[c])));
    }
  }
}

std::shared_ptr<grpc::Channel> channel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

template <class Pred>
bool within_ms(int ms, Pred pred) {
  const auto until = Clock::now() + std::chrono::milliseconds(ms);
  do {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  } while (Clock::now() < until);
  return pred();
}

struct Sample {
  double at;  // fraction of the run
  long rss_kib;
  int fds;
};

int run(const std::string& curfew, int seconds, int callers, int reload_every, unsigned seed) {
  TempDir dir;
  SoakBackend a("a"), b("b");
  ClosedPort dead;
  const Ports ports{free_port(), free_port(), free_port(), a.port(), b.port(), dead.port()};
  int version = 0;
  std::printf("soak: %d s, %d callers, reload every %d s, seed %u, curfew %s\n", seconds, callers,
              reload_every, seed, curfew.c_str());

  CurfewBinary binary(dir.path(), config_text(ports, version), {}, curfew);
  if (!binary.ok()) {
    std::printf("FAIL: curfew did not start:\n%s\n", binary.process().output().c_str());
    return 1;
  }
  Stubs stubs{demo::Demo::NewStub(channel(ports.main)),
              demo::Demo::NewStub(channel(ports.deadline)),
              demo::Demo::NewStub(channel(ports.fanout))};
  Tally tally;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] { caller(i, stubs, a, tally, stop, seed); });
  }

  std::vector<Sample> samples;
  int reloads = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  auto next_reload = start + std::chrono::seconds(reload_every);
  while (Clock::now() < end) {
    std::this_thread::sleep_until(std::min(end, Clock::now() + 1s));
    const double at = std::chrono::duration<double>(Clock::now() - start).count() / seconds;
    samples.push_back({at, binary.process().rss_kib(), binary.process().open_fds()});
    if (!binary.process().running()) break;
    if (Clock::now() >= next_reload && Clock::now() < end) {
      ++version;
      ++reloads;
      // Odd reloads by SIGHUP, even ones by the file watch alone.
      if (reloads % 2) {
        binary.reload(config_text(ports, version));
      } else {
        const auto path = binary.config_path();
        std::ofstream(path.string() + ".tmp") << config_text(ports, version);
        std::filesystem::rename(path.string() + ".tmp", path);
      }
      next_reload += std::chrono::seconds(reload_every);
    }
  }
  stop = true;
  for (auto& t : threads) t.join();

  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += !ok;
  };
  check(binary.process().running(), "curfew stayed up");
  {
    std::lock_guard lock(tally.mu);
    for (const auto& f : tally.failures) std::printf("  caller: %s\n", f.c_str());
    check(tally.failures.empty(),
          "every caller got the status of its class (" + std::to_string(tally.total) + " calls)");
  }

  // Accounting: nothing in flight, then every (route, code) as the callers saw it.
  check(binary.wait_sum("curfew_inflight_requests", {}, 0, 30s), "nothing left in flight");
  auto scrape = binary.scrape();
  check(scrape.has_value(), "/metrics answers");
  if (scrape) {
    const double counted = scrape->sum("curfew_requests_total");
    check(counted == tally.total, "curfew_requests_total = calls made (" +
                                      std::to_string(static_cast<long>(counted)) + " vs " +
                                      std::to_string(tally.total) + ")");
    std::map<std::string, long> per_route;
    for (const auto& [key, n] : tally.by_route_code) {
      const auto& [route, code] = key;
      per_route[route] += n;
      const double seen =
          scrape->sum("curfew_requests_total", {{"route", route}, {"grpc_code", code_name(code)}});
      check(seen == n, "route " + route + " " + code_name(code) + ": " + std::to_string(n) +
                           " calls, counted " + std::to_string(static_cast<long>(seen)));
    }
    for (const auto& [route, n] : per_route) {
      const double seen = scrape->sum("curfew_requests_total", {{"route", route}});
      if (seen != n) check(false, "route " + route + ": counted codes nobody got");
    }
    const long deadlines =
        tally.by_route_code[{"deadline", static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED)}];
    const long cancels =
        tally.by_route_code[{"slow", static_cast<int>(grpc::StatusCode::CANCELLED)}];
    // Every deadline hit is counted as a timeout; its cause is the route's, except the few the
    // upstream enforced early (see the caller), counted as the upstream's.
    const double by_route =
        scrape->sum("curfew_timeouts_total", {{"route", "deadline"}, {"cause", "route"}});
    const double by_upstream =
        scrape->sum("curfew_timeouts_total", {{"route", "deadline"}, {"cause", "upstream"}});
    check(by_route + by_upstream == deadlines && by_upstream == tally.upstream_deadlines,
          "curfew_timeouts_total{route=deadline} = " + std::to_string(deadlines) +
              " (cause route " + std::to_string(static_cast<long>(by_route)) + ", upstream " +
              std::to_string(static_cast<long>(by_upstream)) + ")");
    check(by_upstream <= deadlines / 20,
          "at most 5% of deadline hits enforced early by the upstream");
    check(scrape->sum("curfew_cancellations_total", {{"route", "slow"}, {"cause", "caller"}}) ==
              cancels,
          "curfew_cancellations_total{route=slow,cause=caller} = " + std::to_string(cancels));
    check(scrape->sum("curfew_config_reloads_total", {{"result", "error"}}) == 0,
          "no reload refused");
    check(scrape->sum("curfew_config_reloads_total", {{"result", "ok"}}) >= reloads,
          "every reload applied (" + std::to_string(reloads) + " made)");
  }
  // Upstream work was cancelled: no Slow of a cancelled or timed-out call ran its 3 s.
  // Upstream work was cancelled: no 3 s Slow (a cancelled or timed-out caller's) ran to its end.
  std::this_thread::sleep_for(500ms);
  check(a.long_completed() + b.long_completed() == 0,
        "no upstream call of a cancelled or timed-out caller ran to completion (" +
            std::to_string(a.long_completed() + b.long_completed()) + " did; " +
            std::to_string(a.slow_cancelled()) + " saw their cancellation)");

  // Memory and file descriptors: the last fifth of the run against the second fifth.
  long early_rss = 0, late_rss = 0;
  int early_fds = 0, late_fds = 0;
  for (const Sample& s : samples) {
    if (s.at >= 0.2 && s.at < 0.4) {
      early_rss = std::max(early_rss, s.rss_kib);
      early_fds = std::max(early_fds, s.fds);
    }
    if (s.at >= 0.8) {
      late_rss = std::max(late_rss, s.rss_kib);
      late_fds = std::max(late_fds, s.fds);
    }
  }
  const long slack = std::max(32L * 1024, early_rss / 5);
  check(early_rss > 0 && late_rss > 0,
        "RSS sampled (" + std::to_string(samples.size()) + " samples)");
  check(late_rss <= early_rss + slack, "no RSS growth: " + std::to_string(early_rss / 1024) +
                                           " MiB -> " + std::to_string(late_rss / 1024) +
                                           " MiB (slack " + std::to_string(slack / 1024) + " MiB)");
  check(late_fds <= early_fds + 8,
        "no fd growth: " + std::to_string(early_fds) + " -> " + std::to_string(late_fds));
  long idle_rss = binary.process().rss_kib();
  within_ms(5000, [&] { return (idle_rss = binary.process().rss_kib()) <= early_rss + slack; });
  check(idle_rss <= early_rss + slack,
        "RSS after the traffic: " + std::to_string(idle_rss / 1024) + " MiB");

  // Clean drain, no sanitizer report.
  stubs = {};
  const auto code = binary.stop(60s);
  check(code == 0, "SIGTERM: drained and exited 0 (got " +
                       (code ? std::to_string(*code) : std::string("no exit")) + ")");
  const std::string reports = sanitizer_reports(binary.process().output());
  check(reports.empty(),
        "no sanitizer report in curfew's log" + (reports.empty() ? "" : ":\n" + reports));
  if (failures) {
    std::printf("--- curfew log (last 4000 bytes) ---\n%s\n",
                [&] {
                  const std::string log = binary.process().output();
                  return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
                }()
                    .c_str());
  }
  std::printf("soak: %s (%d failed checks)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}

}  // namespace
}  // namespace curfew::testing

int main(int argc, char** argv) {
  std::string curfew;
  int seconds = 25, callers = 12, reload_every = 3;
  unsigned seed = static_cast<unsigned>(std::random_device{}());
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--curfew")
      curfew = next();
    else if (arg == "--seconds")
      seconds = std::atoi(next().c_str());
    else if (arg == "--callers")
      callers = std::atoi(next().c_str());
    else if (arg == "--reload-every")
      reload_every = std::atoi(next().c_str());
    else if (arg == "--seed")
      seed = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else {
      std::fprintf(stderr,
                   "usage: curfew-soak --curfew PATH [--seconds N] [--callers N] "
                   "[--reload-every N] [--seed N]\n");
      return 2;
    }
  }
  if (curfew.empty() || seconds <= 0 || callers <= 0 || reload_every <= 0) {
    std::fprintf(stderr, "curfew-soak: --curfew PATH is required; numbers must be positive\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  return curfew::testing::run(curfew, seconds, callers, reload_every, seed);
}
