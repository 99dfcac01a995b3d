// Reloads keep upstream connections, seen from the upstreams' side (issue 18): the real curfew
// binary, its config file rewritten and reloaded (SIGHUP, or the file's change alone) while idle
// and under load; three grpc++ "pods" behind one DNS name served by dnsmasq (127.0.0.2-4) and a
// fourth pod alone behind another upstream (127.0.0.5). What is counted is the upstreams' own
// view: the connections each pod's calls came on (the peers grpc++ reports) and the TCP
// connections the kernel shows each pod's server holding (/proc/net/tcp). A reload that keeps an
// upstream's definition must leave both unchanged; one that changes it must make the pod see a
// new connection and the old one close, so the test can tell.
//
// Timing: only generous bounds; every loop is bounded in count and time; the binary, dnsmasq and
// the pods are stopped however the test ends.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "curfew_binary.h"
#include "dnsmasq.h"
#include "pods.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

class ReloadConnections : public ::testing::Test {
 protected:
  void SetUp() override {
    pods_ = start_pods(3, 2);
    ASSERT_EQ(pods_.size(), 3u) << "no port free on 127.0.0.2-4";
    solo_ = Pod::start("127.0.0.5", 0);
    ASSERT_NE(solo_, nullptr);
    dnsmasq_.emplace("127.0.0.2 pods.test\n127.0.0.3 pods.test\n127.0.0.4 pods.test\n");
    ASSERT_TRUE(dnsmasq_->ready()) << dnsmasq_->log();
    dir_ = std::filesystem::temp_directory_path() /
           ("curfew-reload-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override {
    if (HasFailure() && curfew_) std::cerr << "curfew's log:\n" << curfew_->process().output();
    curfew_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The configuration: listener "pods" routes to the three pods (round robin: every pod gets
  // calls, so each has its connection), listener "solo" to the fourth. `timeout` changes a
  // route and nothing else; `solo_endpoint` is the solo upstream's one endpoint string.
  std::string config(const std::string& timeout, const std::string& solo_endpoint = "") const {
    const std::string solo =
        solo_endpoint.empty() ? "127.0.0.5:" + std::to_string(solo_->port()) : solo_endpoint;
    return "admin: {address: 127.0.0.1:0}\n"
           "workers: 1\n"
           "listeners:\n"
           "  - name: pods\n"
           "    address: 127.0.0.1:0\n"
           "    routes:\n"
           "      - {name: pods, match: {prefix: /}, upstream: pods, timeout: " +
           timeout +
           "}\n"
           "  - name: solo\n"
           "    address: 127.0.0.1:0\n"
           "    routes:\n"
           "      - {name: solo, match: {prefix: /}, upstream: solo, timeout: 5s}\n"
           "upstreams:\n"
           "  - {name: pods, endpoints: [\"dns://" +
           dnsmasq_->server() + "/pods.test:" + std::to_string(pods_[0]->port()) +
           "\"], balancer: round_robin, resolve_interval: 200ms}\n"
           "  - {name: solo, endpoints: [\"" +
           solo + "\"]}\n";
  }

  void start_curfew(const std::string& text) {
    curfew_.emplace(dir_, text);
    ASSERT_TRUE(curfew_->ok()) << curfew_->process().output();
    // The listeners' ports, from the log ("listener 'pods' ... port N").
    for (const char* name : {"pods", "solo"}) {
      const std::string out = curfew_->process().output();
      std::smatch m;
      ASSERT_TRUE(std::regex_search(
          out, m, std::regex(std::string("listener '") + name + "'[^\\n]*port (\\d+)")))
          << out;
      channels_.push_back(
          grpc::CreateChannel("127.0.0.1:" + m[1].str(), grpc::InsecureChannelCredentials()));
    }
  }

  grpc::Status echo(size_t listener) { return echo_on(channels_[listener]); }

  // What the pods see: per pod (the three, then solo) the peers of its calls and the
  // connections its server holds.
  struct Seen {
    std::vector<std::set<std::string>> peers;
    std::vector<std::set<std::string>> established;
  };
  Seen seen() const {
    Seen s;
    for (const Pod* pod : all_pods()) {
      s.peers.push_back(pod->peers());
      s.established.push_back(established_connections(pod->host(), pod->port()));
    }
    return s;
  }
  std::vector<const Pod*> all_pods() const {
    return {pods_[0].get(), pods_[1].get(), pods_[2].get(), solo_.get()};
  }

  // Rewrites the config file in one step (a ConfigMap's update); with `signal`, SIGHUP too. Waits
  // (bounded) until curfew counts one more applied reload.
  bool reload(const std::string& text, bool signal) {
    const double before = curfew_->sum("curfew_config_reloads_total", {{"result", "ok"}});
    if (signal) {
      curfew_->reload(text);
    } else {
      const auto path = curfew_->config_path();
      std::ofstream(path.string() + ".tmp") << text;
      std::filesystem::rename(path.string() + ".tmp", path);
    }
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
      if (curfew_->sum("curfew_config_reloads_total", {{"result", "ok"}}) > before) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  // Callers on both listeners until stopped (or 60 s), counting outcomes.
  struct Load {
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::mutex mu;
    std::string first_failure;
    std::vector<std::thread> threads;
    ~Load() { join(); }
    void join() {
      stop = true;
      for (std::thread& t : threads)
        if (t.joinable()) t.join();
    }
  };
  void run_load(Load& load, int callers_per_listener) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    for (size_t listener = 0; listener < 2; ++listener) {
      for (int i = 0; i < callers_per_listener; ++i) {
        load.threads.emplace_back([this, &load, listener, until] {
          while (!load.stop.load() && std::chrono::steady_clock::now() < until) {
            const grpc::Status s = echo(listener);
            if (s.ok()) {
              ++load.ok;
              continue;
            }
            ++load.failed;
            std::lock_guard lock(load.mu);
            if (load.first_failure.empty())
              load.first_failure = std::to_string(s.error_code()) + " " + s.error_message();
          }
        });
      }
    }
  }

  std::vector<std::unique_ptr<Pod>> pods_;
  std::unique_ptr<Pod> solo_;
  std::optional<Dnsmasq> dnsmasq_;
  std::filesystem::path dir_;
  std::optional<CurfewBinary> curfew_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

TEST_F(ReloadConnections, ReloadsThatKeepTheUpstreamsOpenNoConnectionIdleOrUnderLoad) {
  ASSERT_NO_FATAL_FAILURE(start_curfew(config("5s")));
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(echo(0).ok());
    ASSERT_TRUE(echo(1).ok());
  }
  const Seen first = seen();
  for (size_t i = 0; i < first.peers.size(); ++i) {
    EXPECT_EQ(first.peers[i].size(), 1u) << all_pods()[i]->host() << ": one connection per pod";
    EXPECT_EQ(first.established[i].size(), 1u) << all_pods()[i]->host();
  }

  // Idle: three reloads, each changing the route's timeout, then calls again.
  for (const char* timeout : {"6s", "7s", "5s"}) ASSERT_TRUE(reload(config(timeout), true));
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(echo(0).ok());
    ASSERT_TRUE(echo(1).ok());
  }
  const Seen idle = seen();
  EXPECT_EQ(idle.peers, first.peers) << "a pod saw calls on a new connection after idle reloads";
  EXPECT_EQ(idle.established, first.established) << "a pod accepted or lost a connection";

  // Under load: six reloads, by SIGHUP and by the file's change alone, while callers call.
  Load load;
  run_load(load, 3);
  for (int reload_n = 0; reload_n < 6; ++reload_n) {
    const int before = load.ok.load();
    ASSERT_TRUE(reload(config(reload_n % 2 == 0 ? "8s" : "5s"), reload_n % 3 != 2));
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (load.ok.load() < before + 100 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(10ms);
    ASSERT_GE(load.ok.load(), before + 100) << "calls stalled after a reload";
  }
  load.join();
  EXPECT_EQ(load.failed.load(), 0) << load.first_failure;
  EXPECT_GE(load.ok.load(), 600);
  const Seen loaded = seen();
  EXPECT_EQ(loaded.peers, first.peers) << "a pod saw calls on a new connection under load";
  EXPECT_EQ(loaded.established, first.established) << "a pod accepted or lost a connection";
  for (const Pod* pod : all_pods()) EXPECT_GT(pod->calls.load(), 30) << pod->host();
  std::cout << "reloads: 3 idle, 6 under load (" << load.ok.load()
            << " calls, none failed); connections the four pods hold: "
            << loaded.established[0].size() + loaded.established[1].size() +
                   loaded.established[2].size() + loaded.established[3].size()
            << ", the same as before the first reload\n";
}

TEST_F(ReloadConnections, AReloadThatChangesAnUpstreamReconnectsItAloneAndClosesTheOld) {
  ASSERT_NO_FATAL_FAILURE(start_curfew(config("5s")));
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(echo(0).ok());
    ASSERT_TRUE(echo(1).ok());
  }
  const Seen first = seen();

  // The solo upstream's endpoint, written another way (the same address): a new definition.
  ASSERT_TRUE(reload(config("5s", "ipv4:127.0.0.5:" + std::to_string(solo_->port())), true));
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(echo(0).ok());
    ASSERT_TRUE(echo(1).ok());
  }
  const Seen after = seen();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(after.peers[i], first.peers[i]) << "the unchanged upstream reconnected";
    EXPECT_EQ(after.established[i], first.established[i]);
  }
  EXPECT_EQ(after.peers[3].size(), 2u) << "the changed upstream's calls came on a new connection";
  // The old connection drains and closes: the pod's server holds only the new one.
  const auto until = std::chrono::steady_clock::now() + 10s;
  std::set<std::string> held;
  do {
    held = established_connections(solo_->host(), solo_->port());
    if (held.size() == 1 && held != first.established[3]) break;
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < until);
  EXPECT_EQ(held.size(), 1u) << "the replaced upstream's old connection stayed open";
  EXPECT_NE(held, first.established[3]);
}

}  // namespace
}  // namespace curfew::testing
