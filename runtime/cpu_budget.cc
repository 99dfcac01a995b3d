#include "runtime/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

namespace curfew::rt {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxCpus = 1 << 20;  // a bound for absurd quotas and requests

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// A whole decimal number, nothing else around it but whitespace.
std::optional<int64_t> parse_int(std::string_view s) {
  s = trim(s);
  int64_t value = 0;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || error != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
int clamp_cpus(int64_t n) { return static_cast<int>(std::clamp<int64_t>(n, 1, kMaxCpus)); }

// The file's contents (at most 4 KiB: every file read here is one short line); nullopt if it
// cannot be opened.
std::optional<std::string> read_small(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(4096, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

// For the log: a file's text, trimmed, on one line, at most 40 characters.
std::string shown(std::string_view text) {
  std::string out(trim(text).substr(0, 40));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c < ' ' || c > '~'; }, '?');
  return "'" + out + "'";
}

std::optional<int> affinity_cpus() {
  // The mask may be larger than cpu_set_t's 1024 CPUs: grow until the kernel's fits.
  for (int size = CPU_SETSIZE; size <= (1 << 18); size *= 2) {
    cpu_set_t* set = CPU_ALLOC(size);
    if (set == nullptr) return std::nullopt;
    const size_t bytes = CPU_ALLOC_SIZE(size);
    CPU_ZERO_S(bytes, set);
    const int rc = sched_getaffinity(0, bytes, set);
    const int count = rc == 0 ? CPU_COUNT_S(bytes, set) : 0;
    CPU_FREE(set);
    if (rc == 0) return count > 0 ? std::optional<int>(count) : std::nullopt;
    if (errno != EINVAL) return std::nullopt;
  }
  return std::nullopt;
}

// The process's cgroup: v1's cpu controller (its mount folder name and path) or v2's path.
struct OwnCgroup {
  bool v1 = false;
  std::string controllers;  // v1: "cpu,cpuacct", "cpu"
  std::string path;         // "/", "/kubepods/pod1/abc"
};

// An absolute path without "." or ".." (one that climbs out of the mount is malformed).
bool safe_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  std::istringstream parts{std::string(path)};
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part == "." || part == "..") return false;
  }
  return true;
}

std::optional<OwnCgroup> own_cgroup(const std::string& text) {
  std::optional<OwnCgroup> v1, v2;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string id = line.substr(0, first);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (!safe_path(path)) continue;
    if (id == "0" && controllers.empty()) {
      v2 = OwnCgroup{.v1 = false, .controllers = "", .path = path};
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == "cpu") v1 = OwnCgroup{.v1 = true, .controllers = controllers, .path = path};
    }
  }
  return v1 ? v1 : v2;  // on a hybrid host the cpu controller is v1's
}

// What one cgroup level says: a limit, no limit, no file, or a malformed file.
struct Level {
  enum Kind { kMissing, kUnlimited, kLimit, kMalformed } kind = kMissing;
  int64_t quota = 0, period = 0;
  std::string text;  // for the log: "cpu.max 150000/100000", "cpu.max 'abc'"
};

Level read_v2(const fs::path& dir) {
  const auto text = read_small(dir / "cpu.max");
  if (!text) return {};
  std::istringstream in{std::string(trim(*text))};
  std::string quota, period, extra;
  in >> quota >> period >> extra;
  const auto p = parse_int(period);
  const bool period_ok = period.empty() || (p && *p > 0);  // "max" alone: period left default
  if (quota == "max" && period_ok && extra.empty()) {
    return {.kind = Level::kUnlimited, .text = "cpu.max max"};
  }
  const auto q = parse_int(quota);
  if (q && *q > 0 && p && *p > 0 && extra.empty()) {
    return {.kind = Level::kLimit,
            .quota = *q,
            .period = *p,
            .text = "cpu.max " + quota + "/" + period};
  }
  return {.kind = Level::kMalformed, .text = "cpu.max " + shown(*text)};
}

Level read_v1(const fs::path& dir) {
  const auto quota_text = read_small(dir / "cpu.cfs_quota_us");
  if (!quota_text) return {};
  const auto quota = parse_int(*quota_text);
  if (quota && *quota == -1) return {.kind = Level::kUnlimited, .text = "cpu.cfs_quota_us -1"};
  if (!quota || *quota <= 0) {
    return {.kind = Level::kMalformed, .text = "cpu.cfs_quota_us " + shown(*quota_text)};
  }
  const auto period_text = read_small(dir / "cpu.cfs_period_us");
  const auto period = period_text ? parse_int(*period_text) : std::nullopt;
  if (!period || *period <= 0) {
    return {.kind = Level::kMalformed,
            .text = "cpu.cfs_period_us " + (period_text ? shown(*period_text) : "missing")};
  }
  return {.kind = Level::kLimit,
          .quota = *quota,
          .period = *period,
          .text = "cpu.cfs_quota_us/cpu.cfs_period_us " + std::to_string(*quota) + "/" +
                  std::to_string(*period)};
}

