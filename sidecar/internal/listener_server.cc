#include "sidecar/internal/listener_server.h"

#include <algorithm>

#include "absl/status/status.h"
#include "runtime/clock.h"
#include "runtime/grpc_server.h"
#include "runtime/task_group.h"
#include "sidecar/internal/proxy_call.h"
#include "sidecar/internal/report_on_exit.h"

namespace curfew::sidecar {
namespace {

// Requests for calls kept outstanding per loop, so that a burst of new calls does not queue
// behind a single accept.
constexpr int kAcceptorsPerWorker = 4;

const std::shared_ptr<ConcurrencyLimit> kNoLimit;

// Runs an admitted call; its slots are given back when it ends, however it ends.
rt::Task<void> admitted(rt::ServerCallPtr call, ProxyContext context, CallSlots slots) {
  co_await proxy_call(std::move(call), std::move(context));
}

// Refuses a call over a concurrency limit: RESOURCE_EXHAUSTED at once, no upstream called. The
// refusal is reported like any call (started, then finished with `rejected` set).
rt::Task<void> reject(rt::ServerCallPtr call, std::shared_ptr<const Routing> routing,
                      const config::Listener& listener, const config::Route* route, Rejection why,
                      CallObserver* observer) {
  CallReport report;
  report.listener = &listener.name;
  report.route = route ? &route->name : nullptr;
  report.rejected = why;
  report.code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  if (observer) observer->call_started(listener.name, report.route);
  ReportOnExit deliver(report, *call, observer);  // however the finish ends
  const std::string message = refusal_message(listener, route, why);
  co_await call->finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, message));
}

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
  // Nothing reads channelz here (no channelz service is registered); keeping it on costs every
  // call and every write a few counter updates and clock reads.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  // curfew enforces every call's deadline itself (the caller's included, see decide_deadline)
  // and answers it with a complete status. gRPC's own server deadline check would cancel the
  // call from under a response in flight: its transport then writes the status ahead of the
  // message bytes still queued, and the caller gets a message cut short.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_DEADLINE_CHECKS, 0);
  self->runtime_ =
      std::make_unique<rt::Runtime>(rt::RuntimeOptions{.threads = options.workers,
                                                       .blocking_threads = 1,
                                                       .server_builder = &builder,
                                                       .busy_poll = options.busy_poll});
  self->server_ = builder.BuildAndStart();
  if (self->server_ == nullptr || self->port_ == 0) {
    self->stopped_ = true;
    return absl::UnavailableError("listener '" + name + "': cannot listen on " + listener->address +
                                  " (address in use or not local?)");
  }
  self->worker_routing_.assign(options.workers, self->worker_routing_for(routing));
  for (int i = 0; i < options.workers; ++i)
    self->worker_state_.push_back(std::make_unique<WorkerState>());
  ListenerServer* raw = self.get();
  self->thread_ =
      std::thread([raw] { raw->runtime_->run([raw](int worker) { return raw->serve(worker); }); });
  return self;
}

ListenerServer::~ListenerServer() {
  if (!stopped_) shutdown(std::chrono::system_clock::now());
}

void ListenerServer::set_routing(std::shared_ptr<const Routing> routing) {
  const WorkerRouting next = worker_routing_for(std::move(routing));
  for (int i = 0; i < runtime_->threads(); ++i) {
    runtime_->loop(i).post_threadsafe([this, i, next] {
      worker_routing_[i] = next;
      worker_state_[i]->prune(*next.routing->listener(name_));
    });
  }
}

size_t ListenerServer::route_limits_kept() { return route_limits_.kept(); }

ListenerServer::WorkerRouting ListenerServer::worker_routing_for(
    std::shared_ptr<const Routing> routing) {
  WorkerRouting out;
  out.route_limits = route_limits_.for_listener(*routing->listener(name_));
  out.routing = std::move(routing);
  return out;
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
  // Shadows (mirror copies) outlive their calls: they run in a group of their own around the
  // calls' group, and are cancelled once every call has ended (the listener shutting down).
  rt::TaskGroup shadows;
  co_await shadows.run(serve_calls(worker, shadows));
}

rt::Task<void> ListenerServer::serve_calls(int worker, rt::TaskGroup& shadows) {
  struct Shadows {  // open for new shadows while the calls run; then, however they end, closed
    WorkerState& state;
    Shadows(WorkerState& s, rt::TaskGroup& group) : state(s) { state.shadows = &group; }
    ~Shadows() {
      state.shadows = nullptr;
      state.cancel_shadows();
    }
  } open_shadows(*worker_state_[worker], shadows);
  rt::TaskGroup calls;
  co_await calls.run([](ListenerServer& self, int worker, rt::TaskGroup& g) -> rt::Task<void> {
    for (int i = 0; i < kAcceptorsPerWorker; ++i) g.spawn(self.accept_loop(worker, g), "acceptor");
    co_return;
  }(*this, worker, calls));
}

rt::Task<void> ListenerServer::accept_loop(int worker, rt::TaskGroup& calls) {
  rt::Loop& loop = runtime_->loop(worker);
  while (rt::ServerCallPtr call = co_await rt::accept(service_, loop)) {
    const WorkerRouting& current = worker_routing_[worker];
    const config::Listener* listener = current.routing->listener(name_);
    // Admission: a slot of the listener's limit, then of the route's, or RESOURCE_EXHAUSTED now.
    const config::Route* route = listener->route_for(call->method());
    const std::shared_ptr<ConcurrencyLimit>& route_limit =
        route ? current.route_limits[static_cast<size_t>(route - listener->routes.data())]
              : kNoLimit;
    if (!listener_limit_.try_acquire(listener->limits.max_concurrent_calls)) {
      calls.spawn(reject(std::move(call), current.routing, *listener, route,
                         Rejection::kListenerLimit, options_.observer),
                  "rejected");
      continue;
    }
    if (route_limit && !route_limit->try_acquire(*route->max_concurrent_calls)) {
      listener_limit_.release();
      calls.spawn(reject(std::move(call), current.routing, *listener, route, Rejection::kRouteLimit,
                         options_.observer),
                  "rejected");
      continue;
    }
    ProxyContext context{current.routing, listener, worker_state_[worker].get(), options_.observer,
                         options_.shutting_down};
    calls.spawn(
        admitted(std::move(call), std::move(context), CallSlots(&listener_limit_, route_limit)),
        "call");
  }
}

}  // namespace curfew::sidecar
