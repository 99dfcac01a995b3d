// curfew-chaos: everything at once against the real curfew binary, then invariants.
//
//   curfew-chaos --curfew PATH [--seconds 60] [--seed N] [--callers 24] [--check-rss]
//   (CURFEW_CHAOS_SECONDS and CURFEW_CHAOS_SEED, when set, win over the flags: CTest passes
//   --seconds, and a caller replaying a failure sets the environment)
//
// Three upstreams in this process and one child process (this binary, --upstream-port P) that is
// SIGKILLed and restarted on its port every few seconds. curfew serves one route per method
// (routes.h) and gets a new random route set every 200-600 ms, by SIGHUP or by the file change
// alone, and every ~10th time an invalid file it must refuse. Meanwhile 24 callers make every
// kind of call with random plans, sizes, deadlines and cancellations (caller.h, judge.h).
//
// Invariants (each violation printed with the seed; exit 1 if any):
//   1  curfew never exits during the run; SIGTERM then makes it exit 0 within drain_timeout+slack
//   2  no sanitizer report, FATAL or crash in curfew's log (nor in the child upstream's)
//   3  every call ended as its route and plan allow (judge.h): allowed code, every message
//      verified and in order, exactly the planned messages on OK; no upstream saw a bad or extra
//      request message, or a call its route does not name
//   4  no call the caller cancelled before half-closing reached an in-process upstream as
//      half-closed; no upstream (the child included) saw a half-close after fewer request
//      messages than the caller sends. A half-close counts once the upstream call then ended
//      uncancelled (upstream.h says why): a forwarded half-close that curfew cancels before the
//      upstream answered goes unseen, never a false alarm
//   5  after the traffic, every upstream call ends (open calls back to 0)
//   6  after the traffic, nothing in flight at curfew (and the fault boundary never used); fds back
//   near their post-warmup
//      baseline; with --check-rss, RSS within max(+64 MiB, 2x) of its warmed-up size (largest
//      RSS in the 10-25% stretch of the run), measured before this test's own scrapes
//   7  curfew_requests_total by code matches what the callers got: exactly for statuses they
//      received, within bounds for those they decided themselves (a cancel, their deadline)
//   R  reloads: curfew applied or refused no more than were announced, refused the invalid ones
//      (at least one), and the last configuration is in force at the end
//   E  endpoint sets: u1 is two replicas listed as addresses (127.0.0.1 and 127.0.0.2), u2 a name
//      whose DNS answer (dnsmasq) changes every 1-3 s among .1, .2 and both; the balancer is
//      drawn on each reload. Every replica served calls, and invariants 3-5 hold across them
//   A  attacks: every few seconds one hostile connection (curfew-h2-attack, a random attack from
//      its menu, reconnecting) hits a second listener; curfew sheds it each time (the attacker saw
//      its connection closed) while invariants 1-7 hold for the callers on the main listener
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "caller.h"
#include "curfew_binary.h"   // Child, sanitizer_reports, measurable_child_env
#include "curfew_process.h"  // free_port, port_open, TempDir
#include "dnsmasq.h"
#include "exposition.h"
#include "judge.h"
#include "routes.h"
#include "upstream.h"

namespace curfew::chaos {
namespace {

using testing::Exposition;
// Child processes (curfew, the killable upstream) that die with this one: testing::Child.
using Process = testing::Child;
using testing::Labels;

// ---- violations --------------------------------------------------------------------------------

class Violations {
 public:
  explicit Violations(uint64_t seed) : seed_(seed) {}
  void add(const std::string& invariant, const std::string& what) {
    std::lock_guard lock(mu_);
    ++count_[invariant];
    if (lines_.size() < 50) {
      lines_.push_back("chaos: seed=" + std::to_string(seed_) + " VIOLATION [" + invariant + "] " +
                       what);
    }
  }
  int total() const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& [k, v] : count_) n += v;
    return n;
  }
  void print() const {
    std::lock_guard lock(mu_);
    for (const auto& l : lines_) std::printf("%s\n", l.c_str());
    int n = 0;
    std::string by;
    for (const auto& [k, v] : count_) {
      n += v;
      by += " " + k + "=" + std::to_string(v);
    }
    if (n > static_cast<int>(lines_.size())) {
      std::printf("chaos: seed=%llu ... %d violations in all (first %zu shown)\n",
                  static_cast<unsigned long long>(seed_), n, lines_.size());
    }
    if (n)
      std::printf("chaos: seed=%llu violations by invariant:%s\n",
                  static_cast<unsigned long long>(seed_), by.c_str());
  }

 private:
  const uint64_t seed_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  std::map<std::string, int> count_;
};

// ---- curfew
// --------------------------------------------------------------------------------------

