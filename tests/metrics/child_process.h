// ChildProcess: any program run as a child (promtool, prometheus), output to a file; and
// run_command() for one that runs to completion. Every wait is bounded.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "curfew_process.h"  // read_file, TempDir

#include "spawn_child.h"

namespace curfew::testing {

class ChildProcess {
 public:
  // Runs `argv` (argv[0] a path) with stdout and stderr to `log`, stdin from `input` (or
  // /dev/null).
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log,
               std::optional<std::filesystem::path> input = std::nullopt)
      : log_(std::move(log)) {
    pid_ = spawn_child(argv, log_.string(), input ? input->string() : "/dev/null");
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }

  // The exit code once it has exited within `limit` (128 + signal if killed); nullopt if not.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    if (exit_code_ || pid_ <= 0) return exit_code_;
    const auto until = std::chrono::steady_clock::now() + limit;
    do {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < until);
    return std::nullopt;
  }

  // SIGTERM, up to 10 s to exit, then SIGKILL.
  void stop() {
    if (pid_ <= 0 || exit_code_) return;
    kill(pid_, SIGTERM);
    if (!wait_exit(std::chrono::seconds(10))) {
      kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(10));
    }
  }

  std::string output() const { return read_file(log_); }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

struct CommandResult {
  std::optional<int> exit_code;  // nullopt: did not finish in time (killed)
  std::string output;            // stdout and stderr
};

// Runs `argv` to completion (at most `limit`), stdin from `input`.
inline CommandResult run_command(std::vector<std::string> argv, const TempDir& dir,
                                 std::optional<std::filesystem::path> input = std::nullopt,
                                 std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  static int runs = 0;
  const auto log = dir.path() / ("command-" + std::to_string(++runs) + ".log");
  ChildProcess p(std::move(argv), log, std::move(input));
  CommandResult r;
  r.exit_code = p.wait_exit(limit);
  if (!r.exit_code) p.stop();
  r.output = p.output();
  return r;
}

}  // namespace curfew::testing
