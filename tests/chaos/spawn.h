// curfew-chaos: child processes that die with the test (spawn_child: PR_SET_PDEATHSIG), and
// SIGKILL from the destructor. Spawn from the main thread only: the death signal follows the
// thread that forked.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "spawn_child.h"

namespace curfew::chaos {

class Process {
 public:
  // Runs argv (argv[0] a path) with stdout+stderr to `log` (appended to with `append`), stdin from
  // /dev/null, the environment plus `extra_env` ("KEY=value", replacing KEY).
  Process(std::vector<std::string> argv, const std::filesystem::path& log,
          const std::vector<std::string>& extra_env = {}, bool append = false)
      : log_(log) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    for (const auto& e : extra_env) {
      const std::string key = e.substr(0, e.find('=') + 1);
      std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
      env.push_back(e);
    }
    pid_ = testing::spawn_child(argv, log.string(), "/dev/null", env, append);
  }
  ~Process() { kill_now(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const {
    if (pid_ > 0 && !exit_code_) kill(pid_, sig);
  }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

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

  // The exit code (128 + signal) once it exits within `limit`; nullopt otherwise.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (running() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_code_;
  }

  // SIGKILL and reap (bounded: a SIGKILLed process always goes).
  void kill_now() {
    if (pid_ <= 0 || exit_code_) return;
    kill(pid_, SIGKILL);
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) exit_code_ = 128 + SIGKILL;
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

}  // namespace curfew::chaos