class Curfew {
 public:
  Curfew(const std::string& binary, const std::filesystem::path& dir, int admin_port)
      : config_(dir / "curfew.yaml"), admin_port_(admin_port) {
    process_ =
        std::make_unique<Process>(std::vector<std::string>{binary, "--config", config_.string()},
                                  dir / "curfew.log", testing::measurable_child_env());
  }
  const std::filesystem::path& config() const { return config_; }
  Process& process() { return *process_; }

  // Waits (bounded) until the admin server answers and curfew says it is ready.
  bool wait_ready(std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until && process_->running()) {
      if (process_->output().find("ready") != std::string::npos && scrape()) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  std::optional<Exposition> scrape() const {
    httplib::Client c("127.0.0.1", admin_port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    auto res = c.Get("/metrics");
    if (!res || res->status != 200) return std::nullopt;
    try {
      return Exposition(res->body);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  double sum(const std::string& name, const Labels& match = {}) const {
    auto e = scrape();
    return e ? e->sum(name, match) : -1;
  }

 private:
  std::filesystem::path config_;
  int admin_port_;
  std::unique_ptr<Process> process_;
};

void write_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  std::ofstream(tmp) << text;
  std::filesystem::rename(tmp, path);
}

template <class Pred>
bool poll(std::chrono::milliseconds limit, Pred pred) {
  const auto until = Clock::now() + limit;
  do {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  } while (Clock::now() < until);
  return pred();
}

// ---- traffic
// -------------------------------------------------------------------------------------

struct Traffic {
  const std::vector<Method>& methods;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<CallRecord> records;  // every finished call
  uint64_t seed;

  Traffic(const std::vector<Method>& m, int listener_port, int n_channels, uint64_t seed_)
      : methods(m), seed(seed_) {
    for (int i = 0; i < n_channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("chaos.channel", i);  // a connection of its own (no shared subchannel)
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
      channels.push_back(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(listener_port),
                                                   grpc::InsecureChannelCredentials(), args));
    }
  }

  // Runs one call on `cq` to its end; a call gRPC never completes (even cancelled) is fatal.
  void call(grpc::GenericStub& stub, grpc::CompletionQueue& cq, CallRecord& rec,
            std::mt19937_64& rng) {
    CallDriver driver(stub, cq, methods[rec.method], rec, rng);
    if (!driver.run()) {
      std::printf("chaos: seed=%llu FATAL: gRPC never completed %s\n",
                  static_cast<unsigned long long>(seed), rec.describe(methods[rec.method]).c_str());
      std::fflush(stdout);
      std::_Exit(1);  // the children die with us (PR_SET_PDEATHSIG)
    }
  }

  void keep(std::vector<CallRecord>& mine) {
    std::lock_guard lock(mu);
    for (auto& r : mine) records.push_back(std::move(r));
    mine.clear();
  }

  // One caller thread: calls one after another until `stop`.
  void caller(int index) {
    std::mt19937_64 rng(mix(seed ^ (0x1000u + index)));
    grpc::GenericStub stub(channels[index % channels.size()]);
    grpc::CompletionQueue cq;
    std::vector<int> weights;
    for (const auto& m : methods) weights.push_back(m.weight);
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    std::vector<CallRecord> mine;
    for (uint64_t n = 1; !stop.load(); ++n) {
      CallRecord rec;
      rec.id = (static_cast<uint64_t>(index + 1) << 40) | n;
      rec.method = pick(rng);
      draw_call(rec, methods[rec.method], rng);
      call(stub, cq, rec, rng);
      mine.push_back(std::move(rec));
    }
    keep(mine);
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }

  // A plain call that should succeed (no cancel, no caller deadline, no delay), on every channel:
  // connections up before the baseline, and a check that the final configuration is in force.
  void simple_call(int method, int channel, uint64_t id) {
    std::mt19937_64 rng(mix(seed ^ id));
    grpc::GenericStub stub(channels[channel]);
    grpc::CompletionQueue cq;
    CallRecord rec;
    rec.id = id;
    rec.method = method;
    rec.plan.kind = static_cast<int>(methods[method].kind);
    rec.plan.req_max = rec.plan.resp_max = 100;
    call(stub, cq, rec, rng);
    std::vector<CallRecord> one{std::move(rec)};
    keep(one);
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }
};

// ---- the run
// -------------------------------------------------------------------------------------

struct Options {
  std::string curfew;
  int seconds = 60;
  uint64_t seed = 0;
  int callers = 24;
  bool check_rss = false;
};

struct ReloadLog {
  int written = 0, invalid = 0, sighup = 0;
  int weight = 0;  // most reloads these writes can cause: a SIGHUP'd write may be seen twice
  int last_version = 0;
};

class Run {
 public:
  explicit Run(const Options& o) : o_(o), v_(o.seed), rng_(o.seed) {}

  int main() {
    std::printf(
        "chaos: seed=%llu seconds=%d callers=%d curfew=%s (replay: CURFEW_CHAOS_SEED=%llu)\n",
        seed(), o_.seconds, o_.callers, o_.curfew.c_str(), seed());
    std::fflush(stdout);
    methods_ = make_methods(rng_);
    if (!start()) return finish_early();
    Traffic traffic(methods_, ports_.listener, 4, o_.seed);
    warm_up(traffic);
    baseline_fds_ = curfew_->process().open_fds();
    baseline_rss_ = curfew_->process().rss_kib();
    std::printf("chaos: seed=%llu baseline after warm-up: %d fds, %ld MiB\n", seed(), baseline_fds_,
                baseline_rss_ / 1024);
    std::vector<std::thread> callers;
    for (int i = 0; i < o_.callers; ++i) callers.emplace_back([&traffic, i] { traffic.caller(i); });
    chaos_loop();
    traffic.stop = true;
    for (auto& t : callers) t.join();
    // Memory now, before this test's own scrapes of /metrics: with a new set of route names on
    // every reload the exposition grows large, and serialising it costs curfew memory that is
    // not the traffic's.
    check_memory();
    ensure_child_up();
    check_after_traffic(traffic);
    return conclude(traffic);
  }

 private:
  unsigned long long seed() const { return static_cast<unsigned long long>(o_.seed); }
  std::string config_text(int version, bool invalid = false) {
    return writer_->text(version, rng_, invalid);
  }

  bool start() {
    ports_.listener = testing::free_port();
    ports_.admin = testing::free_port();
    ports_.exposed = testing::free_port();
    ports_.nowhere = testing::free_port();
    for (int u = 0; u < 3; ++u) {
      // u1 and u2 have a replica on 127.0.0.2, on the same port (free there almost always: a
      // few tries otherwise).
      for (int attempt = 0; attempt < 10; ++attempt) {
        auto primary = std::make_unique<UpstreamServer>(u, 0);
        if (!primary->ok()) return fail_start("in-process upstream did not start");
        std::unique_ptr<UpstreamServer> replica;
        if (u != 0) {
          replica = std::make_unique<UpstreamServer>(u, primary->port(), false, "127.0.0.2",
                                                     primary.get());
          if (!replica->ok()) continue;
        }
        ports_.upstream[u] = primary->port();
        upstreams_.push_back(std::move(primary));
        if (replica) upstreams_.push_back(std::move(replica));
        break;
      }
      if (ports_.upstream[u] == 0) return fail_start("no port free on 127.0.0.1 and 127.0.0.2");
    }
    dns_.emplace(dns_hosts(3));
    if (!dns_->ready()) return fail_start("dnsmasq did not answer:\n" + dns_->log());
    ports_.dns = dns_->port();
    ports_.upstream[kChild] = testing::free_port();
    spawn_child();
    if (!poll(milliseconds(20000), [&] { return testing::port_open(ports_.upstream[kChild]); })) {
      return fail_start("child upstream did not listen:\n" + child_->output());
    }
    writer_ = std::make_unique<ConfigWriter>(ports_, methods_);
    const auto config = dir_.path() / "curfew.yaml";
    write_atomically(config, config_text(0));
    curfew_ = std::make_unique<Curfew>(o_.curfew, dir_.path(), ports_.admin);
    if (!curfew_->wait_ready(std::chrono::seconds(60))) {
      return fail_start("curfew did not start:\n" + tail(curfew_->process().output()));
    }
    return true;
  }

  // u2.test's answer: 127.0.0.1 (1), 127.0.0.2 (2) or both (3).
  static std::string dns_hosts(int which) {
    std::string hosts;
    if (which & 1) hosts += "127.0.0.1 u2.test\n";
    if (which & 2) hosts += "127.0.0.2 u2.test\n";
    return hosts;
  }

  bool fail_start(const std::string& why) {
    v_.add("setup", why);
    return false;
  }

  int finish_early() {
    v_.print();
    std::printf("chaos: seed=%llu FAILED (could not set up the run)\n", seed());
    return 1;
  }

  void spawn_child() {
    child_ = std::make_unique<Process>(
        std::vector<std::string>{self_, "--upstream-port", std::to_string(ports_.upstream[kChild])},
        dir_.path() / "upstream-k.log", std::vector<std::string>{}, /*append=*/true);
  }

  void warm_up(Traffic& traffic) {
    uint64_t id = 1;
    for (size_t ch = 0; ch < traffic.channels.size(); ++ch) {
      for (size_t m = 0; m < methods_.size(); ++m)
        traffic.simple_call(static_cast<int>(m), static_cast<int>(ch), id++);
    }
  }

  // The main thread during the traffic: reloads, the child's kills and restarts, curfew's health.
  void chaos_loop() {
    const auto start = Clock::now();
    const auto end = start + std::chrono::seconds(o_.seconds);
    auto next_reload = start + milliseconds(uniform(rng_, 200, 600));
    auto next_kill = start + milliseconds(uniform(rng_, 2000, 5000));
    auto next_attack = start + milliseconds(uniform(rng_, 1000, 3000));
    auto next_dns_change = start + milliseconds(uniform(rng_, 1000, 3000));
    std::optional<Clock::time_point> restart_at;
    auto next_sample = start;
    while (Clock::now() < end) {
      std::this_thread::sleep_for(milliseconds(10));
      if (Clock::now() >= next_sample) {
        rss_samples_.push_back(
            {std::chrono::duration<double>(Clock::now() - start).count() / o_.seconds,
             curfew_->process().rss_kib()});
        next_sample += milliseconds(500);
      }
      if (!curfew_->process().running()) {
        v_.add("1", "curfew exited during the run (code " +
                        std::to_string(curfew_->process().exit_code().value_or(-1)) +
                        "); log tail:\n" + tail(curfew_->process().output()));
        return;
      }
      const auto now = Clock::now();
      if (now >= next_reload) next_reload = now + milliseconds(reload());
      if (!restart_at && now >= next_kill) {
        child_->kill_now();
        ++kills_;
        restart_at = now + milliseconds(uniform(rng_, 0, 500));
      }
      if (restart_at && now >= *restart_at) {
        spawn_child();
        ++restarts_;
        restart_at.reset();
        next_kill = now + milliseconds(uniform(rng_, 2000, 5000));
      }
      if (now >= next_dns_change) {
        // u2's replicas join and leave its endpoint set (never both gone: a name always answers).
        dns_->set_hosts(dns_hosts(uniform(rng_, 1, 3)));
        ++dns_changes_;
        next_dns_change = now + milliseconds(uniform(rng_, 1000, 3000));
      }
      if (attacker_ && !attacker_->running()) judge_attack();
      if (!attacker_ && now >= next_attack && now + milliseconds(4000) < end) {
        start_attack();
        next_attack = now + milliseconds(uniform(rng_, 2000, 5000));
      }
    }
    if (attacker_ && poll(milliseconds(10000), [&] { return !attacker_->running(); }))
      judge_attack();
    attacker_.reset();
  }

  // One hostile connection on the exposed listener, reconnecting for 1.5 s.
  void start_attack() {
    static const char* kAttacks[] = {
        "rapid_reset",      "ping_flood",          "settings_flood",     "window_update_flood",
        "empty_data_flood", "closed_stream_flood", "continuation_flood", "hpack_bloat",
        "idle_streams",     "headers_stall",       "slowloris"};
    attack_name_ = kAttacks[rng_() % std::size(kAttacks)];
    attacker_ = std::make_unique<testing::Child>(
        std::vector<std::string>{CURFEW_H2_ATTACK_BINARY, "--port", std::to_string(ports_.exposed),
                                 "--attack", attack_name_, "--seconds", "2.5", "--reconnect", "1",
                                 "--streams", "300", "--connections", "10"},
        dir_.path() / ("attack-" + std::to_string(++attacks_) + ".out"));
  }

  // Invariant A: the attacker's connection was closed by curfew at least once.
  void judge_attack() {
    const std::string report = attacker_->output();
    std::smatch m;
    if (!std::regex_search(report, m, std::regex(R"(closed=(\d+))")) || std::stoi(m[1]) < 1) {
      v_.add("A", "attack " + attack_name_ +
                      ": curfew did not close the attacker's connection: " + report);
    }
    attacker_.reset();
  }

  // Writes the next configuration (every ~10th invalid) and announces it; the pause until the
  // next one (an invalid file stays long enough for the file watch to see it: it polls 500 ms).
  int reload() {
    const int version = ++reloads_.last_version;
    const bool invalid = version > 2 && rng_() % 10 == 0;
    write_atomically(curfew_->config(), config_text(version, invalid));
    const bool sighup = reloads_.written % 2 == 1;
    if (sighup) curfew_->process().signal(SIGHUP);
    ++reloads_.written;
    reloads_.invalid += invalid;
    reloads_.sighup += sighup;
    reloads_.weight += sighup ? 2 : 1;
    return invalid ? 1200 : uniform(rng_, 200, 600);
  }

  void ensure_child_up() {
    if (!child_->running()) {
      spawn_child();
      ++restarts_;
    }
  }

  // ---- checks after the traffic ----------------------------------------------------------------

  void check_after_traffic(Traffic& traffic) {
    if (!curfew_->process().running()) return;  // invariant 1 already reported
    check_final_reload(traffic);
    check_upstreams_settle();      // 5
    check_every_replica_served();  // E
    check_nothing_in_flight();     // 6
    check_accounting(traffic);     // 7
    check_resources();             // 6
    check_reload_counts();         // R
  }

  // The last configuration written is the one in force: its route names are counted.
  void check_final_reload(Traffic& traffic) {
    const double before = curfew_->sum("curfew_config_reloads_total", {{"result", "ok"}});
    const int version = ++reloads_.last_version;
    write_atomically(curfew_->config(), config_text(kFinalVersion));
    curfew_->process().signal(SIGHUP);
    ++reloads_.written;
    ++reloads_.sighup;
    reloads_.weight += 2;
    const bool applied = poll(milliseconds(15000), [&] {
      return curfew_->sum("curfew_config_reloads_total", {{"result", "ok"}}) > before &&
             curfew_->sum("curfew_config_last_reload_successful") == 1;
    });
    if (!applied) {
      v_.add("R", "the final valid configuration (version " + std::to_string(version) +
                      ") was not applied");
      return;
    }
    const int unary = 0;  // methods_[0] is "Unary"
    traffic.simple_call(unary, 0, 0xF1A1);
    const std::string route = "unary-" + route_suffix(kFinalVersion);
    if (!poll(milliseconds(5000), [&] {
          return curfew_->sum("curfew_requests_total", {{"route", route}}) >= 1;
        })) {
      v_.add("R", "a call after the final reload was not counted under its route " + route);
    }
  }

  // Endpoint sets: every replica of u1 (two addresses) and of u2 (its DNS answer changing)
  // served calls, so the sets were used, not just their first address.
  void check_every_replica_served() {
    for (auto& u : upstreams_) {
      if (u->record().index() == 0 || u->record().calls() > 0) continue;
      v_.add("E", "a replica of u" + std::to_string(u->record().index()) + " (port " +
                      std::to_string(u->port()) +
                      ") served no call: its endpoint set was not used");
    }
  }

  void check_upstreams_settle() {
    for (auto& u : upstreams_) {
      if (poll(milliseconds(10000), [&] { return u->record().open_calls().empty(); })) continue;
      const auto open = u->record().open_calls();
      std::string ids;
      int shown = 0;
      for (uint64_t id : open) {
        if (shown++ < 5) ids += " " + std::to_string(id);
      }
      v_.add("5", "upstream u" + std::to_string(u->record().index()) + " still has " +
                      std::to_string(open.size()) +
                      " calls open 10 s after the traffic stopped (ids:" + ids + ")");
    }
  }

  void check_nothing_in_flight() {
    double inflight = -1;
    if (!poll(milliseconds(10000),
              [&] { return (inflight = curfew_->sum("curfew_inflight_requests")) == 0; })) {
      v_.add("6", "curfew_inflight_requests is " + std::to_string(inflight) +
                      " 10 s after the traffic stopped");
    }
    // The per-call fault boundary is for bugs: no chaos traffic may reach it.
    if (const double faults = curfew_->sum("curfew_call_faults_total"); faults != 0) {
      v_.add("3", "curfew_call_faults_total is " + std::to_string(faults) +
                      ": calls failed by curfew's fault boundary (its log says why)");
    }
  }

  void check_resources() {
    int fds = -1;
    if (!poll(milliseconds(10000),
              [&] { return (fds = curfew_->process().open_fds()) <= baseline_fds_ + 24; })) {
      v_.add("6", "curfew has " + std::to_string(fds) + " fds after the traffic, baseline " +
                      std::to_string(baseline_fds_) + " (slack 24)");
    }
    final_fds_ = fds;
  }

  void check_memory() {
    // The baseline is taken once the traffic has warmed curfew up (its largest RSS in the 10-25%
    // stretch of the run: buffers, allocator arenas and caches at their working size); a leak
    // shows as growth beyond it by the end.
    long warm = baseline_rss_;
    for (const auto& [at, kib] : rss_samples_) {
      if (at >= 0.10 && at < 0.25) warm = std::max(warm, kib);
    }
    warm_rss_ = warm;
    long rss = curfew_->process().rss_kib();
    const long limit = std::max(warm + 64 * 1024, 2 * warm);
    if (o_.check_rss &&
        !poll(milliseconds(10000), [&] { return (rss = curfew_->process().rss_kib()) <= limit; })) {
      v_.add("6", "curfew's RSS is " + std::to_string(rss / 1024) +
                      " MiB after the traffic, warmed-up baseline " + std::to_string(warm / 1024) +
                      " MiB (limit " + std::to_string(limit / 1024) + " MiB; " + rss_curve() + ")");
    }
    final_rss_ = rss;
  }

  // Largest RSS in each fifth of the run, for the summary.
  std::string rss_curve() const {
    long fifth[5] = {};
    for (const auto& [at, kib] : rss_samples_) {
      const int i = std::clamp(static_cast<int>(at * 5), 0, 4);
      fifth[i] = std::max(fifth[i], kib);
    }
    std::string out = "RSS by fifth of the run:";
    for (long f : fifth) out += " " + std::to_string(f / 1024);
    return out + " MiB";
  }

  void check_reload_counts() {
    auto e = curfew_->scrape();
    if (!e) {
      v_.add("R", "/metrics did not answer");
      return;
    }
    applied_ = static_cast<int>(e->sum("curfew_config_reloads_total", {{"result", "ok"}}));
    refused_ = static_cast<int>(e->sum("curfew_config_reloads_total", {{"result", "error"}}));
    const std::string counts =
        "applied " + std::to_string(applied_) + ", refused " + std::to_string(refused_) +
        "; written " + std::to_string(reloads_.written) + " (" + std::to_string(reloads_.invalid) +
        " invalid, " + std::to_string(reloads_.sighup) + " announced by SIGHUP)";
    if (applied_ + refused_ > reloads_.weight) {
      v_.add("R", "more reloads than announced (at most " + std::to_string(reloads_.weight) +
                      "): " + counts);
    }
    // A SIGHUP'd file is read at most twice (the signal, then the file watch), and a file can
    // also be read for the signal of the write before it if curfew lagged: 3 per invalid file.
    if (reloads_.invalid > 0 && (refused_ < 1 || refused_ > 3 * reloads_.invalid)) {
      v_.add("R", "invalid files not refused as written: " + counts);
    }
    if (reloads_.invalid == 0 && refused_ > 0) v_.add("R", "a valid file was refused: " + counts);
    if (applied_ < 1) v_.add("R", "no reload applied: " + counts);
  }

  // Invariant 7. For each status code: the callers' certain count <= curfew's count <= certain +
  // the uncertain calls that could have been counted with that code.
  void check_accounting(Traffic& traffic) {
    // A call's report follows its status by a moment: wait until the count stops moving.
    double last = -1, now_total = -2;
    poll(milliseconds(15000), [&] {
      last = now_total;
      now_total = curfew_->sum("curfew_requests_total", {{"listener", "main"}});
      return now_total == last && curfew_->sum("curfew_inflight_requests") == 0;
    });
    auto e = curfew_->scrape();
    if (!e) {
      v_.add("7", "/metrics did not answer");
      return;
    }
    long certain[17] = {}, could[17] = {};
    long certain_total = 0, uncertain_total = 0, certain_rejections = 0;
    std::lock_guard lock(traffic.mu);
    for (const CallRecord& c : traffic.records) {
      const Method& m = methods_[c.method];
      if (status_uncertain(c)) {
        ++uncertain_total;
        const Codes may = codes_curfew_may_count(c, m);
        for (int i = 0; i < 17; ++i) could[i] += may[i];
        continue;
      }
      ++certain_total;
      ++certain[c.code];
      certain_rejections += curfew_rejection(c);
    }
    int exact = 0;
    std::string table;
    for (int i = 0; i < 17; ++i) {
      const long counted = static_cast<long>(
          e->sum("curfew_requests_total", {{"listener", "main"}, {"grpc_code", code_name(i)}}));
      exact += could[i] == 0;
      if (counted || certain[i] || could[i]) {
        table += std::string(" ") + code_name(i) + "=" + std::to_string(counted) + "/" +
                 std::to_string(certain[i]) + (could[i] ? "+" + std::to_string(could[i]) : "");
      }
      if (counted < certain[i] || counted > certain[i] + could[i]) {
        v_.add("7",
               std::string("curfew_requests_total{grpc_code=") + code_name(i) +
                   "} = " + std::to_string(counted) + ", callers got " +
                   std::to_string(certain[i]) + " from curfew" +
                   (could[i] ? " + up to " + std::to_string(could[i]) + " they decided themselves"
                             : " (exact)"));
      }
    }
    const long counted = static_cast<long>(e->sum("curfew_requests_total", {{"listener", "main"}}));
    if (counted < certain_total || counted > certain_total + uncertain_total) {
      v_.add("7", "curfew_requests_total = " + std::to_string(counted) +
                      ", callers: " + std::to_string(certain_total) + " certain + " +
                      std::to_string(uncertain_total) + " uncertain");
    }
    const long rejected =
        static_cast<long>(e->sum("curfew_rejected_total", {{"listener", "main"}}));
    if (rejected < certain_rejections || rejected > certain_rejections + uncertain_total) {
      v_.add("7", "curfew_rejected_total = " + std::to_string(rejected) + ", callers saw " +
                      std::to_string(certain_rejections) + " refusals (+ up to " +
                      std::to_string(uncertain_total) + ")");
    }
    accounting_ = "accounting: curfew counted " + std::to_string(counted) + " calls; callers " +
                  std::to_string(certain_total) + " certain + " + std::to_string(uncertain_total) +
                  " uncertain; " + std::to_string(exact) + "/17 codes compared exactly; by code" +
                  " (curfew/callers certain+uncertain that may count there):" + table;
  }

  // Invariants 3 and 4 over every call, and what the upstreams found.
  void check_calls(Traffic& traffic) {
    std::lock_guard lock(traffic.mu);
    for (const CallRecord& c : traffic.records) {
      const Method& m = methods_[c.method];
      ++by_kind_[kind_name(m.kind)];
      ++by_code_[c.code >= 0 ? code_name(c.code) : "none"];
      if (std::string bad = judge(c, m); !bad.empty()) v_.add("3", bad + ": " + c.describe(m));
      if (!c.cancelled_before_half_close) continue;
      for (auto& u : upstreams_) {
        if (u->record().saw_half_close(c.id)) {
          v_.add("4",
                 "u" + std::to_string(u->record().index()) +
                     " saw a clean half-close of a call cancelled before it: " + c.describe(m));
        }
      }
    }
    // What the upstreams found, with the caller's side of the call.
    std::map<uint64_t, const CallRecord*> by_id;
    for (const CallRecord& c : traffic.records) by_id[c.id] = &c;
    auto upstream_finding = [&](const std::string& line) {
      std::string caller = "the caller's record is missing";
      const size_t at = line.find("call ");
      if (at != std::string::npos) {
        auto it = by_id.find(std::strtoull(line.c_str() + at + 5, nullptr, 10));
        if (it != by_id.end())
          caller = "caller: " + it->second->describe(methods_[it->second->method]);
      }
      v_.add(line.find("half-close") != std::string::npos ? "4" : "3", line + "; " + caller);
    };
    for (auto& u : upstreams_) {
      for (const auto& line : u->record().violations()) upstream_finding(line);
    }
    std::istringstream child_log(child_->output());
    for (std::string line; std::getline(child_log, line);) {
      if (line.find("chaos-upstream: VIOLATION") != std::string::npos)
        upstream_finding("(child) " + line);
    }
  }

  void check_logs() {
    const std::string log = curfew_->process().output();
    std::string bad = testing::sanitizer_reports(log);
    for (const char* word :
         {"FATAL", "Segmentation fault", "terminate called", "Assertion", "ABORTING"}) {
      if (log.find(word) != std::string::npos) bad += std::string("log says \"") + word + "\"\n";
    }
    if (!bad.empty()) v_.add("2", "curfew's log:\n" + bad + "log tail:\n" + tail(log));
    const std::string child_bad = testing::sanitizer_reports(child_->output());
    if (!child_bad.empty()) v_.add("2", "the child upstream's log:\n" + child_bad);
  }

  void stop_curfew() {
    if (!curfew_->process().running()) return;
    curfew_->process().signal(SIGTERM);
    const auto code = curfew_->process().wait_exit(milliseconds(2000 + 30000));
    if (!code) {
      v_.add("1", "SIGTERM: curfew did not exit within drain_timeout (2 s) + 30 s");
    } else if (*code != 0) {
      v_.add("1", "SIGTERM: curfew exited with code " + std::to_string(*code) + "; log tail:\n" +
                      tail(curfew_->process().output()));
    }
  }

  int conclude(Traffic& traffic) {
    if (auto e = curfew_->scrape()) exposition_samples_ = e->samples().size();
    end_rss_ = curfew_->process().rss_kib();
    check_calls(traffic);
    stop_curfew();
    check_logs();
    v_.print();
    std::string kinds, codes;
    for (const auto& [k, n] : by_kind_) kinds += " " + k + "=" + std::to_string(n);
    for (const auto& [k, n] : by_code_) codes += " " + k + "=" + std::to_string(n);
    std::printf("chaos: seed=%llu %s\n", seed(), accounting_.c_str());
    std::printf(
        "chaos: seed=%llu at the end: /metrics has %zu samples; curfew RSS %ld MiB after this "
        "test's scrapes\n",
        seed(), exposition_samples_, end_rss_ / 1024);
    std::printf(
        "chaos: seed=%llu summary: %zu calls; by kind:%s; by code:%s; reloads written %d (%d "
        "invalid, %d by SIGHUP), "
        "applied %d, refused %d; child upstream killed %d, restarted %d; u2.test changed %d; "
        "attacks %d; curfew fds "
        "%d -> %d, RSS %ld (idle) / %ld (warm) -> %ld MiB (%s)\n",
        seed(), traffic.records.size(), kinds.c_str(), codes.c_str(), reloads_.written,
        reloads_.invalid, reloads_.sighup, applied_, refused_, kills_, restarts_, dns_changes_,
        attacks_, baseline_fds_, final_fds_, baseline_rss_ / 1024, warm_rss_ / 1024,
        final_rss_ / 1024, rss_curve().c_str());
    const int n = v_.total();
    std::printf("chaos: seed=%llu %s (%d violations)\n", seed(), n ? "FAILED" : "PASSED", n);
    return n ? 1 : 0;
  }

  static std::string tail(const std::string& log, size_t n = 3000) {
    return log.size() > n ? log.substr(log.size() - n) : log;
  }

  const Options o_;
  Violations v_;
  std::mt19937_64 rng_;
  std::string self_ = std::filesystem::read_symlink("/proc/self/exe").string();
  testing::TempDir dir_;
  std::vector<Method> methods_;
  Ports ports_;
  std::vector<std::unique_ptr<UpstreamServer>> upstreams_;
  std::unique_ptr<Process> child_;
  std::unique_ptr<ConfigWriter> writer_;
  std::unique_ptr<Curfew> curfew_;
  ReloadLog reloads_;
  int kills_ = 0, restarts_ = 0, applied_ = 0, refused_ = 0, dns_changes_ = 0;
  std::optional<testing::Dnsmasq> dns_;  // answers u2.test
  std::unique_ptr<testing::Child> attacker_;
  std::string attack_name_;
  int attacks_ = 0;
  int baseline_fds_ = -1, final_fds_ = -1;
  long baseline_rss_ = -1, warm_rss_ = -1, final_rss_ = -1, end_rss_ = -1;
  size_t exposition_samples_ = 0;
  std::vector<std::pair<double, long>> rss_samples_;  // (fraction of the run, KiB)
  std::string accounting_;
  std::map<std::string, long> by_kind_, by_code_;
};

// --upstream-port P: the killable upstream, in a process of its own.
int serve_upstream(int port) {
  std::unique_ptr<UpstreamServer> server;
  // Just after a SIGKILL the port may still be held for a moment: retry (bounded).
  for (int i = 0; i < 100; ++i) {
    server = std::make_unique<UpstreamServer>(kChild, port, /*print_violations=*/true);
    if (server->ok()) break;
    server.reset();
    std::this_thread::sleep_for(milliseconds(100));
  }
  if (!server) {
    std::printf("chaos-upstream: cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  std::printf("chaos-upstream: serving on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  // Until killed; bounded all the same (a day), and gone if the parent is.
  for (int i = 0; i < 24 * 3600 && getppid() != 1; ++i)
    std::this_thread::sleep_for(std::chrono::seconds(1));
  return 0;
}

}  // namespace
}  // namespace curfew::chaos

int main(int argc, char** argv) {
  using curfew::chaos::Options;
  Options o;
  o.seed = std::random_device{}() % 1000000000ULL;
  int upstream_port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--curfew")
      o.curfew = next();
    else if (arg == "--seconds")
      o.seconds = std::atoi(next().c_str());
    else if (arg == "--seed")
      o.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (arg == "--callers")
      o.callers = std::atoi(next().c_str());
    else if (arg == "--check-rss")
      o.check_rss = true;
    else if (arg == "--upstream-port")
      upstream_port = std::atoi(next().c_str());
    else {
      std::fprintf(stderr,
                   "usage: curfew-chaos --curfew PATH [--seconds N] [--seed N] [--callers N] "
                   "[--check-rss]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  if (upstream_port > 0) return curfew::chaos::serve_upstream(upstream_port);
  // The environment wins over the flags: CTest passes --seconds; a replay sets the variables.
  if (const char* s = std::getenv("CURFEW_CHAOS_SECONDS"); s && *s) o.seconds = std::atoi(s);
  if (const char* s = std::getenv("CURFEW_CHAOS_SEED"); s && *s)
    o.seed = std::strtoull(s, nullptr, 10);
  if (o.curfew.empty() || o.seconds <= 0 || o.callers <= 0) {
    std::fprintf(stderr, "curfew-chaos: --curfew PATH is required; numbers must be positive\n");
    return 2;
  }
  return curfew::chaos::Run(o).main();
}
