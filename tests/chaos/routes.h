// curfew-chaos: the methods the callers use and the curfew configurations serving them.
//
// Every method has one route (an exact method match). What a route may answer depends on its
// policy's *structure* — plain, mirror, retry, fan-out mode and merge, which upstreams — so that
// structure is drawn once per run from the seed: a caller always knows which upstreams its call
// can reach. Everything else is redrawn on every reload: route names (suffixed with the
// version, modulo kRouteNameCycle: curfew keeps the series of every route name it has served
// until it restarts, so names drawn from a bounded pool keep /metrics bounded over a long run;
// the final configuration's names are new), order, timeouts, max_timeout, min_budget,
// deadline_offset, concurrency limits, retry settings, hedge delay, mirror share, the listener's
// default timeout and limit.
#pragma once

#include <string>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "payload.h"

namespace curfew::chaos {

// Route names cycle through this many suffixes (see the file comment).
inline constexpr int kRouteNameCycle = 24;
// The suffix of version `version`'s route names; kFinalVersion's are used once, at the end.
inline constexpr int kFinalVersion = -1;
inline std::string route_suffix(int version) {
  return version == kFinalVersion ? "final" : "v" + std::to_string(version % kRouteNameCycle);
}

constexpr int kUpstreams = 4;  // u0..u2 in this process, k (index 3) the child that gets killed
constexpr int kChild = 3;
constexpr int kMaxRouteDeadlineMs = 3000;  // no route deadline is longer (see draw_deadline)

inline std::string upstream_name(int u) { return u == kChild ? "k" : "u" + std::to_string(u); }

enum class Policy { kPlain, kMirror, kRetry, kFanAll, kFanQuorum, kFanHedge };

struct Method {
  std::string slug;  // route names are slug-vN
  std::string path;
  Kind kind = Kind::kUnary;
  Policy policy = Policy::kPlain;
  std::vector<int> upstreams;  // the one upstream, or the fan-out's, in order
  int mirror = -1;
  bool concat = false;  // fan-out merge
  int quorum = 0;       // successes a fan-out needs (n for all, 1 for hedge)
  int weight = 1;

  bool fanout() const { return policy >= Policy::kFanAll; }
  bool unary_policy() const { return policy != Policy::kPlain; }  // curfew buffers the request
  bool uses_child() const {
    return std::find(upstreams.begin(), upstreams.end(), kChild) != upstreams.end();
  }
  // Upstreams a call of this method may legitimately reach (sent to them as x-chaos-upstreams).
  unsigned mask() const {
    unsigned m = 0;
    for (int u : upstreams) m |= 1u << u;
    if (mirror >= 0) m |= 1u << mirror;
    return m;
  }
  const char* mode_name() const {
    return policy == Policy::kFanAll ? "all" : policy == Policy::kFanQuorum ? "quorum" : "hedge";
  }
};

// The run's methods, their structure drawn from `rng`.
inline std::vector<Method> make_methods(std::mt19937_64& rng) {
  auto in_process = [&] { return static_cast<int>(rng() % 3); };
  auto fan_set = [&](int min_size) {
    std::vector<int> all{0, 1, 2, kChild};
    std::shuffle(all.begin(), all.end(), rng);
    // The killable child joins a fan-out a third of the time.
    std::erase_if(all, [&](int u) { return u == kChild && rng() % 3 != 0; });
    const int n =
        min_size + static_cast<int>(rng() % (std::min<size_t>(3, all.size()) - min_size + 1));
    all.resize(std::min<size_t>(n, all.size()));
    return all;
  };
  std::vector<Method> m;
  auto add = [&](std::string slug, Kind kind, Policy policy, std::vector<int> ups, int weight) {
    Method x;
    x.slug = slug;
    x.path = "/chaos.Chaos/" + slug;
    x.kind = kind;
    x.policy = policy;
    x.upstreams = std::move(ups);
    x.weight = weight;
    m.push_back(std::move(x));
    return &m.back();
  };
  add("Unary", Kind::kUnary, Policy::kPlain, {in_process()}, 6);
  add("UnaryK", Kind::kUnary, Policy::kPlain, {kChild}, 3);
  {
    Method* x = add("UnaryMirror", Kind::kUnary, Policy::kMirror, {in_process()}, 4);
    x->mirror = (x->upstreams[0] + 1 + static_cast<int>(rng() % 2)) % 3;
  }
  add("UnaryRetry", Kind::kUnary, Policy::kRetry, {in_process()}, 5);
  add("UnaryRetryK", Kind::kUnary, Policy::kRetry, {kChild}, 4);
  struct Fan {
    const char* slug;
    Policy policy;
    bool concat;
  };
  for (Fan f :
       {Fan{"FanAllConcat", Policy::kFanAll, true}, Fan{"FanAllFirst", Policy::kFanAll, false},
        Fan{"FanQuorumConcat", Policy::kFanQuorum, true},
        Fan{"FanQuorumFirst", Policy::kFanQuorum, false},
        Fan{"FanHedge", Policy::kFanHedge, false}}) {
    Method* x = add(f.slug, Kind::kUnary, f.policy, fan_set(2), 3);
    x->concat = f.concat;
    const int n = static_cast<int>(x->upstreams.size());
    x->quorum = f.policy == Policy::kFanAll     ? n
                : f.policy == Policy::kFanHedge ? 1
                                                : 1 + static_cast<int>(rng() % n);
  }
  add("ClientStream", Kind::kClientStream, Policy::kPlain, {in_process()}, 7);
  add("ClientStreamK", Kind::kClientStream, Policy::kPlain, {kChild}, 3);
  add("ServerStream", Kind::kServerStream, Policy::kPlain, {in_process()}, 7);
  add("ServerStreamK", Kind::kServerStream, Policy::kPlain, {kChild}, 3);
  add("Bidi", Kind::kBidi, Policy::kPlain, {in_process()}, 7);
  add("BidiK", Kind::kBidi, Policy::kPlain, {kChild}, 3);
  add("NoSuchMethod", Kind::kUnknown, Policy::kPlain, {}, 1);  // no route: UNIMPLEMENTED
  return m;
}

struct Ports {
  int listener = 0, admin = 0;
  // The attackers' listener (chaos_main.cc's attack menu), routed to an upstream port nobody
  // listens on: its calls never reach the judged upstreams nor the main listener's counts.
  int exposed = 0, nowhere = 0;
  int upstream[kUpstreams] = {};
  // Endpoint sets: u1 is two replicas (127.0.0.1 and 127.0.0.2, one port) listed as addresses;
  // u2 is named u2.test, resolved by the DNS server on this port, whose answer the run changes.
  int dns = 0;
};

class ConfigWriter {
 public:
  ConfigWriter(const Ports& ports, const std::vector<Method>& methods)
      : ports_(ports), methods_(methods) {}

