// `workers: 0` on the real binary: one loop thread per CPU the container may use
// (runtime/cpu_budget.h), seen in its start-up log line and in its threads (/proc/PID/task).
// Under `taskset -c CPU` it starts one loop, as `workers: 1` does, whatever the machine has.
#include <sched.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "curfew_binary.h"   // Child
#include "curfew_process.h"  // TempDir

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

// The CPUs this test may use (its affinity mask), in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i) {
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  }
  return cpus;
}

// taskset's path (the child is started with execve, which does not search PATH); "" if none.
std::string taskset_path() {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate =
        std::filesystem::path(dirs.substr(start, end - start)) / "taskset";
    if (!candidate.parent_path().empty() && access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
    start = end + 1;
  }
  return "";
}

int threads_of(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

struct Started {
  std::string log;  // its output once ready
  int threads = 0;  // its thread count once ready (and steady)
};

// Starts curfew under `taskset -c CPUS` with `workers`, waits until it is ready and its thread
// count is steady, stops it.
Started start(const std::string& cpus, int workers, std::vector<std::string> env = {}) {
  TempDir dir;
  const auto config = dir.path() / "curfew.yaml";
  write_file(config,
             "admin: {address: 127.0.0.1:0}\n"
             "listeners:\n"
             "  - name: inbound\n"
             "    address: 127.0.0.1:0\n"
             "    routes: [{name: all, match: {prefix: /}, upstream: app}]\n"
             "upstreams: [{name: app, endpoints: [127.0.0.1:1]}]\n"
             "workers: " +
                 std::to_string(workers) + "\n");
  Child curfew({taskset_path(), "-c", cpus, CURFEW_BINARY, "--config", config.string()},
               dir.path() / "curfew.log", std::move(env));
  Started started;
  if (curfew.pid() <= 0 || !curfew.wait_output("ready", 60s)) {
    started.log = curfew.output();
    return started;
  }
  // taskset execs curfew: the same process. Its threads, counted until two counts agree.
  int before = -1;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(100ms);
    const int now = threads_of(curfew.pid());
    if (now == before) break;
    before = now;
  }
  started.threads = before;
  started.log = curfew.output();
  curfew.signal(SIGTERM);
  EXPECT_EQ(curfew.wait_exit(30s), 0) << started.log;
  return started;
}

TEST(Workers, ZeroUnderTasksetOfOneCpuStartsOneLoop) {
  ASSERT_NE(taskset_path(), "") << "taskset (util-linux) is needed";
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  const std::string one = std::to_string(cpus[0]);  // `taskset -c 0` where CPU 0 is ours

  const Started zero = start(one, 0);
  const Started configured_one = start(one, 1);
  const Started configured_two = start(one, 2);
  ASSERT_GT(zero.threads, 0) << zero.log;
  ASSERT_GT(configured_one.threads, 0) << configured_one.log;
  ASSERT_GT(configured_two.threads, 0) << configured_two.log;

  // The log says how many and why.
  EXPECT_NE(zero.log.find("workers: 1 ("), std::string::npos) << zero.log;
  EXPECT_NE(zero.log.find("affinity 1 CPU"), std::string::npos) << zero.log;
  EXPECT_NE(configured_one.log.find("workers: 1 (configured)"), std::string::npos)
      << configured_one.log;
  // The thread count shows loops (each configured worker is one thread more)...
  EXPECT_EQ(configured_two.threads, configured_one.threads + 1)
      << configured_one.log << configured_two.log;
  // ...and workers: 0 under one CPU has as many as workers: 1.
  EXPECT_EQ(zero.threads, configured_one.threads) << zero.log;
}

// A CPU request passed in (the chart's downward API variable) bounds workers: 0 as well: two
// CPUs allowed, a 500m request, one loop.
TEST(Workers, ZeroFollowsTheCpuRequest) {
  ASSERT_NE(taskset_path(), "") << "taskset (util-linux) is needed";
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const std::string two = std::to_string(cpus[0]) + "," + std::to_string(cpus[1]);

  const Started requested = start(two, 0, {"CURFEW_CPU_REQUEST_MILLICORES=500"});
  const Started configured_one = start(two, 1);
  ASSERT_GT(requested.threads, 0) << requested.log;
  EXPECT_NE(requested.log.find("workers: 1 ("), std::string::npos) << requested.log;
  EXPECT_NE(requested.log.find("affinity 2 CPUs; request 500m → 1"), std::string::npos)
      << requested.log;
  EXPECT_EQ(requested.threads, configured_one.threads) << requested.log;
}

}  // namespace
}  // namespace curfew::testing
