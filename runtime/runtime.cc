#include "runtime/runtime.h"

#include <stdexcept>

namespace curfew::rt {

// One loop thread's root task.
class Runtime::Worker final : private detail::SpawnObserver {
 public:
  Worker(Runtime& runtime, int index) : runtime_(runtime), index_(index) {}

  void run(Task<void> root) {
    Loop& loop = runtime_.loop(index_);
    root_ = new detail::Spawned<void>(std::move(root), loop, "root-" + std::to_string(index_),
                                      nullptr, false, *this);
    root_->add_ref();
    root_->start();
    loop.run(finished_);
  }

  // On the loop thread.
  void cancel(const std::string& reason) {
    if (root_ != nullptr && !root_->done()) root_->cancel(reason);
  }

  ~Worker() {
    if (root_ != nullptr) root_->release();
  }

 private:
  void spawned_finished(detail::SpawnedBase& task) noexcept override {
    finished_ = true;
    if (task.error() && !is_cancellation(task.error()))
      runtime_.record_failure(index_, task.error());
  }

  Runtime& runtime_;
  int index_;
  detail::Spawned<void>* root_ = nullptr;
  bool finished_ = false;
};

Runtime::Runtime(RuntimeOptions options) {
  if (options.threads < 1) throw std::invalid_argument("Runtime: threads must be >= 1");
  pool_ = std::make_unique<BlockingPool>(options.blocking_threads);
  for (int i = 0; i < options.threads; ++i) {
    loops_.push_back(std::make_unique<Loop>(*pool_, i));
    loops_.back()->set_busy_poll(options.busy_poll);
    workers_.push_back(std::make_unique<Worker>(*this, i));
  }
}

Runtime::~Runtime() {
  close();
  pool_.reset();  // joins: no blocking job can post to a loop after this
  workers_.clear();
  loops_.clear();
}

size_t Runtime::close() {
  if (closed_) return 0;
  closed_ = true;
  for (auto& loop : loops_) leftover_ += loop->close();
  return leftover_;
}

void Runtime::record_failure(int, std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_failure_) return;
    first_failure_ = error;
  }
  cancel("another root task failed");
}

void Runtime::cancel(const std::string& reason) {
  for (size_t i = 0; i < loops_.size(); ++i) {
    Worker* worker = workers_[i].get();
    loops_[i]->post_threadsafe([worker, reason] { worker->cancel(reason); });
  }
}

void Runtime::run(const std::function<Task<void>(int worker)>& root) {
  if (ran_) throw std::logic_error("Runtime::run() called twice");
  ran_ = true;
  std::vector<std::thread> others;
  for (int i = 1; i < threads(); ++i) {
    others.emplace_back([this, i, task = root(i)]() mutable { workers_[i]->run(std::move(task)); });
  }
  workers_[0]->run(root(0));
  for (auto& t : others) t.join();
  if (first_failure_) std::rethrow_exception(first_failure_);
}

}  // namespace curfew::rt
