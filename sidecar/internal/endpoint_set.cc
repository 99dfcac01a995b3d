#include "sidecar/internal/endpoint_set.h"

#include <algorithm>
#include <utility>

namespace curfew::sidecar {

EndpointSet::EndpointSet(const config::Upstream& upstream, std::shared_ptr<const UpstreamTls> tls)
    : settings_(upstream),
      tls_(std::move(tls)),
      targets_(upstream.endpoints.size()),
      last_pick_(rt::Clock::now()) {  // new: not idle (the pool's sweep drops idle sets)
  for (size_t i = 0; i < upstream.endpoints.size(); ++i) {
    Target& t = targets_[i];
    t.text = upstream.endpoints[i];
    auto parsed = parse_upstream_target(t.text);
    if (!parsed.ok()) {
      t.parse_error = std::string(parsed.status().message());
      continue;
    }
    t.target = *std::move(parsed);
    // Addresses written in the target form the set at once; names wait for their resolution.
    if (!t.target.needs_resolution()) update(i, t.target.addresses);
  }
}

void EndpointSet::configure(const config::Upstream& upstream) {
  // Called for every call (the per-call path): only the fields that may differ under the same
  // key are copied, not the endpoint and TLS strings that make the key.
  settings_.balancer = upstream.balancer;
  settings_.resolve_interval = upstream.resolve_interval;
  settings_.outlier_detection = upstream.outlier_detection;
  settings_.connect_timeout = upstream.connect_timeout;
  settings_.keepalive_time = upstream.keepalive_time;
  settings_.keepalive_timeout = upstream.keepalive_timeout;
}

std::vector<std::shared_ptr<Endpoint>> EndpointSet::update(
    size_t target, const std::vector<rt::SocketAddress>& addresses) {
  targets_[target].resolved = true;
  std::vector<std::shared_ptr<Endpoint>> idle;
  for (const std::shared_ptr<Endpoint>& e : endpoints_) {
    if (e->target != target) continue;
    const bool kept = std::find(addresses.begin(), addresses.end(), e->address) != addresses.end();
    // An address that comes back while still draining is taken back as it is.
    e->draining = !kept;
    if (e->draining && e->outstanding == 0) idle.push_back(e);
  }
  for (const rt::SocketAddress& address : addresses) {
    const bool known = std::any_of(endpoints_.begin(), endpoints_.end(), [&](const auto& e) {
      return e->target == target && e->address == address;
    });
    if (known) continue;
    auto e = std::make_shared<Endpoint>();
    e->id = next_id_++;
    e->address = address;
    e->address_text = address.to_string();
    e->target = target;
    endpoints_.push_back(std::move(e));
  }
  for (const std::shared_ptr<Endpoint>& e : idle) remove(*e);
  return idle;
}

std::vector<std::shared_ptr<Endpoint>> EndpointSet::retire() {
  retired_ = true;
  std::vector<std::shared_ptr<Endpoint>> idle;
  for (const std::shared_ptr<Endpoint>& e : endpoints_) {
    e->draining = true;
    if (e->outstanding == 0) idle.push_back(e);
  }
  for (const std::shared_ptr<Endpoint>& e : idle) remove(*e);
  return idle;
}

void EndpointSet::remove(const Endpoint& e) {
  std::erase_if(endpoints_, [&](const std::shared_ptr<Endpoint>& p) { return p.get() == &e; });
}

std::shared_ptr<Endpoint> EndpointSet::pick(const TriedEndpoints& tried, rt::TimePoint now,
                                            std::minstd_rand& random) {
  last_pick_ = now;
  Candidates fresh, healthy, any;
  for (const std::shared_ptr<Endpoint>& e : endpoints_) {
    if (e->draining) continue;
    any.push_back(e.get());
    if (e->ejected(now)) continue;
    healthy.push_back(e.get());
    if (std::find(tried.begin(), tried.end(), e->id) == tried.end()) fresh.push_back(e.get());
  }
  if (!fresh.empty()) return choose(fresh, now, random);
  if (!healthy.empty()) return choose(healthy, now, random);
  if (!any.empty()) return choose(any, now, random);
  return nullptr;
}

std::shared_ptr<Endpoint> EndpointSet::choose(const Candidates& candidates, rt::TimePoint now,
                                              std::minstd_rand& random) {
  Endpoint* chosen = candidates.front();
  if (candidates.size() > 1) {
    if (settings_.balancer == config::Upstream::Balancer::kRoundRobin) {
      chosen = candidates[round_robin_++ % candidates.size()];
    } else {
      // Power of two choices: two distinct endpoints at random, the cheaper wins. An endpoint
      // with no latency observed yet costs the mean of those measured, so a newcomer joins at
      // an average price (neither flooded nor starved).
      double measured_sum = 0;
      int measured = 0;
      for (const Endpoint* e : candidates) {
        if (!e->latency.measured()) continue;
        measured_sum += e->latency.estimate_ns(now);
        ++measured;
      }
      const double default_ns = measured > 0 ? measured_sum / measured : 1.0;
      auto cost = [&](const Endpoint* e) {
        const double latency = e->latency.measured() ? e->latency.estimate_ns(now) : default_ns;
        return (e->outstanding + 1) * std::max(latency, 1.0);
      };
      std::uniform_int_distribution<size_t> first(0, candidates.size() - 1);
      std::uniform_int_distribution<size_t> second(0, candidates.size() - 2);
      const size_t a = first(random);
      size_t b = second(random);
      if (b >= a) ++b;  // distinct from a, uniformly
      chosen = cost(candidates[b]) < cost(candidates[a]) ? candidates[b] : candidates[a];
    }
  }
  for (const std::shared_ptr<Endpoint>& e : endpoints_) {
    if (e.get() == chosen) return e;
  }
  return nullptr;  // unreachable: candidates come from endpoints_
}

void EndpointSet::succeeded(Endpoint& e) noexcept {
  e.consecutive_failures = 0;
  e.probation = false;
  e.last_error.clear();
}

EndpointSet::FailureResult EndpointSet::failed(Endpoint& e, std::string why, rt::TimePoint now) {
  e.last_error = std::move(why);
  ++e.consecutive_failures;
  const config::Upstream::OutlierDetection& o = settings_.outlier_detection;
  if (o.consecutive_failures == 0 || e.draining || e.ejected(now)) return {};
  if (!e.probation && e.consecutive_failures < o.consecutive_failures) return {};
  // Never more than max_ejection_percent of the set (at least one when the percent allows any),
  // and never the last endpoint standing.
  size_t members = 0, ejected = 0;
  for (const std::shared_ptr<Endpoint>& other : endpoints_) {
    if (other->draining) continue;
    ++members;
    if (other->ejected(now)) ++ejected;
  }
  const size_t allowed =
      o.max_ejection_percent == 0
          ? 0
          : std::max<size_t>(1, members * static_cast<size_t>(o.max_ejection_percent) / 100);
  if (ejected + 1 > allowed || ejected + 1 >= members) return {};
  // An endpoint healthy for twice its last ejection since it came back starts over at the base.
  if (e.ejections > 0 && now - e.ejected_until > 2 * e.last_ejection) e.ejections = 0;
  rt::Duration period = std::chrono::duration_cast<rt::Duration>(o.base_ejection_time);
  for (int i = 0; i < e.ejections && period < o.max_ejection_time; ++i) period *= 2;
  period = std::min(period, std::chrono::duration_cast<rt::Duration>(o.max_ejection_time));
  ++e.ejections;
  e.ejected_until = now + period;
  e.last_ejection = period;
  e.consecutive_failures = 0;
  e.probation = true;  // its first failure after coming back ejects it again
  ++ejections_total_;
  return {.ejected = true, .ejected_for = period};
}

bool EndpointSet::released(Endpoint& e) {
  --e.outstanding;
  if (!e.draining || e.outstanding > 0) return false;
  remove(e);
  return true;
}

size_t EndpointSet::count(EndpointState state, rt::TimePoint now) const noexcept {
  return static_cast<size_t>(std::count_if(endpoints_.begin(), endpoints_.end(),
                                           [&](const auto& e) { return e->state(now) == state; }));
}

// ---- EndpointLease ---------------------------------------------------------------------------

EndpointLease::EndpointLease(std::shared_ptr<EndpointSet> set, std::shared_ptr<Endpoint> endpoint,
                             std::shared_ptr<h2::Session> session, rt::TimePoint start)
    : set_(std::move(set)),
      endpoint_(std::move(endpoint)),
      session_(std::move(session)),
      start_(start) {
  ++endpoint_->outstanding;
}

EndpointLease& EndpointLease::operator=(EndpointLease&& other) noexcept {
  if (this != &other) {
    release();
    set_ = std::move(other.set_);
    endpoint_ = std::move(other.endpoint_);
    session_ = std::move(other.session_);
    start_ = other.start_;
    latency_seen_ = other.latency_seen_;
    learn_if_cancelled_ = other.learn_if_cancelled_;
  }
  return *this;
}

const std::string& EndpointLease::authority() const {
  return set_->targets()[endpoint_->target].target.authority;
}

void EndpointLease::first_response(rt::TimePoint now) noexcept {
  if (latency_seen_ || !endpoint_) return;
  latency_seen_ = true;
  endpoint_->latency.observe(now - start_, now);
}

void EndpointLease::succeeded(rt::TimePoint now) noexcept {
  if (!endpoint_) return;
  first_response(now);
  set_->succeeded(*endpoint_);
}

void EndpointLease::failed(std::string why, rt::TimePoint now) {
  if (!endpoint_) return;
  // A failure costs the balancer at least kFailurePenalty of latency: an endpoint that fails
  // fast (connection refused, UNAVAILABLE at once) must not look like the cheapest one.
  if (!latency_seen_) {
    latency_seen_ = true;
    endpoint_->latency.observe(std::max<rt::Duration>(now - start_, kFailurePenalty), now);
  }
  const EndpointSet::FailureResult result = set_->failed(*endpoint_, std::move(why), now);
  if (result.ejected && set_->observer() != nullptr)
    set_->observer()->endpoint_ejected(set_->settings().name);
}

void EndpointLease::release() noexcept {
  if (!endpoint_) return;
  if (!latency_seen_ && learn_if_cancelled_) {
    // Dropped without an answer (a hedge that lost, a caller that gave up): the call took at
    // least this long, which the balancer learns when it is above the estimate (an endpoint that
    // stalls is avoided; a quick cancel teaches nothing), as tower's PeakEwma.
    const rt::TimePoint now = rt::Clock::now();
    const double waited = std::chrono::duration<double, std::nano>(now - start_).count();
    if (waited > endpoint_->latency.estimate_ns(now)) endpoint_->latency.observe(now - start_, now);
  }
  if (set_->released(*endpoint_) && endpoint_->session) endpoint_->session->shutdown();
  endpoint_.reset();
  session_.reset();
  set_.reset();
}

}  // namespace curfew::sidecar
