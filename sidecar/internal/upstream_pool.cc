#include "sidecar/internal/upstream_pool.h"

#include <netdb.h>

#include <cstring>
#include <system_error>
#include <vector>

#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/socket.h"
#include "runtime/timeout.h"
#include "runtime/to_thread.h"

namespace curfew::sidecar {
namespace {

// getaddrinfo on the blocking pool: owns its inputs (the awaiting task may be gone when it runs).
std::vector<rt::SocketAddress> resolve(std::string host, std::string port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rv = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rv != 0) throw UpstreamUnavailable("resolving " + host + ": " + ::gai_strerror(rv));
  std::vector<rt::SocketAddress> out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    rt::SocketAddress address;
    std::memcpy(&address.storage, a->ai_addr, a->ai_addrlen);
    address.length = a->ai_addrlen;
    out.push_back(address);
  }
  ::freeaddrinfo(found);
  return out;
}

rt::Task<std::vector<rt::SocketAddress>> resolve_off_loop(std::string host, std::string port) {
  co_return co_await rt::to_thread([host, port] { return resolve(host, port); });
}

}  // namespace

UpstreamPool::Entry& UpstreamPool::entry(const std::string& endpoint) {
  auto& slot = entries_[endpoint];
  if (!slot) {
    slot = std::make_unique<Entry>();
    auto parsed = parse_upstream_target(endpoint);
    if (parsed.ok()) {
      slot->target = *std::move(parsed);
    } else {
      slot->parse_error = std::string(parsed.status().message());
    }
  }
  return *slot;
}

const std::string& UpstreamPool::authority(const std::string& endpoint) {
  return entry(endpoint).target.authority;
}

rt::Task<void> UpstreamPool::run() {
  rt::TaskGroup group;
  group_ = &group;
  try {
    co_await group.run([]() -> rt::Task<void> {
      rt::Event never;  // the pool runs until cancelled
      co_await never.wait();
    }());
  } catch (...) {
    group_ = nullptr;
    throw;
  }
  group_ = nullptr;
}

rt::Task<void> UpstreamPool::serve_connection(std::shared_ptr<h2::Session> session) {
  ++connections_;
  // Open from the TCP connect to the end (one that never sent SETTINGS is also counted as a
  // connect failure, no_settings).
  if (observer_ != nullptr) observer_->connection_opened(ConnectionSide::kUpstream);
  struct Counted {
    UpstreamPool& pool;
    h2::Session& session;
    ~Counted() {
      --pool.connections_;
      if (pool.observer_ != nullptr)
        pool.observer_->connection_closed(ConnectionSide::kUpstream, session.close_reason());
    }
  } counted{*this, *session};
  co_await session->run(nullptr);
}

rt::Task<std::shared_ptr<h2::Session>> UpstreamPool::session(const std::string& endpoint,
                                                             rt::Duration connect_timeout) {
  // `e` stays put across the waits below: entries are heap nodes never erased (see entries_).
  Entry& e = entry(endpoint);
  if (!e.parse_error.empty()) throw UpstreamUnavailable(e.parse_error);
  for (int turn = 0; turn < 3; ++turn) {  // bounded: each turn waits for one connect attempt
    if (e.session && e.session->accepting_streams()) co_return e.session;
    if (e.connecting) {
      co_await e.attempt_done.wait();
      continue;
    }
    e.connecting = true;
    e.attempt_done.clear();
    std::shared_ptr<h2::Session> fresh;
    try {
      fresh = co_await connect(endpoint, e, connect_timeout);
    } catch (...) {
      e.connecting = false;
      e.attempt_done.set();
      throw;
    }
    e.session = std::move(fresh);
    e.connecting = false;
    e.attempt_done.set();
  }
  if (e.session && e.session->accepting_streams()) co_return e.session;
  throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": no connection takes streams");
}

rt::Task<std::shared_ptr<h2::Session>> UpstreamPool::connect(const std::string& endpoint, Entry& e,
                                                             rt::Duration connect_timeout) {
  if (group_ == nullptr || group_->aborting())
    throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": shutting down");
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  const rt::TimePoint give_up = rt::Clock::now() + connect_timeout;
  std::vector<rt::SocketAddress> addresses = e.target.addresses;
  if (e.target.needs_resolution()) {
    try {
      addresses = co_await rt::deadline(give_up, resolve_off_loop(e.target.host, e.target.port));
    } catch (const rt::TimeoutError&) {
      connect_failed(ConnectFailure::kResolve);
      throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": resolving timed out");
    } catch (const UpstreamUnavailable&) {
      connect_failed(ConnectFailure::kResolve);
      throw;
    }
  }
  std::string last_error = "no address";
  for (const rt::SocketAddress& address : addresses) {
    try {
      rt::Socket socket = co_await rt::deadline(give_up, rt::connect(loop, address));
      // Checked again after the waits: the pool may have begun shutting down meanwhile.
      if (group_ == nullptr || group_->aborting())
        throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": shutting down");
      auto session = std::make_shared<h2::Session>(std::move(socket), h2::Role::kClient, limits_);
      auto connection = group_->spawn(serve_connection(session), "upstream " + endpoint);
      // Connected when the upstream's SETTINGS arrived (as gRPC counts it), within the same
      // connect_timeout: a peer that accepts TCP and never speaks HTTP/2 is not an upstream.
      bool ready = false;
      try {
        ready = co_await rt::deadline(give_up, session->wait_ready());
      } catch (const rt::TimeoutError&) {
      }
      if (ready) co_return session;
      connection.cancel("no HTTP/2 SETTINGS from the upstream");
      connect_failed(ConnectFailure::kNoSettings);
      last_error = "no HTTP/2 SETTINGS from " + address.to_string() + " within connect_timeout";
      break;
    } catch (const rt::TimeoutError&) {
      connect_failed(ConnectFailure::kConnect);
      last_error = "connect to " + address.to_string() + " timed out";
      break;
    } catch (const std::system_error& err) {
      connect_failed(ConnectFailure::kConnect);
      last_error = err.what();
    }
  }
  throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": " + last_error);
}

}  // namespace curfew::sidecar
