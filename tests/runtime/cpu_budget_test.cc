// runtime/cpu_budget.h against fake /proc and /sys/fs/cgroup trees (cgroup v1, v2, "max",
// nested paths, malformed files), CPU requests, and the real affinity mask.
#include "runtime/cpu_budget.h"

#include <sched.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curfew::rt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A fake root: /proc/self/cgroup and files under /sys/fs/cgroup, removed at the end.
class FakeRoot {
 public:
  FakeRoot() {
    std::string tmpl = (fs::temp_directory_path() / "curfew-cpu-budget-XXXXXX").string();
    root_ = mkdtemp(tmpl.data());
  }
  ~FakeRoot() { fs::remove_all(root_); }
  FakeRoot(const FakeRoot&) = delete;
  FakeRoot& operator=(const FakeRoot&) = delete;

  // `path` relative to the root, e.g. "sys/fs/cgroup/cpu.max".
  FakeRoot& file(const std::string& path, const std::string& text) {
    fs::create_directories((root_ / path).parent_path());
    std::ofstream(root_ / path) << text;
    return *this;
  }
  FakeRoot& self_cgroup(const std::string& text) { return file("proc/self/cgroup", text); }
  FakeRoot& dir(const std::string& path) {
    fs::create_directories(root_ / path);
    return *this;
  }

  // The budget with this tree, `affinity` CPUs and an optional request.
  CpuBudget budget(int affinity = 8, std::optional<std::string> request = std::nullopt) const {
    return cpu_budget(
        {.root = root_.string(), .request_millicores = request, .affinity_cpus = affinity});
  }

 private:
  fs::path root_;
};

// --- cgroup v2 ----------------------------------------------------------------------------------

TEST(CpuBudget, V2QuotaRoundedUp) {
  FakeRoot root;
  root.self_cgroup("0::/kubepods/pod1/ctr\n")
      .file("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "150000 100000\n");
  const CpuBudget b = root.budget(8);
  EXPECT_EQ(b.cpus, 2);
  EXPECT_EQ(b.quota_cpus, 2);
  EXPECT_EQ(b.affinity_cpus, 8);
  EXPECT_EQ(b.request_cpus, std::nullopt);
  EXPECT_EQ(b.reason, "cgroup cpu.max 150000/100000 → 2; affinity 8 CPUs");
}

TEST(CpuBudget, V2ExactQuotaIsNotRoundedUp) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "300000 100000\n");
  EXPECT_EQ(root.budget(8).cpus, 3);
}

TEST(CpuBudget, V2SmallQuotaIsAtLeastOne) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "5000 100000\n");
  EXPECT_EQ(root.budget(8).cpus, 1);
}

TEST(CpuBudget, V2MaxIsNoLimit) {
  FakeRoot root;
  root.self_cgroup("0::/ctr\n").file("sys/fs/cgroup/ctr/cpu.max", "max 100000\n");
  const CpuBudget b = root.budget(6);
  EXPECT_EQ(b.quota_cpus, std::nullopt);
  EXPECT_EQ(b.cpus, 6);
  EXPECT_EQ(b.reason, "cgroup cpu.max max (no limit); affinity 6 CPUs");
}

TEST(CpuBudget, AffinityBelowQuotaWins) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "400000 100000\n");
  EXPECT_EQ(root.budget(2).cpus, 2);
}

// A cgroup namespace: /proc/self/cgroup says "/", the mount is the container's own cgroup.
TEST(CpuBudget, V2Namespaced) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "250000 100000\n");
  EXPECT_EQ(root.budget(8).cpus, 3);
}

// The path in /proc/self/cgroup is not under the mount (the container sees its own cgroup as the
// mount's root): the mount's root is read.
TEST(CpuBudget, V2PathNotUnderTheMountReadsTheMountRoot) {
  FakeRoot root;
  root.self_cgroup("0::/system.slice/docker-abc.scope\n")
      .file("sys/fs/cgroup/cpu.max", "100000 100000\n");
  EXPECT_EQ(root.budget(8).cpus, 1);
}

