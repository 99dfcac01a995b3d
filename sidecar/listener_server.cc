#include "sidecar/listener_server.h"

#include "absl/status/status.h"
#include "runtime/grpc_server.h"
#include "runtime/task_group.h"
#include "sidecar/proxy_call.h"

namespace curfew::sidecar {
namespace {

// Requests for calls kept outstanding per loop, so that a burst of new calls does not queue
// behind a single accept.
constexpr int kAcceptorsPerWorker = 4;

}  // namespace

absl::StatusOr<std::unique_ptr<ListenerServer>> ListenerServer::start(
    std::shared_ptr<const Routing> routing, const std::string& name, Options options) {
  const config::Listener* listener = routing->listener(name);
  if (listener == nullptr) return absl::NotFoundError("no listener named '" + name + "'");
  auto self = std::unique_ptr<ListenerServer>(new ListenerServer());
  self->name_ = name;
  self->options_ = options;

  grpc::ServerBuilder builder;
  builder.AddListeningPort(listener->address, grpc::InsecureServerCredentials(), &self->port_);
  builder.RegisterAsyncGenericService(&self->service_);
  builder.SetMaxReceiveMessageSize(listener->limits.max_message_bytes);
  builder.SetMaxSendMessageSize(listener->limits.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             listener->limits.max_concurrent_streams_per_connection);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, listener->limits.max_metadata_bytes);
  self->runtime_ = std::make_unique<rt::Runtime>(
      rt::RuntimeOptions{.threads = options.workers, .blocking_threads = 1, .server_builder = &builder});
  self->server_ = builder.BuildAndStart();
  if (self->server_ == nullptr || self->port_ == 0) {
    self->stopped_ = true;
    return absl::UnavailableError("listener '" + name + "': cannot listen on " +
                                  listener->address + " (address in use or not local?)");
  }
  self->worker_routing_.assign(options.workers, routing);
  for (int i = 0; i < options.workers; ++i) self->worker_state_.push_back(std::make_unique<WorkerState>());
  ListenerServer* raw = self.get();
  self->thread_ = std::thread([raw] {
    raw->runtime_->run([raw](int worker) { return raw->serve(worker); });
  });
  return self;
}

ListenerServer::~ListenerServer() {
  if (!stopped_) shutdown(std::chrono::system_clock::now());
}

void ListenerServer::set_routing(std::shared_ptr<const Routing> routing) {
  for (int i = 0; i < runtime_->threads(); ++i) {
    runtime_->loop(i).post_threadsafe([this, i, routing] { worker_routing_[i] = routing; });
  }
}

void ListenerServer::shutdown(std::chrono::system_clock::time_point deadline) {
  if (stopped_) return;
  stopped_ = true;
  if (server_) {
    // Refuses new calls (GOAWAY), waits for calls in flight until `deadline`, then cancels
    // them: each cancelled call's task cancels its upstream call.
    server_->Shutdown(deadline);
  }
  // Every pending accept has now failed, so the accept loops end and join their calls.
  if (thread_.joinable()) thread_.join();
  server_.reset();  // gRPC: a server goes before its completion queues
  runtime_->close();
}

rt::Task<void> ListenerServer::serve(int worker) {
  rt::TaskGroup calls;
  co_await calls.run([](ListenerServer& self, int worker, rt::TaskGroup& g) -> rt::Task<void> {
    for (int i = 0; i < kAcceptorsPerWorker; ++i) g.spawn(self.accept_loop(worker, g), "acceptor");
    co_return;
  }(*this, worker, calls));
}

rt::Task<void> ListenerServer::accept_loop(int worker, rt::TaskGroup& calls) {
  rt::Loop& loop = runtime_->loop(worker);
  while (rt::ServerCallPtr call = co_await rt::accept(service_, loop)) {
    const auto& routing = worker_routing_[worker];
    ProxyContext context{routing, routing->listener(name_), worker_state_[worker].get(),
                         options_.observer, options_.shutting_down};
    calls.spawn(proxy_call(std::move(call), std::move(context)), "call");
  }
}

}  // namespace curfew::sidecar
