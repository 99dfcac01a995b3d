// A mirror's shadow copy of a call, detached from it: the caller's reply never waits for the
// shadow, nor does the call's duration or concurrency slot count it. The shadow owns copies of
// what it sends (the call's server context goes away with the call), is bounded by the call's
// upstream deadline, is refused beyond kMaxShadowsInFlight per worker (the call goes on without
// its copy, counted), and is cancelled when its listener shuts down.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/clock.h"
#include "runtime/task.h"
#include "sidecar/call_report.h"
#include "sidecar/internal/routing.h"

namespace curfew::sidecar {

class UpstreamPool;
class WorkerState;

inline constexpr int kMaxShadowsInFlight = 256;  // per worker thread

// Everything a shadow needs, owned: it outlives the call it copies.
struct ShadowCopy {
  std::shared_ptr<const Routing> routing;  // keeps the names and the shadow upstream alive
  const std::string* listener = nullptr;   // inside `routing`
  const std::string* route = nullptr;      // inside `routing`
  const std::string* upstream = nullptr;   // inside `routing`: the mirror's upstream
  std::string method;
  std::string message;
  std::vector<std::pair<std::string, std::string>> metadata;  // the caller's, as UnaryRequest
  rt::TimePoint deadline{};
  bool compressed = false;
  UpstreamPool* pool = nullptr;  // the loop's connections, which outlive its shadows
};

// Starts `copy` on the calling loop thread's worker, detached from the caller's call. False
// (nothing started) when the worker already has kMaxShadowsInFlight shadows or is shutting down.
bool start_shadow(WorkerState& worker, ShadowCopy copy, CallObserver* observer);

}  // namespace curfew::sidecar