// The cgroup quota in CPUs (rounded up), and a description for the reason.
std::pair<std::optional<int>, std::string> quota_cpus(const fs::path& root) {
  const auto self = read_small(root / "proc/self/cgroup");
  if (!self) return {std::nullopt, "no /proc/self/cgroup"};
  const auto cgroup = own_cgroup(*self);
  if (!cgroup) return {std::nullopt, "no cpu cgroup in /proc/self/cgroup"};

  const fs::path base = root / "sys/fs/cgroup";
  fs::path mount = base;
  if (cgroup->v1) {
    mount = base / cgroup->controllers;
    std::error_code ec;
    if (!fs::is_directory(mount, ec)) mount = base / "cpu";
  }
  // The folders from the mount down to the process's cgroup. A path not under the mount: the
  // container sees its own cgroup as the mount's root (a cgroup namespace, or a v1 bind mount).
  std::vector<fs::path> dirs{mount};
  std::vector<std::string> names;
  {
    std::istringstream parts(cgroup->path);
    std::string part;
    while (std::getline(parts, part, '/')) {
      if (!part.empty()) names.push_back(part);
    }
  }
  std::error_code ec;
  if (fs::is_directory(mount / fs::path(cgroup->path).relative_path(), ec)) {
    for (const auto& n : names) dirs.push_back(dirs.back() / n);
  }
  const std::string version = cgroup->v1 ? "cgroup v1 " : "cgroup ";

  std::optional<int> best;
  std::string best_text, unlimited_text, malformed_text;
  for (size_t i = 0; i < dirs.size(); ++i) {
    const Level level = cgroup->v1 ? read_v1(dirs[i]) : read_v2(dirs[i]);
    const bool own = i + 1 == dirs.size();
    switch (level.kind) {
      case Level::kMissing:
        break;
      case Level::kUnlimited:
        if (own || unlimited_text.empty()) unlimited_text = level.text;
        break;
      case Level::kMalformed:
        malformed_text += "; " + version + level.text + " malformed, ignored";
        break;
      case Level::kLimit: {
        const int cpus = clamp_cpus(ceil_div(level.quota, level.period));
        if (!best || cpus < *best) {
          best = cpus;
          best_text = version + level.text + " → " + std::to_string(cpus);
          if (!own) {
            const std::string parent = dirs[i].lexically_relative(mount).generic_string();
            best_text += " (of parent " + (parent == "." ? "/" : "/" + parent) + ")";
          }
        }
        break;
      }
    }
  }
  if (best) return {best, best_text + malformed_text};
  if (!unlimited_text.empty())
    return {std::nullopt, version + unlimited_text + " (no limit)" + malformed_text};
  if (!malformed_text.empty()) return {std::nullopt, malformed_text.substr(2)};
  return {std::nullopt, version + "quota not found"};
}

}  // namespace

CpuBudget cpu_budget(const CpuBudgetSources& sources) {
  CpuBudget budget;
  std::vector<std::string> reasons;

  auto [quota, quota_text] = quota_cpus(fs::path(sources.root));
  budget.quota_cpus = quota;
  reasons.push_back(quota_text);

  budget.affinity_cpus = sources.affinity_cpus ? sources.affinity_cpus : affinity_cpus();
  if (budget.affinity_cpus && *budget.affinity_cpus <= 0) budget.affinity_cpus.reset();
  reasons.push_back(budget.affinity_cpus ? "affinity " + std::to_string(*budget.affinity_cpus) +
                                               (*budget.affinity_cpus == 1 ? " CPU" : " CPUs")
                                         : std::string("affinity unknown"));

  if (sources.request_millicores && !trim(*sources.request_millicores).empty()) {
    const std::string& text = *sources.request_millicores;
    const auto millis = parse_int(text);
    if (millis && *millis > 0) {
      budget.request_cpus = clamp_cpus(ceil_div(*millis, 1000));
      reasons.push_back("request " + std::to_string(*millis) + "m → " +
                        std::to_string(*budget.request_cpus));
    } else if (millis && *millis == 0) {
      reasons.push_back("request 0m (none)");
    } else {
      reasons.push_back("request " + shown(text) + " ignored (not a whole number of millicores)");
    }
  }

  std::optional<int> cpus;
  for (const auto& known : {budget.quota_cpus, budget.affinity_cpus, budget.request_cpus}) {
    if (known && (!cpus || *known < *cpus)) cpus = known;
  }
  if (!cpus) {
    cpus = static_cast<int>(std::thread::hardware_concurrency());
    reasons.push_back("hardware_concurrency " + std::to_string(*cpus));
  }
  budget.cpus = std::max(1, *cpus);
  for (size_t i = 0; i < reasons.size(); ++i) budget.reason += (i ? "; " : "") + reasons[i];
  return budget;
}

CpuBudgetSources cpu_budget_sources_from_environment() {
  CpuBudgetSources sources;
  if (const char* request = std::getenv(kCpuRequestEnvVar)) sources.request_millicores = request;
  return sources;
}

}  // namespace curfew::rt