  // A new random configuration; with `invalid`, one curfew must refuse (and keep the old one).
  std::string text(int version, std::mt19937_64& rng, bool invalid = false) const {
    std::vector<std::string> routes;
    for (const Method& m : methods_) {
      if (m.kind != Kind::kUnknown) routes.push_back(route(m, version, rng));
    }
    std::shuffle(routes.begin(), routes.end(), rng);
    if (invalid)
      routes.insert(routes.begin() + static_cast<long>(rng() % routes.size()),
                    invalid_route(version, rng));
    const int listener_limit = rng() % 40 == 0 ? 20 : 1000;  // now and then below the callers' 24
    std::string out = "# curfew-chaos configuration, version " + std::to_string(version) + "\n";
    out += "admin: {address: 127.0.0.1:" + std::to_string(ports_.admin) + "}\n";
    out += "drain_timeout: 2s\nworkers: 2\n";
    out += "listeners:\n  - name: main\n    address: 127.0.0.1:" + std::to_string(ports_.listener) +
           "\n";
    out += "    default_timeout: " + ms(500 + static_cast<int>(rng() % 1501)) + "\n";
    out += "    limits: {max_concurrent_calls: " + std::to_string(listener_limit) + "}\n";
    out += "    routes:\n";
    for (const auto& r : routes) out += r;
    out += "  - name: exposed\n    address: 127.0.0.1:" + std::to_string(ports_.exposed) + "\n";
    out += "    default_timeout: 1s\n";
    out +=
        "    limits: {max_concurrent_streams_per_connection: 100, connection: "
        "{handshake_timeout: 1s, headers_timeout: 1s}}\n";
    out += "    routes:\n      - {name: anything, match: {prefix: /}, upstream: nowhere}\n";
    out += "upstreams:\n";
    out += "  - {name: nowhere, endpoints: [127.0.0.1:" + std::to_string(ports_.nowhere) +
           "], connect_timeout: 100ms}\n";
    // Fixed per upstream: curfew's channel arguments derive from connect_timeout, and channels
    // with equal arguments share their connection across reloads. A new value on every reload
    // would open new connections each time, and on a starved machine a handshake can miss a
    // short connect_timeout (UNAVAILABLE from a live upstream). The killed child gets a short
    // one, so calls to it fail fast while it is down.
    // The endpoint sets' balancer is drawn anew on each reload: a change of balancer keeps the
    // set and its connections.
    for (int u = 0; u < kUpstreams; ++u) {
      const std::string port = std::to_string(ports_.upstream[u]);
      std::string endpoint = "127.0.0.1:" + port;
      if (u == 1) endpoint = "ipv4:127.0.0.1:" + port + ",127.0.0.2:" + port;
      if (u == 2) endpoint = "dns://127.0.0.1:" + std::to_string(ports_.dns) + "/u2.test:" + port;
      out += "  - {name: " + upstream_name(u) + ", endpoints: [\"" + endpoint +
             "\"], connect_timeout: " + (u == kChild ? "300ms" : "5s");
      if (u == 1 || u == 2) {
        out += std::string(", balancer: ") + (rng() % 2 == 0 ? "peak_ewma" : "round_robin") +
               ", resolve_interval: 200ms";
      }
      out += "}\n";
    }
    return out;
  }

