// How many CPUs this process may use: the number of loop threads worth starting when the
// configuration leaves it to us. On a 96-core node a container limited (or sized) to half a CPU
// should not start 96 of them, as std::thread::hardware_concurrency would have it.
//
// Three sources, each optional; the budget is the smallest of those known, at least 1:
//   - the CPU affinity mask (sched_getaffinity: `taskset`, cpusets, static CPU manager);
//   - the cgroup CPU quota, rounded up: v2 `cpu.max` ("QUOTA PERIOD", "max PERIOD": no limit),
//     v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1: no limit). The process's cgroup is
//     read from /proc/self/cgroup ("0::/path" for v2, "N:cpu,cpuacct:/path" for v1; v1 wins on a
//     hybrid host, where the cpu controller is a v1 one) and looked up under /sys/fs/cgroup
//     (v1: /sys/fs/cgroup/<controllers> or /sys/fs/cgroup/cpu). Every level from the process's
//     cgroup up to the mount is read (a parent's quota bounds its children). When the path is not
//     there (a container that sees its own cgroup as the mount's root), the mount's root is read;
//   - a CPU request in millicores, rounded up (Kubernetes' downward API `requests.cpu` with
//     divisor 1m, passed in by the caller): a pod with a request and no limit has cpu.max "max",
//     which says nothing about what it was sized for.
// Nothing here fails: a file that is missing, unreadable or malformed leaves its source unknown
// and is named in the reason. With nothing known the budget is hardware_concurrency (at least 1).
#pragma once

#include <optional>
#include <string>

namespace curfew::rt {

struct CpuBudgetSources {
  // Where "/proc" and "/sys/fs/cgroup" are found: "/" on a real system, a fake tree in tests.
  std::string root = "/";
  // The CPU request's text in millicores ("50", "1500"); unset or empty: no request. "0" (what
  // the downward API gives for a container without a request) is no request either.
  std::optional<std::string> request_millicores;
  // The affinity mask's CPU count; unset: ask sched_getaffinity (tests set it).
  std::optional<int> affinity_cpus;
};

struct CpuBudget {
  int cpus = 1;  // at least 1
  std::optional<int> affinity_cpus;
  std::optional<int> quota_cpus;    // the cgroup quota, rounded up
  std::optional<int> request_cpus;  // the request, rounded up
  // Each source and what it gave, e.g. "cgroup cpu.max 150000/100000 → 2; affinity 2 CPUs;
  // request 1500m → 2" (also the sources that said nothing: "cgroup cpu.max max (no limit)").
  std::string reason;
};

CpuBudget cpu_budget(const CpuBudgetSources& sources = {});

// The request's environment variable (set by curfew's Helm chart), or unset.
inline constexpr char kCpuRequestEnvVar[] = "CURFEW_CPU_REQUEST_MILLICORES";
// CpuBudgetSources for this process: the real root, kCpuRequestEnvVar from the environment.
CpuBudgetSources cpu_budget_sources_from_environment();

}  // namespace curfew::rt
