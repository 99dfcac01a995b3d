// spawn_child(): starts a test's child process (curfew, a backend) so that it never outlives the
// test: the child asks the kernel to SIGKILL it when its parent dies (PR_SET_PDEATHSIG), which
// covers what no destructor can — a test that crashes, aborts, or is killed by ctest's timeout.
// (The death signal follows the forking *thread*: spawn from the test's own thread.)
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace curfew::testing {

// Runs argv[0] (a path) with `argv` and the environment `env` (the parent's when empty), stdin
// from `input`, stdout and stderr to `log` (truncated, or appended to with `append`). Returns the
// pid once the child has exec'd (its log is then already truncated and its own), or -1.
inline pid_t spawn_child(const std::vector<std::string>& argv, const std::string& log,
                         const std::string& input = "/dev/null",
                         const std::vector<std::string>& env = {}, bool append = false) {
  const int log_flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  // Everything the child needs is built before fork(): between fork and exec only
  // async-signal-safe calls.
  std::vector<std::string> args_copy = argv, env_copy = env;
  std::vector<char*> args, envp;
  for (auto& a : args_copy) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* const* environment = env.empty() ? environ : envp.data();
  // Closed by a successful exec (O_CLOEXEC): the parent waits for that, as posix_spawn does, so
  // it never reads a log the child has not yet truncated, nor signals a child not yet running
  // the program.
  int exec_done[2];
  if (pipe2(exec_done, O_CLOEXEC) != 0) return -1;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) {  // the parent (pid -1: fork failed)
    close(exec_done[1]);
    char failed = 0;
    ssize_t n;
    while ((n = read(exec_done[0], &failed, 1)) < 0 && errno == EINTR) {
    }
    close(exec_done[0]);
    if (pid > 0 && n == 1) {  // the child could not exec
      waitpid(pid, nullptr, 0);
      return -1;
    }
    return pid;
  }
  close(exec_done[0]);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const char failed = 1;
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
  const int in = open(input.c_str(), O_RDONLY);
  const int out = open(log.c_str(), log_flags, 0644);
  if (in < 0 || out < 0) {
    (void)!write(exec_done[1], &failed, 1);
    _exit(127);
  }
  dup2(in, 0);
  dup2(out, 1);
  dup2(out, 2);
  if (in > 2) close(in);
  if (out > 2) close(out);
  execve(args[0], args.data(), environment);
  (void)!write(exec_done[1], &failed, 1);
  _exit(127);
}

}  // namespace curfew::testing
