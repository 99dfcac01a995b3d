// One hostile connection against the real curfew binary (`workers: 1`, as an attacker would
// hope): for each attack of curfew-h2-attack (tests/attack/h2_attack_main.cc, frames by hand),
// legit grpc++ callers on their own connections measure their throughput alone and while the
// attacker attacks again and again (it reconnects each time it is shed). Each test checks that
// the attacker's connection is closed soon after it crosses a limit, that the callers keep at
// least half of their throughput (a generous bound: bench/run.sh attacks measures the real
// figure against nginx and HAProxy), that the closure is counted under its reason and logged
// with the peer, and (TearDown) that curfew is still up, serves a fresh caller, drains and
// exits 0.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fault_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

struct Attack {
  const char* name;
  std::vector<const char*> reasons;  // curfew_connections_closed_total{side="caller"} reasons
  long close_within_ms;              // from the attack's start to the first connection closed
  const char* extra = "";            // more curfew-h2-attack options
};

std::string attack_name(const ::testing::TestParamInfo<Attack>& info) { return info.param.name; }

class AttackTest : public FaultTest, public ::testing::WithParamInterface<Attack> {
 protected:
  void start_single_worker() {
    const std::string config =
        "admin: {address: 127.0.0.1:0}\n"
        "drain_timeout: 3s\n"
        "workers: 1\n"
        "listeners:\n"
        "  - name: inbound\n"
        "    address: 127.0.0.1:" +
        std::to_string(port_) +
        "\n"
        "    default_timeout: 2s\n"
        "    limits:\n"
        "      max_concurrent_streams_per_connection: 100\n"
        "      connection: {handshake_timeout: 1s, headers_timeout: 1s}\n"
        "    routes:\n"
        "      - {name: echo, match: {prefix: /}, upstream: healthy}\n"
        "upstreams:\n"
        "  - {name: healthy, endpoints: [127.0.0.1:" +
        std::to_string(healthy_->port()) + "]}\n";
    curfew_ = std::make_unique<CurfewBinary>(dir_.path(), config);
    ASSERT_TRUE(curfew_->ok()) << curfew_->process().output();
    stub_ = demo::Demo::NewStub(channel_to_port(port_));
  }

  // Echo calls that succeeded in `window` from kCallers callers, each on its own connection.
  int legit_calls(std::chrono::milliseconds window) {
    std::atomic<int> ok{0};
    parallel(kCallers, [&](int i) {
      auto& stub = *stubs_[static_cast<size_t>(i)];
      const auto until = std::chrono::steady_clock::now() + window;
      for (int n = 0; n < 1000000 && std::chrono::steady_clock::now() < until; ++n) {
        if (echo(stub).ok()) ok.fetch_add(1, std::memory_order_relaxed);
      }
    });
    return ok.load();
  }

  static constexpr int kCallers = 4;
  std::vector<std::unique_ptr<demo::Demo::Stub>> stubs_;
};

TEST_P(AttackTest, TheAttackerIsShedAndOtherCallersKeepTheirThroughput) {
  const Attack& attack = GetParam();
  start_single_worker();
  for (int i = 0; i < kCallers; ++i) stubs_.push_back(demo::Demo::NewStub(channel_to_port(port_)));
  ASSERT_GT(legit_calls(300ms), 0);  // connections up, warm
  const int alone = legit_calls(1500ms);
  ASSERT_GT(alone, 0);

  const std::string out = (dir_.path() / "attack.out").string();
  Child attacker({CURFEW_H2_ATTACK_BINARY, "--port", std::to_string(port_), "--attack",
                  attack.name, "--seconds", "3", "--reconnect", "1", "--streams", "300",
                  "--connections", "20"},
                 out);
  std::this_thread::sleep_for(300ms);  // the attack is on
  const int attacked = legit_calls(1500ms);
  ASSERT_TRUE(within(10s, [&] { return !attacker.running(); })) << "the attacker did not finish";
  const std::string report = attacker.output();

  // The attacker was shed, soon after it crossed a limit, and again after each reconnection.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      report, m, std::regex(R"(closed=(\d+) of=(\d+) goaway=(-?\d+) first_close_ms=(-?\d+))")))
      << report;
  const int closed = std::stoi(m[1]);
  const long first_close_ms = std::stol(m[4]);
  EXPECT_GE(closed, 1) << report;
  EXPECT_GE(first_close_ms, 0) << report;
  EXPECT_LE(first_close_ms, attack.close_within_ms) << report;

  // Other callers kept at least half of their throughput.
  EXPECT_GE(attacked * 2, alone) << "alone " << alone << " calls, under " << attack.name << " "
                                 << attacked << "; attacker: " << report;
  std::printf("[ attack ] %s: legit calls alone %d, attacked %d (%.2fx); %s", attack.name, alone,
              attacked, alone > 0 ? double(attacked) / alone : 0.0, report.c_str());

  // Counted under its reason, and logged with the peer.
  double counted = 0;
  EXPECT_TRUE(within(5s, [&] {
    counted = 0;
    for (const char* reason : attack.reasons) {
      counted += curfew_->sum("curfew_connections_closed_total",
                              {{"side", "caller"}, {"reason", reason}});
    }
    return counted >= 1;
  })) << "no caller connection closed as " << attack.reasons.front();
  EXPECT_NE(curfew_->process().output().find(
                "listener 'inbound': closed the connection from 127.0.0.1:"),
            std::string::npos)
      << curfew_->process().output();
}

INSTANTIATE_TEST_SUITE_P(
    OneConnection, AttackTest,
    ::testing::Values(Attack{"rapid_reset", {"rapid_reset"}, 1000},
                      Attack{"ping_flood", {"control_flood", "flooded"}, 1000},
                      Attack{"settings_flood", {"control_flood", "flooded"}, 1000},
                      Attack{"window_update_flood", {"control_flood", "flooded"}, 1000},
                      Attack{"empty_data_flood", {"control_flood", "flooded"}, 1000},
                      Attack{"continuation_flood", {"flooded"}, 1000},
                      Attack{"hpack_bloat", {"oversized_headers"}, 1000},
                      // Over the stream limit once the limit is known: nghttp2's connection
                      // error; before it is known: refused streams, curfew's rule.
                      Attack{"idle_streams", {"protocol_error", "refused_streams"}, 1000},
                      // headers_timeout 1s: closed between 1 and 2 s after the stall began.
                      Attack{"headers_stall", {"headers_timeout"}, 3000},
                      // handshake_timeout 1s, 20 connections.
                      Attack{"slowloris", {"handshake_timeout"}, 3000}),
    attack_name);

}  // namespace
}  // namespace curfew::testing