// A parent's quota bounds its children: every level from the mount down is read.
TEST(CpuBudget, V2NestedParentLimitBinds) {
  FakeRoot root;
  root.self_cgroup("0::/kubepods/pod1/ctr\n")
      .file("sys/fs/cgroup/kubepods/cpu.max", "max 100000\n")
      .file("sys/fs/cgroup/kubepods/pod1/cpu.max", "120000 100000\n")
      .file("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  const CpuBudget b = root.budget(8);
  EXPECT_EQ(b.cpus, 2);
  EXPECT_THAT(b.reason, HasSubstr("cgroup cpu.max 120000/100000 → 2 (of parent /kubepods/pod1)"));
}

TEST(CpuBudget, V2NestedChildLimitBinds) {
  FakeRoot root;
  root.self_cgroup("0::/kubepods/pod1/ctr\n")
      .file("sys/fs/cgroup/kubepods/pod1/cpu.max", "400000 100000\n")
      .file("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n");
  const CpuBudget b = root.budget(8);
  EXPECT_EQ(b.cpus, 1);
  EXPECT_THAT(b.reason, HasSubstr("cgroup cpu.max 50000/100000 → 1; "));
  EXPECT_THAT(b.reason, Not(HasSubstr("parent")));
}

// A level without cpu.max (the root cgroup has none) says nothing.
TEST(CpuBudget, V2MissingFilesAreNoLimit) {
  FakeRoot root;
  root.self_cgroup("0::/a/b\n").dir("sys/fs/cgroup/a/b");
  const CpuBudget b = root.budget(4);
  EXPECT_EQ(b.quota_cpus, std::nullopt);
  EXPECT_EQ(b.cpus, 4);
  EXPECT_THAT(b.reason, HasSubstr("cgroup quota not found"));
}

// --- cgroup v1 ----------------------------------------------------------------------------------

TEST(CpuBudget, V1Quota) {
  FakeRoot root;
  root.self_cgroup("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n")
      .file("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n")
      .file("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const CpuBudget b = root.budget(8);
  EXPECT_EQ(b.cpus, 3);
  EXPECT_EQ(b.quota_cpus, 3);
  EXPECT_THAT(b.reason,
              HasSubstr("cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us 250000/100000 → 3"));
}

// Some hosts mount the cpu controller at /sys/fs/cgroup/cpu (the combined name a symlink).
TEST(CpuBudget, V1MountedAsCpu) {
  FakeRoot root;
  root.self_cgroup("4:cpu,cpuacct:/\n")
      .file("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "50000\n")
      .file("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(root.budget(8).cpus, 1);
}

TEST(CpuBudget, V1MinusOneIsNoLimit) {
  FakeRoot root;
  root.self_cgroup("2:cpuacct:/\n1:cpu:/\n0::/\n")
      .file("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n")
      .file("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  const CpuBudget b = root.budget(5);
  EXPECT_EQ(b.quota_cpus, std::nullopt);
  EXPECT_EQ(b.cpus, 5);
  EXPECT_EQ(b.reason, "cgroup v1 cpu.cfs_quota_us -1 (no limit); affinity 5 CPUs");
}

TEST(CpuBudget, V1NestedParentLimitBinds) {
  FakeRoot root;
  root.self_cgroup("3:cpu,cpuacct:/kubepods/pod1/ctr\n")
      .file("sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us", "100000\n")
      .file("sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_period_us", "100000\n")
      .file("sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr/cpu.cfs_quota_us", "-1\n")
      .file("sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr/cpu.cfs_period_us", "100000\n");
  const CpuBudget b = root.budget(8);
  EXPECT_EQ(b.cpus, 1);
  EXPECT_THAT(b.reason, HasSubstr("(of parent /kubepods/pod1)"));
}

// A hybrid host: the cpu controller is v1's, the v2 hierarchy has none.
TEST(CpuBudget, HybridPrefersV1) {
  FakeRoot root;
  root.self_cgroup("0::/ctr\n4:cpu,cpuacct:/ctr\n")
      .file("sys/fs/cgroup/ctr/cpu.max", "800000 100000\n")
      .file("sys/fs/cgroup/cpu,cpuacct/ctr/cpu.cfs_quota_us", "200000\n")
      .file("sys/fs/cgroup/cpu,cpuacct/ctr/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(root.budget(8).quota_cpus, 2);
}

// --- malformed files: the source is unknown, named in the reason; never a crash ----------------

TEST(CpuBudget, MalformedCpuMaxFallsBackToAffinity) {
  for (const char* text : {"", "\n", "garbage", "150000", "0 100000", "-5 100000", "100000 0",
                           "100000 -1", "150000 100000 7", "1.5 1", "max 0", "max abc",
                           "99999999999999999999999 100000", "\x01\x02\xff"}) {
    FakeRoot root;
    root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", text);
    const CpuBudget b = root.budget(3);
    EXPECT_EQ(b.quota_cpus, std::nullopt) << "cpu.max '" << text << "'";
    EXPECT_EQ(b.cpus, 3) << "cpu.max '" << text << "'";
    EXPECT_THAT(b.reason, HasSubstr("cgroup cpu.max '")) << text;
    EXPECT_THAT(b.reason, HasSubstr("malformed, ignored")) << text;
  }
}

// A malformed level does not hide a good one.
TEST(CpuBudget, MalformedLevelBesideAGoodOne) {
  FakeRoot root;
  root.self_cgroup("0::/pod/ctr\n")
      .file("sys/fs/cgroup/pod/cpu.max", "junk\n")
      .file("sys/fs/cgroup/pod/ctr/cpu.max", "200000 100000\n");
  const CpuBudget b = root.budget(8);
  EXPECT_EQ(b.cpus, 2);
  EXPECT_THAT(b.reason, HasSubstr("cgroup cpu.max 200000/100000 → 2; cgroup cpu.max 'junk' "
                                  "malformed, ignored"));
}

TEST(CpuBudget, MalformedV1Files) {
  struct Case {
    std::optional<std::string> quota, period;
  };
  for (const Case& c : std::initializer_list<Case>{{"abc", "100000"},
                                                   {"0", "100000"},
                                                   {"-2", "100000"},
                                                   {"100000", std::nullopt},
                                                   {"100000", "0"},
                                                   {"100000", "x"},
                                                   {"", ""}}) {
    FakeRoot root;
    root.self_cgroup("4:cpu,cpuacct:/\n");
    root.dir("sys/fs/cgroup/cpu,cpuacct");
    if (c.quota) root.file("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", *c.quota);
    if (c.period) root.file("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", *c.period);
    const CpuBudget b = root.budget(4);
    EXPECT_EQ(b.quota_cpus, std::nullopt) << c.quota.value_or("-") << "/" << c.period.value_or("-");
    EXPECT_EQ(b.cpus, 4);
    EXPECT_THAT(b.reason, HasSubstr("malformed, ignored"));
  }
}

TEST(CpuBudget, MalformedOrMissingProcSelfCgroup) {
  {
    FakeRoot root;  // no /proc/self/cgroup at all
    const CpuBudget b = root.budget(4);
    EXPECT_EQ(b.cpus, 4);
    EXPECT_THAT(b.reason, HasSubstr("no /proc/self/cgroup"));
  }
  for (const char* text : {"", "nonsense\n", "0::relative/path\n", "0::/../../etc\n",
                           "4:cpu:/a/../../b\n", "4:memory:/x\n", ":::\n", "0:\n"}) {
    FakeRoot root;
    root.self_cgroup(text).file("sys/fs/cgroup/cpu.max", "100000 100000\n");
    const CpuBudget b = root.budget(4);
    EXPECT_EQ(b.quota_cpus, std::nullopt) << text;
    EXPECT_EQ(b.cpus, 4) << text;
    EXPECT_THAT(b.reason, HasSubstr("no cpu cgroup in /proc/self/cgroup")) << text;
  }
}

TEST(CpuBudget, HugeQuotaIsBounded) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "9223372036854775807 1\n");
  const CpuBudget b = root.budget(4);
  EXPECT_EQ(b.cpus, 4);
  EXPECT_GT(b.quota_cpus.value_or(0), 4);
}

// --- the CPU request ----------------------------------------------------------------------------

TEST(CpuBudget, RequestRoundedUp) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_EQ(root.budget(8, "1500").cpus, 2);
  EXPECT_EQ(root.budget(8, "1500").request_cpus, 2);
  EXPECT_EQ(root.budget(8, "2000").cpus, 2);
  EXPECT_EQ(root.budget(8, "50").cpus, 1);
  EXPECT_EQ(root.budget(8, "1").cpus, 1);
  EXPECT_EQ(root.budget(8, " 3000\n").cpus, 3);
  EXPECT_EQ(root.budget(8, "1500").reason,
            "cgroup cpu.max max (no limit); affinity 8 CPUs; request 1500m → 2");
}

TEST(CpuBudget, SmallestKnownSourceWins) {
  FakeRoot root;
  root.self_cgroup("0::/\n").file("sys/fs/cgroup/cpu.max", "300000 100000\n");
  EXPECT_EQ(root.budget(8, "5000").cpus, 3);  // quota
  EXPECT_EQ(root.budget(2, "5000").cpus, 2);  // affinity
  EXPECT_EQ(root.budget(8, "1200").cpus, 2);  // request
  EXPECT_EQ(root.budget(8, "1200").reason,
            "cgroup cpu.max 300000/100000 → 3; affinity 8 CPUs; request 1200m → 2");
}

TEST(CpuBudget, RequestZeroOrMalformedIsIgnored) {
  FakeRoot root;
  root.self_cgroup("0::/\n");
  const CpuBudget zero = root.budget(4, "0");
  EXPECT_EQ(zero.cpus, 4);
  EXPECT_EQ(zero.request_cpus, std::nullopt);
  EXPECT_THAT(zero.reason, HasSubstr("request 0m (none)"));
  for (const char* text : {"abc", "-100", "1.5", "500m", "1e3", "99999999999999999999999"}) {
    const CpuBudget b = root.budget(4, text);
    EXPECT_EQ(b.cpus, 4) << text;
    EXPECT_EQ(b.request_cpus, std::nullopt) << text;
    EXPECT_THAT(b.reason, HasSubstr("ignored (not a whole number of millicores)")) << text;
  }
  const CpuBudget empty = root.budget(4, "");
  EXPECT_EQ(empty.cpus, 4);
  EXPECT_THAT(empty.reason, Not(HasSubstr("request")));
}

TEST(CpuBudget, HugeRequestIsBounded) {
  FakeRoot root;
  EXPECT_EQ(root.budget(4, "9223372036854775807").cpus, 4);
}

TEST(CpuBudget, RequestFromTheEnvironment) {
  ::unsetenv(kCpuRequestEnvVar);
  EXPECT_EQ(cpu_budget_sources_from_environment().request_millicores, std::nullopt);
  ::setenv(kCpuRequestEnvVar, "750", 1);
  const CpuBudgetSources sources = cpu_budget_sources_from_environment();
  ::unsetenv(kCpuRequestEnvVar);
  EXPECT_EQ(sources.request_millicores, "750");
  EXPECT_EQ(sources.root, "/");
  EXPECT_EQ(cpu_budget(sources).request_cpus, 1);
  EXPECT_EQ(cpu_budget(sources).cpus, 1);
}

// --- affinity -----------------------------------------------------------------------------------

TEST(CpuBudget, RealAffinityMask) {
  FakeRoot root;  // no cgroup files: only the affinity mask is known
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const CpuBudget b = cpu_budget({.root = "/nonexistent-root"});
  EXPECT_EQ(b.affinity_cpus, CPU_COUNT(&set));
  EXPECT_EQ(b.cpus, CPU_COUNT(&set));
}

// Narrowed to one CPU (as `taskset -c 0` does), the budget is 1 whatever the node has.
TEST(CpuBudget, NarrowedAffinityMask) {
  cpu_set_t before;
  CPU_ZERO(&before);
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  int first = 0;
  while (!CPU_ISSET(first, &before)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const CpuBudget b = cpu_budget({.root = "/nonexistent-root"});
  ASSERT_EQ(sched_setaffinity(0, sizeof before, &before), 0);
  EXPECT_EQ(b.affinity_cpus, 1);
  EXPECT_EQ(b.cpus, 1);
  EXPECT_THAT(b.reason, HasSubstr("affinity 1 CPU"));
}

// With no source known at all the node's count is used, at least 1.
TEST(CpuBudget, NothingKnownFallsBackToHardwareConcurrency) {
  FakeRoot root;
  const CpuBudget b = root.budget(/*affinity=*/0);
  EXPECT_EQ(b.affinity_cpus, std::nullopt);
  EXPECT_GE(b.cpus, 1);
  EXPECT_THAT(b.reason, HasSubstr("hardware_concurrency"));
}

// The real system: whatever it is, a sane answer no larger than the affinity mask.
TEST(CpuBudget, RealSystem) {
  const CpuBudget b = cpu_budget();
  EXPECT_GE(b.cpus, 1);
  ASSERT_TRUE(b.affinity_cpus.has_value());
  EXPECT_LE(b.cpus, *b.affinity_cpus);
  EXPECT_FALSE(b.reason.empty());
}

}  // namespace
}  // namespace curfew::rt
