// spawn_child(): starts a test's child process (curfew, a backend) so that it never outlives the
// test: the child asks the kernel to SIGKILL it when its parent dies (PR_SET_PDEATHSIG), which
// covers what no destructor can — a test that crashes, aborts, or is killed by ctest's timeout.
// (The death signal follows the forking *thread*: spawn from the test's own thread.)
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace curfew::testing {

// Runs argv[0] (a path) with `argv` and the environment `env` (the parent's when empty), stdin
// from `input`, stdout and stderr to `log` (truncated). Returns the pid, or -1.
inline pid_t spawn_child(const std::vector<std::string>& argv, const std::string& log,
                         const std::string& input = "/dev/null",
                         const std::vector<std::string>& env = {}) {
  // Everything the child needs is built before fork(): between fork and exec only
  // async-signal-safe calls.
  std::vector<std::string> args_copy = argv, env_copy = env;
  std::vector<char*> args, envp;
  for (auto& a : args_copy) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* const* environment = env.empty() ? environ : envp.data();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;  // the parent (or -1)
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
  const int in = open(input.c_str(), O_RDONLY);
  const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0) _exit(127);
  dup2(in, 0);
  dup2(out, 1);
  dup2(out, 2);
  if (in > 2) close(in);
  if (out > 2) close(out);
  execve(args[0], args.data(), environment);
  _exit(127);
}

}  // namespace curfew::testing
