// CqPoller: a loop's wait on a gRPC CompletionQueue. Each event is a Completion tag; the wake-up
// for cross-thread posts is an immediate grpc::Alarm.
#pragma once

#include <atomic>

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include "runtime/detail/completion.h"
#include "runtime/detail/poller.h"

namespace curfew::rt {

class CqPoller final : public Poller {
 public:
  // `cq` is owned by the caller and outlives the poller. `server_cq` is the same queue when a
  // grpc::ServerBuilder made it (needed to accept calls), else null.
  CqPoller(grpc::CompletionQueue& cq, grpc::ServerCompletionQueue* server_cq, WakeHandler on_wake)
      : cq_(cq), server_cq_(server_cq), on_wake_(std::move(on_wake)) {}

  grpc::CompletionQueue& cq() noexcept { return cq_; }
  grpc::ServerCompletionQueue* server_cq() noexcept { return server_cq_; }

  // Call right before handing `tag` to gRPC: counts it in flight (and tells TSan of the
  // hand-off through the uninstrumented queue).
  void tag_started(void* tag) noexcept {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    tsan::release(tag);
  }

  int wait(std::optional<Duration> timeout, int max_events) override;
  void wake() override;
  long in_flight() const noexcept override { return in_flight_.load(std::memory_order_acquire); }
  size_t close() override;

 private:
  class WakeTag final : public Completion {
   public:
    explicit WakeTag(CqPoller& poller) : poller_(poller) {}
    void complete(bool) override { poller_.on_wake_(); }

   private:
    CqPoller& poller_;
  };

  grpc::CompletionQueue& cq_;
  grpc::ServerCompletionQueue* server_cq_;
  WakeHandler on_wake_;
  std::atomic<long> in_flight_{0};
  grpc::Alarm wake_alarm_;
  WakeTag wake_tag_{*this};
};

}  // namespace curfew::rt
