// The real curfew binary under test, as a child process with its admin server on 127.0.0.1:0:
// its metrics (scraped over HTTP), its memory (VmRSS) and open file descriptors (/proc), its
// log, and a clean exit. Also any other program as a child (the demo backend, to SIGKILL it).
//
// Every wait here is bounded.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exposition.h"
#include "spawn_child.h"

extern char** environ;

namespace curfew::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A child process with stdout+stderr to `log` (appended to with `append`), the environment plus
// `extra_env` ("KEY=value", replacing KEY). It dies with this process (spawn_child); the
// destructor SIGKILLs it if still running.
class Child {
 public:
  Child(std::vector<std::string> argv, std::filesystem::path log,
        std::vector<std::string> extra_env = {}, bool append = false)
      : log_(std::move(log)) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    for (auto& e : extra_env) {
      const std::string key = e.substr(0, e.find('=') + 1);
      std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
      env.push_back(e);
    }
    pid_ = spawn_child(argv, log_.string(), "/dev/null", env, append);
  }
  ~Child() { kill_now(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const {
    if (pid_ > 0 && !exit_code_) kill(pid_, sig);
  }
  std::string output() const { return slurp(log_); }

  bool running() {
    if (pid_ <= 0 || exit_code_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }

  std::optional<int> exit_code() const { return exit_code_; }

  // SIGKILL and reap (bounded: a SIGKILLed process always goes).
  void kill_now() {
    if (pid_ <= 0 || exit_code_) return;
    kill(pid_, SIGKILL);
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) exit_code_ = 128 + SIGKILL;
  }

  // The exit code (128 + signal when killed) once it exits within `limit`; nullopt otherwise.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (running() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_code_;
  }

  bool wait_output(const std::string& text, std::chrono::milliseconds limit) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    do {
      if (output().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }

  // From /proc: resident memory in KiB, open file descriptors; -1 if unavailable.
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
  }
  int open_fds() const {
    DIR* d = opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str());
    if (!d) return -1;
    int n = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    return n;
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Sanitizer findings in a log (ASan, LSan, UBSan, TSan); empty when there are none.
inline std::string sanitizer_reports(const std::string& log) {
  std::string found;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("ERROR: AddressSanitizer") != std::string::npos ||
        line.find("ERROR: LeakSanitizer") != std::string::npos ||
        line.find("WARNING: ThreadSanitizer") != std::string::npos ||
        line.find("runtime error:") != std::string::npos) {
      found += line + "\n";
    }
  }
  return found;
}

// Settings for a sanitized child, so that memory measurements see what the program holds rather
// than ASan's bookkeeping: a small quarantine (freed memory ASan keeps back to catch
// use-after-free), and allocation/free stacks of 5 frames (ASan keeps every distinct allocation
// stack it ever saw: with 30 frames that store grows for minutes as new paths show up, ~0.25 MB/s
// in the soak; reports still show the full stack of the bad access). Other options are kept from
// the environment. Harmless for other builds.
inline std::vector<std::string> measurable_child_env() {
  const char* asan = std::getenv("ASAN_OPTIONS");
  std::string options = asan ? asan : "";
  if (!options.empty()) options += ":";
  options += "quarantine_size_mb=16:thread_local_quarantine_size_kb=256:malloc_context_size=5";
  return {"ASAN_OPTIONS=" + options};
}

class CurfewBinary {
 public:
  // Writes `config_text` (its admin address should be 127.0.0.1:0) to DIR/curfew.yaml and starts
  // curfew on it; ok() once its admin server is up.
  CurfewBinary(const std::filesystem::path& dir, const std::string& config_text,
               std::vector<std::string> extra_args = {}, std::string binary = default_binary())
      : config_(dir / "curfew.yaml") {
    write_config(config_text);
    std::vector<std::string> argv{binary, "--config", config_.string()};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<Child>(argv, dir / "curfew.log", measurable_child_env());
    if (!process_->wait_output("admin (/metrics /healthz /readyz) serving",
                               std::chrono::seconds(30))) {
      return;
    }
    std::smatch m;
    const std::string out = process_->output();
    if (std::regex_search(
            out, m,
            std::regex(R"(admin \(/metrics /healthz /readyz\) serving on \S+ \(port (\d+)\))"))) {
      admin_port_ = std::stoi(m[1]);
    }
  }

  static std::string default_binary() {
#ifdef CURFEW_BINARY
    return CURFEW_BINARY;
#else
    return "curfew";
#endif
  }

  bool ok() const { return admin_port_ > 0; }

 private:
  // In one step (rename), as a ConfigMap update is seen.
  void write_config(const std::string& config_text) const {
    std::ofstream(config_.string() + ".tmp") << config_text;
    std::filesystem::rename(config_.string() + ".tmp", config_);
  }

 public:
  int admin_port() const { return admin_port_; }
  Child& process() { return *process_; }
  const std::filesystem::path& config_path() const { return config_; }

  // Replaces the config file in one step and sends SIGHUP.
  void reload(const std::string& config_text) {
    write_config(config_text);
    process_->signal(SIGHUP);
  }

  std::optional<Exposition> scrape() const {
    httplib::Client c("127.0.0.1", admin_port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    auto res = c.Get("/metrics");
    if (!res || res->status != 200) return std::nullopt;
    return Exposition(res->body);
  }

  // Sum over the series of `name` whose labels include `match`; -1 when the scrape failed.
  double sum(const std::string& name, const Labels& match = {}) const {
    auto e = scrape();
    return e ? e->sum(name, match) : -1;
  }

  // Waits (bounded) until sum(name, match) == value.
  bool wait_sum(const std::string& name, const Labels& match, double value,
                std::chrono::milliseconds limit = std::chrono::seconds(10)) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    do {
      if (sum(name, match) == value) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }

  // SIGTERM, then the exit code (nullopt if it did not exit within `limit`).
  std::optional<int> stop(std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    process_->signal(SIGTERM);
    return process_->wait_exit(limit);
  }

 private:
  std::filesystem::path config_;
  std::unique_ptr<Child> process_;
  int admin_port_ = 0;
};

}  // namespace curfew::testing
