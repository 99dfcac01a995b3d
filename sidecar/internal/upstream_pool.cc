#include "sidecar/internal/upstream_pool.h"

#include <cstring>
#include <system_error>
#include <vector>

#include "dns/resolver.h"
#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/socket.h"
#include "runtime/timeout.h"
#include "tls/handshake_error.h"
#include "tls/tls_transport.h"

namespace curfew::sidecar {
namespace {

// The host a certificate is verified against when the target names no DNS name: the address
// of the authority ("127.0.0.1:443" -> "127.0.0.1", "[::1]:443" -> "[::1]"); "localhost" for
// unix sockets, as gRPC does.
std::string authority_host(const std::string& authority) {
  if (authority.starts_with('[')) return authority.substr(0, authority.find(']') + 1);
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(':') == colon) return authority.substr(0, colon);
  return authority;
}

}  // namespace

UpstreamPool::Entry& UpstreamPool::entry(const std::string& endpoint, const UpstreamTls* tls) {
  auto& slot = entries_[tls == nullptr ? endpoint : endpoint + '\n' + tls->key];
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
                                                             rt::Duration connect_timeout,
                                                             const UpstreamTls* tls,
                                                             h2::Keepalive keepalive) {
  // `e` stays put across the waits below: entries are heap nodes never erased (see entries_).
  Entry& e = entry(endpoint, tls);
  if (tls != nullptr && (!e.tls || e.tls->context != tls->context)) {
    // The newest configuration's context (same settings; the files may have been rotated): the
    // next connection uses it. Shared: a connection being made keeps the one it started with.
    e.tls = std::shared_ptr<const UpstreamTls>(std::make_shared<UpstreamTls>(*tls));
  }
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
      fresh = co_await connect(endpoint, e, connect_timeout, keepalive);
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
                                                             rt::Duration connect_timeout,
                                                             h2::Keepalive keepalive) {
  if (group_ == nullptr || group_->aborting())
    throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": shutting down");
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  const rt::TimePoint give_up = rt::Clock::now() + connect_timeout;
  std::vector<rt::SocketAddress> addresses = e.target.addresses;
  if (e.target.needs_resolution()) {
    // c-ares bounds the lookup itself (the blocking thread is not cancelled); the deadline lets
    // this connect give up at once.
    const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(connect_timeout);
    absl::StatusOr<dns::Answer> answer = absl::DeadlineExceededError("resolving timed out");
    try {
      answer = co_await rt::deadline(
          give_up,
          dns::resolve_off_loop({.host = e.target.host,
                                 .port = e.target.port,
                                 .server = e.target.dns_server,
                                 .timeout = std::max(budget, std::chrono::milliseconds(1))}));
    } catch (const rt::TimeoutError&) {
    }
    if (!answer.ok()) {
      connect_failed(ConnectFailure::kResolve);
      throw UpstreamUnavailable("upstream endpoint \"" + endpoint +
                                "\": " + std::string(answer.status().message()));
    }
    addresses = std::move(answer->addresses);
  }
  std::string last_error = "no address";
  for (const rt::SocketAddress& address : addresses) {
    try {
      rt::Socket socket = co_await rt::deadline(give_up, rt::connect(loop, address));
      // Checked again after the waits: the pool may have begun shutting down meanwhile.
      if (group_ == nullptr || group_->aborting())
        throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": shutting down");
      std::unique_ptr<h2::Transport> transport;
      try {
        transport = co_await secure(e, std::move(socket), give_up);
      } catch (const rt::TimeoutError&) {
        connect_failed(ConnectFailure::kTls);
        last_error = "TLS handshake with " + address.to_string() + " timed out";
        break;
      }
      if (group_ == nullptr || group_->aborting())
        throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": shutting down");
      // The upstream's keepalive, as the call that made the connection saw its config.
      h2::SessionLimits limits = limits_;
      limits.keepalive = keepalive;
      auto session = std::make_shared<h2::Session>(std::move(transport), h2::Role::kClient, limits);
      // Unless it becomes the pool's connection below, it is closed however this ends (no
      // SETTINGS, or the connecting call cancelled meanwhile): nobody else would ever use it.
      struct CloseUnlessKept {
        rt::TaskHandle<void> connection;
        bool kept = false;
        ~CloseUnlessKept() {
          if (!kept) connection.cancel("the connect attempt ended without it");
        }
      } guard{group_->spawn(serve_connection(session), "upstream " + endpoint)};
      // Connected when the upstream's SETTINGS arrived (as gRPC counts it), within the same
      // connect_timeout: a peer that accepts TCP and never speaks HTTP/2 is not an upstream.
      bool ready = false;
      try {
        ready = co_await rt::deadline(give_up, session->wait_ready());
      } catch (const rt::TimeoutError&) {
      }
      if (ready) {
        guard.kept = true;
        co_return session;
      }
      connect_failed(ConnectFailure::kNoSettings);
      last_error = "no HTTP/2 SETTINGS from " + address.to_string() + " within connect_timeout";
      break;
    } catch (const rt::TimeoutError&) {
      connect_failed(ConnectFailure::kConnect);
      last_error = "connect to " + address.to_string() + " timed out";
      break;
    } catch (const tls::HandshakeError& err) {
      connect_failed(ConnectFailure::kTls);
      last_error = err.what();
    } catch (const std::system_error& err) {
      connect_failed(ConnectFailure::kConnect);
      last_error = err.what();
    }
  }
  throw UpstreamUnavailable("upstream endpoint \"" + endpoint + "\": " + last_error);
}

rt::Task<std::unique_ptr<h2::Transport>> UpstreamPool::secure(Entry& e, rt::Socket socket,
                                                              rt::TimePoint give_up) {
  if (!e.tls) co_return std::make_unique<h2::SocketTransport>(std::move(socket));
  // A copy: the entry may get a newer context while this handshake waits.
  const std::shared_ptr<const UpstreamTls> tls = e.tls;
  const std::string host =
      e.target.needs_resolution() ? e.target.host : authority_host(e.target.authority);
  co_return co_await rt::deadline(give_up,
                                  tls::TlsTransport::connect(std::move(socket), tls->context,
                                                             tls->context->server_name_for(host)));
}

}  // namespace curfew::sidecar
