// BlockingPool: a fixed set of threads for blocking work (file I/O, DNS, CPU-heavy transforms),
// so that no loop thread ever blocks. Used through to_thread().
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace curfew::rt {

class BlockingPool {
 public:
  explicit BlockingPool(int threads);
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;
  // Finishes the job running on each thread, drops the queued ones, joins the threads.
  ~BlockingPool();

  // Queues `job` for a pool thread. Jobs are run in FIFO order, at most threads() at a time.
  void submit(std::function<void()> job);
  int threads() const noexcept { return static_cast<int>(workers_.size()); }

 private:
  void work();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace curfew::rt
