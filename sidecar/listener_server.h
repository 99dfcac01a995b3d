// ListenerServer: one configured listener — a grpc::Server on its address with an
// AsyncGenericService, served by a Runtime of its own whose every loop thread accepts calls and
// runs each as a ProxyCall task in the worker's task group.
//
// The routing is per worker (a copy of the shared_ptr that only that loop thread touches), so a
// call reads its routing without a lock; a reload posts the new routing to every loop.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "runtime/runtime.h"
#include "runtime/task_group.h"
#include "sidecar/call_report.h"
#include "sidecar/routing.h"
#include "sidecar/worker_state.h"

namespace curfew::sidecar {

class ListenerServer {
 public:
  struct Options {
    int workers = 1;
    CallObserver* observer = nullptr;               // may be null
    const std::atomic<bool>* shutting_down = nullptr;
  };

  // Binds the listener called `name` of `routing` and starts serving it.
  static absl::StatusOr<std::unique_ptr<ListenerServer>> start(
      std::shared_ptr<const Routing> routing, const std::string& name, Options options);
  ~ListenerServer();

  const std::string& name() const noexcept { return name_; }
  int port() const noexcept { return port_; }

  // Future calls use `routing`; calls in flight keep theirs. Thread-safe.
  void set_routing(std::shared_ptr<const Routing> routing);

  // Stops accepting, lets calls in flight run until `deadline`, cancels the rest (their
  // upstream calls are cancelled with them), and waits until everything is done. Blocking;
  // call it from a thread that is not one of the listener's loops.
  void shutdown(std::chrono::system_clock::time_point deadline);

 private:
  ListenerServer() = default;
  rt::Task<void> serve(int worker);
  rt::Task<void> accept_loop(int worker, rt::TaskGroup& calls);

  std::string name_;
  int port_ = 0;
  Options options_;
  grpc::AsyncGenericService service_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::shared_ptr<const Routing>> worker_routing_;  // [i]: loop i only
  std::vector<std::unique_ptr<WorkerState>> worker_state_;        // [i]: loop i only
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace curfew::sidecar
