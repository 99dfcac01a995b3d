#include "tls/internal/shared_fd_watch.h"

namespace curfew::tls::internal {
namespace {

// Ends a hold however the wait ends (edge or cancellation): a task behind it that did not get
// the edge retries its SSL call, so an edge taken by a cancelled holder is not lost.
class Release {
 public:
  explicit Release(bool& held, rt::Event& passed) noexcept : held_(held), passed_(passed) {}
  Release(const Release&) = delete;
  Release& operator=(const Release&) = delete;
  ~Release() {
    held_ = false;
    passed_.set();  // wakes every waiter now; later ones wait for the next hold
    passed_.clear();
  }

 private:
  bool& held_;
  rt::Event& passed_;
};

}  // namespace

rt::Task<void> SharedFdWatch::wait(Direction direction) {
  Slot& slot = slots_[static_cast<size_t>(direction)];
  if (slot.held) {
    co_await slot.passed.wait();
    co_return;
  }
  slot.held = true;
  const Release release(slot.held, slot.passed);
  if (direction == Direction::kIn) {
    co_await watch_.readable();
  } else {
    co_await watch_.writable();
  }
}

}  // namespace curfew::tls::internal
