#include "sidecar/internal/h2_listener_server.h"

#include <netdb.h>
#include <unistd.h>

#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

#include "runtime/errors.h"
#include "runtime/sleep.h"
#include "runtime/task_group.h"
#include "sidecar/internal/h2_proxy_call.h"
#include "sidecar/log.h"
#include "wire/percent_encoding.h"

namespace curfew::sidecar {
namespace {

// Accept failures such as EMFILE: wait this long before trying again, so a descriptor shortage
// does not spin the acceptor.
constexpr rt::Duration kAcceptBackoff = std::chrono::milliseconds(50);
constexpr int kClosureLogsPerSecond = 10;

// Every address form the config accepts for a listener: an IP literal, "*" (every address, IPv6
// and IPv4: a dual-stack socket), or a name (its first address, resolved once at start).
rt::SocketAddress listen_address(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  const std::string port = colon == std::string::npos ? address : address.substr(colon + 1);
  if (host == "*" || host.empty()) return rt::SocketAddress::parse("[::]:" + port);
  try {
    return rt::SocketAddress::parse(address);
  } catch (const std::invalid_argument&) {
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rv = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rv != 0)
    throw std::invalid_argument("cannot resolve \"" + host + "\": " + ::gai_strerror(rv));
  rt::SocketAddress out;
  std::memcpy(&out.storage, found->ai_addr, found->ai_addrlen);
  out.length = found->ai_addrlen;
  ::freeaddrinfo(found);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<H2ListenerServer>> H2ListenerServer::start(
    std::shared_ptr<const Routing> routing, const std::string& name, Options options) {
  const config::Listener* listener = routing->listener(name);
  if (listener == nullptr) return absl::NotFoundError("no listener named '" + name + "'");
  auto self = std::unique_ptr<H2ListenerServer>(new H2ListenerServer());
  self->name_ = name;
  self->options_ = options;

  self->caller_limits_ = caller_session_limits(*listener);
  H2DataPlane& plane = *options.plane;
  const auto route_limits = self->route_limits_.for_listener(*listener);
  for (int i = 0; i < plane.loops(); ++i) {
    self->workers_.push_back(std::make_unique<Worker>());
    self->workers_.back()->routing = routing;
    self->workers_.back()->route_limits = route_limits;
  }
  try {
    // Registered with loop 0's epoll from this thread (epoll_ctl is thread-safe, and the kernel
    // orders it before any event loop 0 reads for it); from then on only loop 0 touches it.
    self->listener_.emplace(rt::Listener::bind(plane.loop(0), listen_address(listener->address)));
  } catch (const std::exception& e) {
    return absl::UnavailableError("listener '" + name + "': cannot listen on " + listener->address +
                                  ": " + e.what());
  }
  const std::string bound = self->listener_->local_address().to_string();
  self->port_ = std::stoi(bound.substr(bound.rfind(':') + 1));
  H2ListenerServer* raw = self.get();
  for (int i = 0; i < plane.loops(); ++i) {
    raw->workers_[i]->running = true;  // until serve(i)'s frame goes
    const bool started = plane.start_on(
        i,
        [raw, i] {  // on loop i
          std::optional<rt::Listener> listener;
          if (i == 0 && raw->listener_) {
            listener.emplace(std::move(*raw->listener_));
            raw->listener_.reset();
          }
          return raw->serve(i, RunningMark(raw->workers_[i]->running), std::move(listener));
        },
        [raw, i](rt::TaskHandle<void> task) { raw->workers_[i]->task = std::move(task); });
    if (!started) raw->workers_[i]->running = false;
  }
  return self;
}

h2::SessionLimits caller_session_limits(const config::Listener& listener) {
  h2::SessionLimits callers;
  callers.max_concurrent_streams =
      static_cast<uint32_t>(listener.limits.max_concurrent_streams_per_connection);
  callers.max_header_list_bytes = static_cast<uint32_t>(listener.limits.max_metadata_bytes);
  callers.max_send_header_block_bytes =
      std::max<size_t>(callers.max_send_header_block_bytes, listener.limits.max_metadata_bytes);
  const config::ConnectionLimits& c = listener.limits.connection;
  callers.handshake_timeout = c.handshake_timeout;
  callers.headers_timeout = c.headers_timeout;
  callers.max_age = c.max_age;
  callers.max_age_grace = c.max_age_grace;
  callers.control_frame_burst = static_cast<uint32_t>(c.control_frame_burst);
  callers.control_frames_per_second = static_cast<uint32_t>(c.control_frames_per_second);
  callers.reset_burst = static_cast<uint64_t>(c.resets_per_second);
  callers.reset_rate_per_second = static_cast<uint64_t>(c.resets_per_second);
  callers.rapid_reset_min_streams = static_cast<uint32_t>(c.rapid_reset_min_streams);
  callers.rapid_reset_percent = static_cast<uint32_t>(c.rapid_reset_percent);
  callers.max_continuations = static_cast<size_t>(c.max_continuations);
  return callers;
}

h2::SessionLimits upstream_session_limits(const config::Config& config) {
  // An upstream's headers may be as large as what any listener accepts from its callers.
  h2::SessionLimits upstreams;
  for (const config::Listener& l : config.listeners) {
    const h2::SessionLimits callers = caller_session_limits(l);
    upstreams.max_header_list_bytes =
        std::max(upstreams.max_header_list_bytes, callers.max_header_list_bytes);
    upstreams.max_send_header_block_bytes =
        std::max(upstreams.max_send_header_block_bytes, callers.max_send_header_block_bytes);
  }
  return upstreams;
}

H2ListenerServer::~H2ListenerServer() {
  if (!stopped_) shutdown(std::chrono::system_clock::now());
}

void H2ListenerServer::set_routing(std::shared_ptr<const Routing> routing) {
  const auto route_limits = route_limits_.for_listener(*routing->listener(name_));
  for (int i = 0; i < options_.plane->loops(); ++i) {
    options_.plane->loop(i).post_threadsafe([this, i, routing, route_limits] {
      workers_[i]->routing = routing;
      workers_[i]->route_limits = route_limits;
      workers_[i]->state.prune(*routing->listener(name_));
      // Upstreams the new configuration dropped or changed drain (loop i's connections).
      options_.plane->pool(i).retain(*routing);
    });
  }
}

void H2ListenerServer::shutdown(std::chrono::system_clock::time_point deadline) {
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  for (int i = 0; i < options_.plane->loops(); ++i) {
    options_.plane->loop(i).post_threadsafe([this, i] {
      if (i == 0 && accept_.valid()) accept_.cancel("the listener is shutting down");
      for (h2::Session* s : workers_[i]->sessions) s->shutdown();
    });
  }
  // Calls in flight finish on their own until the deadline (bounded by it); connections close
  // once their GOAWAY is out and their last stream ended, so the GOAWAY reaches every caller.
  auto connections = [this] {
    int n = 0;
    for (const auto& w : workers_) n += w->connections.load(std::memory_order_relaxed);
    return n;
  };
  while ((calls_in_flight() > 0 || connections() > 0) &&
         std::chrono::system_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  stop_workers();
}

void H2ListenerServer::stop_workers() {
  for (int i = 0; i < options_.plane->loops(); ++i) {
    const bool posted = options_.plane->loop(i).post_threadsafe([this, i] {
      if (workers_[i]->task.valid()) workers_[i]->task.cancel("the listener is shutting down");
    });
    if (!posted) workers_[i]->running = false;  // the plane has stopped: nothing runs there
  }
  // serve(i) refers to this object: it must have ended before the listener goes. Cancellation
  // reaches every suspended task at once (every cancelled operation completes), so this wait is
  // short; it is logged if it is not.
  for (int turn = 0;; ++turn) {
    bool running = false;
    for (const auto& w : workers_) running = running || w->running.load(std::memory_order_acquire);
    if (!running) break;
    if (turn > 0 && turn % 5000 == 0)
      log(LogLevel::kWarning,
          "curfew: listener '" + name_ + "' still waiting for its tasks to end");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Closures posted for this listener (a hand-over, a routing update, the shutdown's own) may
  // still wait in a loop's queue, and the loops still hold the serve tasks' last references:
  // once every loop has run what was posted before now, none of it touches this object again.
  options_.plane->barrier();
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->task = rt::TaskHandle<void>();
    for (const auto& a : workers_[i]->arrived) {  // handed over after serve(i) ended
      ::close(a.fd);
      options_.plane->connection_ended(static_cast<int>(i));
    }
    workers_[i]->arrived.clear();
  }
}

rt::Task<void> H2ListenerServer::serve(int worker, RunningMark /*in the frame*/,
                                       std::optional<rt::Listener> listener) {
  // Shadows (mirror copies) outlive their calls: they run in a group of their own around the
  // connections' group, and end with the listener (cancelled at shutdown).
  Worker& w = *workers_[worker];
  if (stopping_.load(std::memory_order_relaxed)) co_return;  // stopped before it began
  rt::TaskGroup shadows;
  struct Shadows {
    WorkerState& state;
    ~Shadows() { state.shadows = nullptr; }
  } registered{w.state};
  w.state.shadows = &shadows;
  co_await shadows.run(serve_connections(worker, listener));
}

rt::Task<void> H2ListenerServer::serve_connections(int worker,
                                                   std::optional<rt::Listener>& listener) {
  rt::TaskGroup group;
  co_await group.run(serve_loop(worker, group, listener));
}

// `listener` lives in serve(worker)'s frame, which outlives this task.
rt::Task<void> H2ListenerServer::serve_loop(int worker, rt::TaskGroup& group,
                                            std::optional<rt::Listener>& listener) {
  Worker& w = *workers_[worker];  // owned by this server, which outlives serve(worker)
  if (listener) accept_ = group.spawn(accept_loop(std::move(*listener)), "accept");
  for (;;) {  // until the shutdown cancels the loop's root
    while (w.arrived.empty()) {
      w.has_arrived.clear();
      co_await w.has_arrived.wait();
    }
    std::vector<ArrivedConnection> batch;  // owned first, so that a failed spawn leaks nothing
    batch.reserve(w.arrived.size());
    for (auto& a : w.arrived) {
      // The fd now belongs to `batch` alone (a move would copy the int and leave it in `a`).
      rt::Listener::Accepted taken{.fd = std::exchange(a.fd, -1), .peer = std::move(a.peer)};
      batch.emplace_back(std::move(taken), w.connections, *options_.plane, worker);
    }
    w.arrived.clear();
    for (auto& c : batch) group.spawn(serve_connection(worker, std::move(c)), "connection");
  }
}

void H2ListenerServer::hand_over(rt::Listener::Accepted accepted) {
  H2DataPlane& plane = *options_.plane;
  const int target = plane.take_least_loaded();
  Worker& w = *workers_[static_cast<size_t>(target)];
  w.connections.fetch_add(1, std::memory_order_relaxed);
  if (target == 0) {  // this loop
    w.arrived.push_back(std::move(accepted));
    w.has_arrived.set();
    return;
  }
  const int fd = accepted.fd;
  const bool posted = plane.loop(target).post_threadsafe([&w, accepted]() mutable {
    w.arrived.push_back(std::move(accepted));
    w.has_arrived.set();
  });
  if (!posted) {
    ::close(fd);
    w.connections.fetch_sub(1, std::memory_order_relaxed);
    plane.connection_ended(target);
  }
}

rt::Task<void> H2ListenerServer::accept_loop(rt::Listener listener) {
  for (;;) {  // until the shutdown cancels it
    std::optional<rt::Listener::Accepted> accepted;
    try {
      accepted = co_await listener.accept();
    } catch (const std::system_error& e) {
      log(LogLevel::kWarning, "curfew: listener '" + name_ + "': " + e.what());
    }
    if (!accepted) {
      co_await rt::sleep(kAcceptBackoff);
      continue;
    }
    hand_over(std::move(*accepted));
  }
}

rt::Task<void> H2ListenerServer::serve_connection(int worker, ArrivedConnection connection) {
  Worker& w = *workers_[worker];  // `workers_` is fixed after start(); the server outlives this
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  // One connection's failure to start (epoll or memory) is that connection's alone.
  std::optional<h2::Session> session;
  try {
    rt::Socket socket(loop, connection.take_fd());  // closes the fd if it cannot be registered
    socket.set_peer(connection.peer());
    session.emplace(std::move(socket), h2::Role::kServer, caller_limits_);
  } catch (const std::exception& e) {
    log(LogLevel::kWarning, "curfew: listener '" + name_ + "': connection from " +
                                connection.peer() + " dropped: " + e.what());
    co_return;
  }
  ConnectionObserver* observer = options_.plane->connection_observer();
  struct Registered {  // `connection` gives the counts back after this, when the frame goes
    Worker& w;
    h2::Session* s;
    ConnectionObserver* observer;
    ~Registered() {
      w.sessions.erase(s);
      if (observer != nullptr)
        observer->connection_closed(ConnectionSide::kCaller, s->close_reason());
    }
  } registered{w, &*session, observer};
  w.sessions.insert(&*session);
  if (observer != nullptr) observer->connection_opened(ConnectionSide::kCaller);
  if (stopping_.load(std::memory_order_relaxed)) session->shutdown();
  // A failure inside the session (a bug, memory) ends this connection alone: failing the
  // listener's group would cancel every other connection of the loop.
  try {
    co_await session->run([this, worker](std::shared_ptr<h2::Stream> stream) {
      return call(worker, std::move(stream));
    });
  } catch (const std::exception& e) {
    log(LogLevel::kError, "curfew: listener '" + name_ + "': connection from " + connection.peer() +
                              " ended by an internal error: " + e.what());
  }
  if (h2::peer_broke_a_limit(session->close_reason()))
    log_closure(w, connection.peer(), session->close_reason());
}

void H2ListenerServer::log_closure(Worker& w, const std::string& peer, h2::CloseReason why) {
  // Once per connection with its peer, but at most kClosureLogsPerSecond a second per loop: an
  // attacker who reconnects again and again must not flood the log.
  const rt::TimePoint now = rt::Clock::now();
  if (now - w.closure_log_second >= std::chrono::seconds(1)) {
    w.closure_log_second = now;
    w.closures_logged = 0;
  }
  if (w.closures_logged >= kClosureLogsPerSecond) {
    ++w.closures_not_logged;
    return;
  }
  ++w.closures_logged;
  std::string line = "curfew: listener '" + name_ + "': closed the connection from " + peer + ": " +
                     h2::close_reason_name(why);
  if (w.closures_not_logged > 0) {
    line += " (and " + std::to_string(w.closures_not_logged) +
            " more closed for a limit, not logged; see curfew_connections_closed_total)";
    w.closures_not_logged = 0;
  }
  log(LogLevel::kWarning, line);
}

rt::Task<void> H2ListenerServer::call(int worker, std::shared_ptr<h2::Stream> stream) {
  // Reset before its task ran (a canceller, or a rapid-reset attacker): not a call, and no
  // upstream work starts for it.
  if (stream->closed()) co_return;
  stream->note_work_started();
  struct InFlight {
    std::atomic<int>& n;
    explicit InFlight(std::atomic<int>& c) : n(c) { n.fetch_add(1, std::memory_order_relaxed); }
    ~InFlight() { n.fetch_sub(1, std::memory_order_relaxed); }
  } in_flight{calls_in_flight_};
  Worker& w = *workers_[worker];
  const config::Listener* listener = w.routing->listener(name_);
  // Admission: a slot of the listener's limit, then of the route's, or RESOURCE_EXHAUSTED now.
  const config::Route* route =
      listener->route_for(h2::find_header(stream->headers(), ":path").value_or(""));
  std::shared_ptr<ConcurrencyLimit> route_limit =
      route ? w.route_limits[static_cast<size_t>(route - listener->routes.data())] : nullptr;
  if (!listener_limit_.try_acquire(listener->limits.max_concurrent_calls)) {
    refuse(*stream, *w.routing, route, Rejection::kListenerLimit);
    co_return;
  }
  if (route_limit && !route_limit->try_acquire(*route->max_concurrent_calls)) {
    listener_limit_.release();
    refuse(*stream, *w.routing, route, Rejection::kRouteLimit);
    co_return;
  }
  CallSlots slots(&listener_limit_, std::move(route_limit));
  H2CallContext context{.routing = w.routing,
                        .listener = listener,
                        .pool = &options_.plane->pool(worker),
                        .worker = &w.state,
                        .observer = options_.observer,
                        .shutting_down = options_.shutting_down};
  co_await h2_proxy_call(std::move(stream), std::move(context));
}

void H2ListenerServer::refuse(h2::Stream& stream, const Routing& routing,
                              const config::Route* route, Rejection why) {
  const config::Listener& listener = *routing.listener(name_);
  CallReport report;
  report.listener = &listener.name;
  report.route = route ? &route->name : nullptr;
  report.rejected = why;
  report.code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  const rt::TimePoint start = rt::Clock::now();
  if (options_.observer) options_.observer->call_started(listener.name, report.route);
  stream.send_trailers_only(
      {{":status", "200"},
       {"content-type", "application/grpc"},
       {"grpc-status", std::to_string(static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED))},
       {"grpc-message", wire::encode_grpc_message(refusal_message(listener, route, why))}});
  report.duration = rt::Clock::now() - start;
  if (options_.observer) options_.observer->call_finished(report);
}

}  // namespace curfew::sidecar
