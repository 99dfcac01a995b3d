// libFuzzer target: the config loader (config::load_config_string) on arbitrary bytes.
//
// Besides crashes, leaks and undefined behaviour (the fuzz build has ASan and UBSan), it checks
// the loader's contract: every input is either a valid Config or an InvalidArgumentError located
// as "fuzz.yaml:LINE:COL: ..." (or a YAML syntax error, also located); a Config that loads
// satisfies the promises of config.h (names unique, references resolved, routes reachable,
// limits consistent), and describe() can print it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "config/config.h"
#include "config/load.h"

namespace {

void check(bool ok, const char* what, const std::string& detail = "") {
  if (ok) return;
  std::fprintf(stderr, "config fuzzer: broken promise: %s %s\n", what, detail.c_str());
  std::abort();
}

bool located(std::string_view message) {
  // "fuzz.yaml:LINE:COL: ..."
  constexpr std::string_view kSource = "fuzz.yaml:";
  if (!message.starts_with(kSource)) return false;
  size_t i = kSource.size();
  for (int part = 0; part < 2; ++part) {
    const size_t digits = i;
    while (i < message.size() && message[i] >= '0' && message[i] <= '9') ++i;
    if (i == digits || i >= message.size() || message[i] != ':') return false;
    ++i;
  }
  return true;
}

void check_config(const curfew::config::Config& config) {
  using namespace curfew::config;
  check(!config.listeners.empty(), "at least one listener");
  std::set<std::string> upstream_names;
  for (const Upstream& u : config.upstreams) {
    check(upstream_names.insert(u.name).second, "unique upstream names", u.name);
    check(!u.endpoints.empty(), "an upstream has endpoints", u.name);
    check(u.connect_timeout.count() > 0, "positive connect_timeout", u.name);
  }
  std::set<std::string> listener_names;
  for (const Listener& l : config.listeners) {
    check(listener_names.insert(l.name).second, "unique listener names", l.name);
    check(!l.routes.empty(), "a listener has routes", l.name);
    check(l.default_timeout.count() > 0, "positive default_timeout", l.name);
    check(l.limits.max_concurrent_calls >= 1 && l.limits.max_message_bytes >= 1 &&
              l.limits.max_metadata_bytes >= 1 &&
              l.limits.max_concurrent_streams_per_connection >= 1,
          "positive limits", l.name);
    std::set<std::string> route_names;
    for (size_t i = 0; i < l.routes.size(); ++i) {
      const Route& r = l.routes[i];
      check(route_names.insert(r.name).second, "unique route names", r.name);
      check(r.fanout.has_value() != !r.upstream.empty(), "upstream xor fanout", r.name);
      if (!r.upstream.empty())
        check(upstream_names.count(r.upstream) == 1, "known upstream", r.upstream);
      if (r.fanout) {
        check(r.fanout->upstreams.size() >= 2, "fan-out to two or more", r.name);
        for (const auto& u : r.fanout->upstreams)
          check(upstream_names.count(u) == 1, "known fan-out upstream", u);
      }
      if (r.mirror)
        check(upstream_names.count(r.mirror->upstream) == 1, "known mirror upstream", r.name);
      if (r.max_concurrent_calls) {
        check(*r.max_concurrent_calls >= 1 &&
                  *r.max_concurrent_calls <= l.limits.max_concurrent_calls,
              "route limit within the listener's", r.name);
      }
      const auto effective = l.effective_timeout(r);
      check(effective.count() > 0, "positive effective timeout", r.name);
      check(r.min_budget < effective && r.deadline_offset < effective,
            "budget knobs below the timeout", r.name);
      if (r.max_timeout)
        check(*r.max_timeout >= effective, "max_timeout not below the timeout", r.name);
      for (size_t j = 0; j < i; ++j) {
        check(!l.routes[j].match.covers(r.match), "every route reachable", r.name);
      }
      // The route's own match selects something that route_for() gives to it or an earlier route.
      if (r.match.kind == Match::kMethod) {
        const Route* chosen = l.route_for(r.match.value);
        check(chosen != nullptr && chosen <= &r, "route_for finds a method route's own path",
              r.name);
      }
    }
  }
  const std::string text = describe(config);
  check(!text.empty(), "describe() prints something");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = curfew::config::load_config_string(yaml, "fuzz.yaml");
  if (config.ok()) {
    check(config->source_path == "fuzz.yaml", "source_path");
    check_config(*config);
  } else {
    check(config.status().code() == absl::StatusCode::kInvalidArgument,
          "only InvalidArgument errors", std::string(config.status().ToString()));
    const auto message = config.status().message();
    check(located(std::string_view(message.data(), message.size())),
          "errors are located (file:line:col)", std::string(message));
  }
  return 0;
}
