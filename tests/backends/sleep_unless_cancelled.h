// Sleeping inside a synchronous gRPC handler without outliving the call.
//
// A sync handler that simply sleeps keeps its thread (and Server::Shutdown) busy long after the
// client gave up. Sleeping in short slices and checking ServerContext::IsCancelled() between them
// makes a cancelled or expired call release the handler within a few milliseconds.
#pragma once

#include <grpcpp/server_context.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace curfew::testing {

// How often a sleeping handler looks for cancellation: short enough for tests that measure
// cancellation latency, long enough not to spin.
inline constexpr std::chrono::milliseconds kCancellationPollInterval{2};

// Sleeps for `duration` unless the call is cancelled first. Returns false if it was (before or
// during the sleep), true if the whole duration elapsed with the call still live.
inline bool SleepUnlessCancelled(grpc::ServerContext* ctx, std::chrono::microseconds duration) {
  const auto end = std::chrono::steady_clock::now() + duration;
  while (!ctx->IsCancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return true;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(end - now, kCancellationPollInterval));
  }
  return false;
}

}  // namespace curfew::testing