 private:
  static std::string ms(int n) { return std::to_string(n) + "ms"; }
  static int uniform(std::mt19937_64& rng, int lo, int hi) {
    return lo + static_cast<int>(rng() % (hi - lo + 1));
  }

  // A route's deadline when the caller sends none: often short enough to fire, sometimes long.
  static int draw_deadline(std::mt19937_64& rng) {
    const int r = uniform(rng, 0, 99);
    if (r < 60) return uniform(rng, 10, 400);
    if (r < 90) return uniform(rng, 400, 1500);
    return uniform(rng, 1500, kMaxRouteDeadlineMs);
  }

  std::string route(const Method& m, int version, std::mt19937_64& rng) const {
    std::string r = "      - name: " + lower(m.slug) + "-" + route_suffix(version) + "\n";
    r += "        match: {method: " + m.path + "}\n";
    const int timeout = draw_deadline(rng);
    // No timeout: the listener's default_timeout (at most 2 s, within kMaxRouteDeadlineMs).
    const bool has_timeout = rng() % 8 != 0;
    const int effective = has_timeout ? timeout : 2000;  // the largest default_timeout drawn
    if (has_timeout) r += "        timeout: " + ms(timeout) + "\n";
    if (rng() % 3 == 0)
      r += "        max_timeout: " +
           ms(std::min(kMaxRouteDeadlineMs, effective * uniform(rng, 1, 4))) + "\n";
    if (rng() % 3 == 0)
      r +=
          "        min_budget: " + ms(uniform(rng, 0, std::max(1, std::min(20, timeout / 2)) - 1)) +
          "\n";
    if (rng() % 6 == 0)
      r += "        deadline_offset: " + ms(uniform(rng, 0, std::min(10, timeout / 4))) + "\n";
    if (rng() % 20 == 0)
      r += "        max_concurrent_calls: " + std::to_string(uniform(rng, 1, 8)) + "\n";
    if (m.fanout()) {
      r += "        fanout: {mode: " + std::string(m.mode_name()) + ", upstreams: [";
      for (size_t i = 0; i < m.upstreams.size(); ++i)
        r += (i ? ", " : "") + upstream_name(m.upstreams[i]);
      r += "]";
      if (m.policy == Policy::kFanQuorum) r += ", quorum: " + std::to_string(m.quorum);
      if (m.policy == Policy::kFanHedge) r += ", delay: " + ms(uniform(rng, 5, 80));
      // merge is explicit or left to the default (concat for all/quorum, first for hedge).
      const bool default_merge = m.concat || m.policy == Policy::kFanHedge;
      if (!default_merge || rng() % 2)
        r += std::string(", merge: ") + (m.concat ? "concat" : "first");
      r += "}\n";
    } else {
      r += "        upstream: " + upstream_name(m.upstreams[0]) + "\n";
    }
    if (m.policy == Policy::kRetry) {
      const int base = uniform(rng, 1, 20);
      static const char* on[] = {"[UNAVAILABLE]", "[UNAVAILABLE, ABORTED]",
                                 "[UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED]"};
      r += "        retry: {attempts: " + std::to_string(uniform(rng, 2, 4)) +
           ", per_try_timeout: " + ms(uniform(rng, 20, 300)) + ", backoff: {base: " + ms(base) +
           ", max: " + ms(base * uniform(rng, 1, 5)) + "}, on: " + on[rng() % 3] +
           ", budget_ratio: " + std::to_string(uniform(rng, 10, 100) / 100.0).substr(0, 4) + "}\n";
    }
    if (m.mirror >= 0) {
      r += "        mirror: {upstream: " + upstream_name(m.mirror) +
           ", percent: " + std::to_string(uniform(rng, 0, 100)) + "}\n";
    }
    return r;
  }

  // An extra route (its own method, so no key is repeated) with one error curfew must refuse.
  static std::string invalid_route(int version, std::mt19937_64& rng) {
    std::string r = "      - name: broken-" + route_suffix(version) +
                    "\n        match: {method: /chaos.Chaos/Broken}\n";
    switch (rng() % 4) {
      case 0:
        return r + "        upstream: u0\n        timeout: 12parsecs\n";  // not a duration
      case 1:
        return r + "        upstream: nowhere\n";  // unknown upstream
      case 2:
        return r + "        upstream: u0\n        timeout_typo: 1s\n";  // unknown key
      default:
        return r + "        upstream: u0\n        timeout: 50ms\n        min_budget: 50ms\n";
    }
  }

  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  Ports ports_;
  const std::vector<Method>& methods_;
};

}  // namespace curfew::chaos
