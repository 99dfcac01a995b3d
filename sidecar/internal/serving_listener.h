// ServingListener: what the Sidecar needs of a listener, whichever data path serves it
// (listener_server.h on gRPC, h2_listener_server.h on nghttp2).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "sidecar/internal/routing.h"

namespace curfew::sidecar {

class ServingListener {
 public:
  virtual ~ServingListener() = default;
  virtual const std::string& name() const noexcept = 0;
  virtual int port() const noexcept = 0;
  // Future calls use `routing`; calls in flight keep theirs. Thread-safe.
  virtual void set_routing(std::shared_ptr<const Routing> routing) = 0;
  // Stops accepting, lets calls in flight run until `deadline`, cancels the rest, and waits
  // until everything is done. Blocking; not from one of the listener's loops.
  virtual void shutdown(std::chrono::system_clock::time_point deadline) = 0;
};

}  // namespace curfew::sidecar
