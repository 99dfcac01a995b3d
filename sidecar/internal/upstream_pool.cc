#include "sidecar/internal/upstream_pool.h"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <vector>

#include "dns/resolver.h"
#include "runtime/errors.h"
#include "runtime/loop.h"
#include "runtime/socket.h"
#include "runtime/timeout.h"
#include "sidecar/log.h"
#include "tls/handshake_error.h"
#include "tls/tls_transport.h"

namespace curfew::sidecar {
namespace {

constexpr int kConnectTurns = 3;  // endpoints one call tries to connect to
// A set nobody picked for this long is dropped (its connections close once idle).
constexpr rt::Duration kIdleSet = std::chrono::minutes(5);
constexpr rt::Duration kSweepInterval = std::chrono::seconds(30);
// After a failed lookup or connection, names are resolved again this soon.
constexpr rt::Duration kResolveAfterFailure = std::chrono::seconds(1);
constexpr std::chrono::milliseconds kMinResolveTimeout{1000};

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

std::shared_ptr<EndpointSet> UpstreamPool::set_for(const config::Upstream& upstream,
                                                   const UpstreamTls* tls) {
  const rt::TimePoint now = rt::Clock::now();
  sweep(now);
  const EndpointSetKey::Of key{upstream, tls};
  auto it = sets_.find(key);  // no key string built per call
  if (it == sets_.end()) it = sets_.emplace(key.str(), nullptr).first;
  std::shared_ptr<EndpointSet>& slot = it->second;
  if (!slot) {
    slot = std::make_shared<EndpointSet>(
        upstream, tls == nullptr ? nullptr : std::make_shared<const UpstreamTls>(*tls));
    slot->set_observer(observer_);
    return slot;
  }
  slot->configure(upstream);
  if (tls != nullptr && (!slot->tls() || slot->tls()->context != tls->context)) {
    // The newest configuration's context (same settings; the files may have been rotated): the
    // next connection uses it; a connection being made keeps the one it started with.
    slot->set_tls(std::make_shared<const UpstreamTls>(*tls));
  }
  return slot;
}

void UpstreamPool::retain(const Routing& routing) {
  std::vector<std::string> kept;
  for (const config::Upstream& upstream : routing.config.upstreams)
    kept.push_back(EndpointSetKey::Of{upstream, routing.tls_for(upstream.name)}.str());
  for (auto it = sets_.begin(); it != sets_.end();) {
    const bool wanted = std::find(kept.begin(), kept.end(), it->first) != kept.end();
    if (wanted) {
      ++it;
      continue;
    }
    close_idle(it->second->retire());
    it = sets_.erase(it);
  }
}

void UpstreamPool::sweep(rt::TimePoint now) {
  if (now < next_sweep_) return;
  next_sweep_ = now + kSweepInterval;
  for (auto it = sets_.begin(); it != sets_.end();) {
    if (now - it->second->last_pick() < kIdleSet) {
      ++it;
      continue;
    }
    close_idle(it->second->retire());
    it = sets_.erase(it);
  }
}

std::vector<UpstreamReport> UpstreamPool::report(int loop) const {
  const rt::TimePoint now = rt::Clock::now();
  std::vector<UpstreamReport> out;
  for (const auto& [key, set] : sets_) {
    UpstreamReport& r = out.emplace_back();
    r.upstream = set->settings().name;
    r.loop = loop;
    r.balancer = config::balancer_name(set->settings().balancer);
    for (const EndpointSet::Target& t : set->targets()) {
      if (!t.parse_error.empty()) r.resolve_errors.push_back(t.text + ": " + t.parse_error);
      if (!t.last_resolve_error.empty())
        r.resolve_errors.push_back(t.text + ": " + t.last_resolve_error);
    }
    for (const std::shared_ptr<Endpoint>& e : set->endpoints()) {
      EndpointReport& er = r.endpoints.emplace_back();
      er.address = e->address_text;
      er.target = set->targets()[e->target].text;
      er.state = kEndpointStateLabels[static_cast<size_t>(e->state(now))];
      er.connected = e->session && e->session->accepting_streams();
      er.outstanding = e->outstanding;
      er.latency_ms = e->latency.measured() ? e->latency.estimate_ns(now) / 1e6 : -1;
      er.consecutive_failures = e->consecutive_failures;
      er.ejections = e->ejections;
      if (e->ejected(now))
        er.ejected_for_s = std::chrono::duration<double>(e->ejected_until - now).count();
      er.last_error = e->last_error;
    }
  }
  return out;
}

void UpstreamPool::close_idle(const std::vector<std::shared_ptr<Endpoint>>& endpoints) {
  for (const std::shared_ptr<Endpoint>& e : endpoints) {
    if (e->session) e->session->shutdown();  // GOAWAY; the connection ends once idle
  }
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

bool UpstreamPool::pick_connected(const config::Upstream& upstream, const UpstreamTls* tls,
                                  TriedEndpoints& tried, EndpointLease& lease) {
  if (group_ == nullptr || group_->aborting()) return false;  // pick() says why
  std::shared_ptr<EndpointSet> set = set_for(upstream, tls);
  const rt::TimePoint now = rt::Clock::now();
  start_due_resolutions(set, now);
  // All connected or none taken: the balancer's choice is then pick()'s first, and a set being
  // connected keeps its round-robin turn and random draws for pick() alone.
  bool any = false;
  for (const std::shared_ptr<Endpoint>& e : set->endpoints()) {
    if (e->draining) continue;
    if (!e->session || !e->session->accepting_streams()) return false;
    any = true;
  }
  if (!any) return false;
  std::shared_ptr<Endpoint> e = set->pick(tried, now, random_);
  if (std::find(tried.begin(), tried.end(), e->id) == tried.end()) tried.push_back(e->id);
  std::shared_ptr<h2::Session> session = e->session;
  lease = EndpointLease(std::move(set), std::move(e), std::move(session), now);
  return true;
}

rt::Task<EndpointLease> UpstreamPool::pick(const config::Upstream& upstream, const UpstreamTls* tls,
                                           TriedEndpoints& tried) {
  if (group_ == nullptr || group_->aborting())
    throw UpstreamUnavailable(upstream.name, "shutting down");
  std::shared_ptr<EndpointSet> set = set_for(upstream, tls);
  // Copied: `upstream` is the caller's, and the set's settings may change across the waits.
  const std::string name = upstream.name;
  const rt::Duration connect_timeout =
      std::chrono::duration_cast<rt::Duration>(upstream.connect_timeout);
  const h2::Keepalive keepalive = keepalive_of(upstream);
  // One bound for the whole pick: the first resolution and every connect attempt.
  const rt::TimePoint give_up = rt::Clock::now() + connect_timeout;
  co_await refresh(set, give_up);
  std::string last_error;
  TriedEndpoints failed_here;  // endpoints this pick could not connect to: never dialled twice
  for (int turn = 0; turn < kConnectTurns; ++turn) {
    std::shared_ptr<Endpoint> e = set->pick(tried, rt::Clock::now(), random_);
    if (!e || std::find(failed_here.begin(), failed_here.end(), e->id) != failed_here.end()) break;
    if (std::find(tried.begin(), tried.end(), e->id) == tried.end()) tried.push_back(e->id);
    const rt::Duration left = give_up - rt::Clock::now();
    if (left <= rt::Duration::zero()) {
      if (last_error.empty()) last_error = "no connection within connect_timeout";
      break;
    }
    bool dialled = false;
    try {
      std::shared_ptr<h2::Session> session = co_await connection(set, e, left, keepalive, dialled);
      co_return EndpointLease(set, std::move(e), std::move(session), rt::Clock::now());
    } catch (const UpstreamUnavailable& failure) {
      last_error = failure.what();
    }
    failed_here.push_back(e->id);
    // Nothing was sent: the next endpoint may serve this call. The endpoint counts a failure
    // once per attempt (by the call that dialled; those that waited for it share its outcome),
    // and its name is resolved again soon (the pod may have moved).
    if (!dialled) continue;
    const rt::TimePoint now = rt::Clock::now();
    if (set->failed(*e, last_error, now).ejected && observer_ != nullptr)
      observer_->endpoint_ejected(name);
    EndpointSet::Target& target = set->targets()[e->target];
    target.next_resolve = std::min(target.next_resolve, now + kResolveAfterFailure);
  }
  if (last_error.empty()) {
    // No endpoint at all: the names never resolved (or the targets are malformed). Counted
    // here, where a call fails for it, not for each background lookup that failed.
    connect_failed(ConnectFailure::kResolve);
    for (const EndpointSet::Target& t : set->targets()) {
      if (!last_error.empty()) last_error += "; ";
      last_error += !t.parse_error.empty()          ? t.parse_error
                    : !t.last_resolve_error.empty() ? t.last_resolve_error
                                                    : "resolving '" + t.text + "' timed out";
    }
  }
  throw UpstreamUnavailable(name, last_error);
}

void UpstreamPool::start_due_resolutions(const std::shared_ptr<EndpointSet>& set,
                                         rt::TimePoint now) {
  for (size_t i = 0; i < set->targets().size(); ++i) {
    EndpointSet::Target& t = set->targets()[i];
    if (!t.parse_error.empty() || !t.target.needs_resolution()) continue;
    if (t.resolving || now < t.next_resolve) continue;
    t.resolving = true;
    t.resolve_done.clear();
    group_->spawn(resolve(set, i), "resolve " + t.text);
  }
}

rt::Task<void> UpstreamPool::refresh(std::shared_ptr<EndpointSet> set, rt::TimePoint give_up) {
  // `targets()` never changes size after the set is made, and `set` keeps the set alive: the
  // Target references below stay put across the waits.
  start_due_resolutions(set, rt::Clock::now());
  // A set with endpoints serves with what it has while its names are resolved again; one with
  // none waits for the first answers (a name that never resolved keeps being asked: each call
  // starts a lookup if none is under way).
  const bool empty = std::none_of(set->endpoints().begin(), set->endpoints().end(),
                                  [](const auto& e) { return !e->draining; });
  if (!empty) co_return;
  for (EndpointSet::Target& t : set->targets()) {
    if (!t.resolving) continue;
    try {
      co_await rt::deadline(
          give_up, [](rt::Event& done) -> rt::Task<void> { co_await done.wait(); }(t.resolve_done));
    } catch (const rt::TimeoutError&) {
      co_return;
    }
  }
}

rt::Task<void> UpstreamPool::resolve(std::shared_ptr<EndpointSet> set, size_t target) {
  EndpointSet::Target& t = set->targets()[target];  // stays put: see refresh()
  struct Done {
    EndpointSet::Target& t;
    ~Done() {
      t.resolving = false;
      t.resolve_done.set();
    }
  } done{t};
  const config::Upstream& settings = set->settings();
  const auto timeout =
      std::max(std::chrono::duration_cast<std::chrono::milliseconds>(settings.connect_timeout),
               kMinResolveTimeout);
  const rt::Duration interval = std::chrono::duration_cast<rt::Duration>(settings.resolve_interval);
  absl::StatusOr<dns::Answer> answer = absl::UnavailableError("not resolved");
  try {
    answer = co_await dns::resolve_off_loop({.host = t.target.host,
                                             .port = t.target.port,
                                             .server = t.target.dns_server,
                                             .timeout = timeout});
  } catch (const rt::CancelledError&) {
    throw;
  } catch (const std::exception& e) {
    // A failure here (memory, a thread that could not start) is this lookup's, not the pool's:
    // thrown on, it would end the pool's task group and every connection with it.
    answer = absl::UnavailableError(std::string("resolving failed: ") + e.what());
  }
  const rt::TimePoint now = rt::Clock::now();
  if (!answer.ok()) {
    // The last good set stays; asked again soon. Counted each time, logged when it starts
    // failing (and below when it answers again). A connect failure (resolve) is counted only
    // when a call finds no address: pick().
    if (observer_ != nullptr) observer_->upstream_resolve_failed(settings.name);
    if (t.last_resolve_error.empty()) {
      log(LogLevel::kWarning, "curfew: upstream '" + settings.name +
                                  "': " + std::string(answer.status().message()) +
                                  "; keeping its last " + std::to_string(set->endpoints().size()) +
                                  " address(es) and asking again");
    }
    t.last_resolve_error = std::string(answer.status().message());
    t.next_resolve = now + std::min(interval, kResolveAfterFailure);
    co_return;
  }
  if (!t.last_resolve_error.empty()) {
    log(LogLevel::kInfo, "curfew: upstream '" + settings.name + "': '" + t.text +
                             "' resolves again (" + std::to_string(answer->addresses.size()) +
                             " address(es))");
  }
  t.last_resolve_error.clear();
  t.next_resolve = now + interval;
  if (!set->retired()) close_idle(set->update(target, answer->addresses));
}

rt::Task<std::shared_ptr<h2::Session>> UpstreamPool::connection(std::shared_ptr<EndpointSet> set,
                                                                std::shared_ptr<Endpoint> e,
                                                                rt::Duration connect_timeout,
                                                                h2::Keepalive keepalive,
                                                                bool& dialled) {
  // `set` and `e` are held here: both stay alive across the waits whatever updates do.
  for (int turn = 0; turn < 3; ++turn) {  // bounded: each turn waits for one connect attempt
    if (e->draining) throw UpstreamUnavailable(e->address_text + ": left the set");
    if (e->session && e->session->accepting_streams()) co_return e->session;
    if (e->connecting) {
      co_await e->attempt_done.wait();
      // The attempt this call waited for failed: its outcome is this call's too (no second
      // dial of an address that just refused).
      // (An attempt abandoned because its own call was cancelled is no outcome: dial again.)
      if (!e->session && !e->last_connect_error.empty())
        throw UpstreamUnavailable(e->last_connect_error);
      continue;
    }
    dialled = true;
    e->last_connect_error.clear();
    e->connecting = true;
    e->attempt_done.clear();
    std::shared_ptr<h2::Session> fresh;
    try {
      fresh = co_await connect(*set, *e, connect_timeout, keepalive);
    } catch (const UpstreamUnavailable& failure) {
      e->session.reset();
      e->last_connect_error = failure.what();
      e->connecting = false;
      e->attempt_done.set();
      throw;
    } catch (...) {
      e->session.reset();
      e->last_connect_error.clear();  // cancelled with its call: no verdict on the endpoint
      e->connecting = false;
      e->attempt_done.set();
      throw;
    }
    e->session = std::move(fresh);
    e->connecting = false;
    e->attempt_done.set();
  }
  if (e->session && e->session->accepting_streams()) co_return e->session;
  throw UpstreamUnavailable(e->address_text + ": no connection takes streams");
}

rt::Task<std::shared_ptr<h2::Session>> UpstreamPool::connect(EndpointSet& set, Endpoint& e,
                                                             rt::Duration connect_timeout,
                                                             h2::Keepalive keepalive) {
  // `set` and `e` are kept alive by connection()'s shared_ptrs for the whole wait.
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  const rt::TimePoint give_up = rt::Clock::now() + connect_timeout;
  const std::string& address = e.address_text;
  auto shutting_down = [&] {
    if (group_ == nullptr || group_->aborting())
      throw UpstreamUnavailable(address + ": shutting down");
  };
  shutting_down();
  try {
    rt::Socket socket = co_await rt::deadline(give_up, rt::connect(loop, e.address));
    shutting_down();  // checked again after each wait: the pool may be stopping
    std::unique_ptr<h2::Transport> transport;
    try {
      transport = co_await secure(set, e, std::move(socket), give_up);
    } catch (const rt::TimeoutError&) {
      connect_failed(ConnectFailure::kTls);
      throw UpstreamUnavailable("TLS handshake with " + address + " timed out");
    }
    shutting_down();
    // The upstream's keepalive, as the call that made the connection saw its config.
    h2::SessionLimits limits = limits_;
    limits.keepalive = keepalive;
    auto session = std::make_shared<h2::Session>(std::move(transport), h2::Role::kClient, limits);
    // Unless it becomes the endpoint's connection below, it is closed however this ends (no
    // SETTINGS, or the connecting call cancelled meanwhile): nobody else would ever use it.
    struct CloseUnlessKept {
      rt::TaskHandle<void> connection;
      bool kept = false;
      ~CloseUnlessKept() {
        if (!kept) connection.cancel("the connect attempt ended without it");
      }
    } guard{group_->spawn(serve_connection(session), "upstream " + address)};
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
    throw UpstreamUnavailable("no HTTP/2 SETTINGS from " + address + " within connect_timeout");
  } catch (const rt::TimeoutError&) {
    connect_failed(ConnectFailure::kConnect);
    throw UpstreamUnavailable("connect to " + address + " timed out");
  } catch (const tls::HandshakeError& err) {
    connect_failed(ConnectFailure::kTls);
    throw UpstreamUnavailable(address + ": " + err.what());
  } catch (const std::system_error& err) {
    connect_failed(ConnectFailure::kConnect);
    throw UpstreamUnavailable(address + ": " + err.what());
  }
}

rt::Task<std::unique_ptr<h2::Transport>> UpstreamPool::secure(const EndpointSet& set,
                                                              const Endpoint& e, rt::Socket socket,
                                                              rt::TimePoint give_up) {
  if (!set.tls()) co_return std::make_unique<h2::SocketTransport>(std::move(socket));
  // A copy: the set may get a newer context while this handshake waits.
  // NOLINTNEXTLINE(performance-unnecessary-copy-initialization): owned across the handshake
  const std::shared_ptr<const UpstreamTls> tls = set.tls();
  // The DNS name, not the address dialed; for an address target, the address in it.
  const UpstreamTarget& target = set.targets()[e.target].target;
  const std::string host =
      target.needs_resolution() ? target.host : authority_host(target.authority);
  co_return co_await rt::deadline(give_up,
                                  tls::TlsTransport::connect(std::move(socket), tls->context,
                                                             tls->context->server_name_for(host)));
}

}  // namespace curfew::sidecar
