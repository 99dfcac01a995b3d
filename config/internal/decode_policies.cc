// Decoders for the per-route call policies: retry, fanout and mirror.

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/duration.h"
#include "config/internal/decode.h"
#include "config/status_codes.h"

namespace curfew::config::internal {
namespace {

using std::chrono::milliseconds;

// Envoy's defaults (base 25ms, max 10 x base): familiar to operators, and short enough to fit
// typical deadlines.
constexpr milliseconds kDefaultBackoffBase{25};
constexpr int kDefaultBackoffMaxFactor = 10;
constexpr int kMaxAttempts = 10;

int decode_status_code(const Value& value) {
  const std::string name = value.as_string();
  const std::optional<int> code = status_code_from_name(name);
  if (!code) {
    value.fail(absl::StrCat("unknown gRPC status code \"", name,
                            "\" (expected one of: ", absl::StrJoin(kStatusCodeNames, ", "), ")"));
  }
  if (*code == 0) value.fail("OK is success, not a failure that could be retried");
  return *code;
}

}  // namespace

Retry decode_retry(const Value& value) {
  value.expect_keys({"attempts", "per_try_timeout", "backoff", "on", "budget_ratio"});
  Retry retry;
  retry.attempts = static_cast<int>(
      value.require("attempts", "total tries, first one included").as_int(1, kMaxAttempts));
  retry.per_try_timeout =
      value.require("per_try_timeout", "deadline of each try").as_duration(/*positive=*/true);

  retry.backoff_base = kDefaultBackoffBase;
  const Value backoff = value.get("backoff");
  if (backoff.present()) {
    backoff.expect_keys({"base", "max"});
    if (const Value v = backoff.get("base"); v.present()) retry.backoff_base = v.as_duration(true);
  }
  retry.backoff_max =
      retry.backoff_base > std::chrono::nanoseconds::max() / kDefaultBackoffMaxFactor
          ? std::chrono::nanoseconds::max()
          : kDefaultBackoffMaxFactor * retry.backoff_base;
  if (const Value v = backoff.get("max"); v.present()) {
    retry.backoff_max = v.as_duration(true);
    if (retry.backoff_max < retry.backoff_base) {
      v.fail(absl::StrCat(format_duration(retry.backoff_max), " is less than backoff.base ",
                          format_duration(retry.backoff_base)));
    }
  }

  if (const Value on = value.get("on"); on.present()) {
    for (const Value& item : on.items()) retry.on.push_back(decode_status_code(item));
    if (retry.on.empty()) on.fail("list at least one status code to retry on");
  } else {
    // The only code that means "the call certainly did not run", so safe for any method.
    retry.on = {*status_code_from_name("UNAVAILABLE")};
  }

  if (const Value v = value.get("budget_ratio"); v.present())
    retry.budget_ratio = v.as_number(0, 1);
  return retry;
}

Hedge decode_hedge(const Value& value, const std::string& upstream) {
  value.expect_keys({"delay", "max_hedges"});
  Hedge hedge;
  // Required: a zero delay would silently multiply the load on the upstream.
  hedge.delay =
      value.require("delay", "how long to wait before sending a hedged copy").as_duration();
  if (const Value v = value.get("max_hedges"); v.present())
    hedge.max_hedges = static_cast<int>(v.as_int(1, kMaxAttempts - 1));
  hedge.as_fanout.mode = Fanout::kHedge;
  hedge.as_fanout.merge = Fanout::kFirst;
  hedge.as_fanout.quorum = 1;
  hedge.as_fanout.delay = hedge.delay;
  hedge.as_fanout.upstreams.assign(1 + static_cast<size_t>(hedge.max_hedges), upstream);
  return hedge;
}

Fanout decode_fanout(const Value& value, const std::vector<Upstream>& upstreams) {
  value.expect_keys({"mode", "upstreams", "merge", "quorum", "delay"});
  Fanout fanout;

  const Value mode = value.require("mode", "one of all, quorum, hedge");
  const std::string mode_name = mode.as_string();
  if (mode_name == "all") {
    fanout.mode = Fanout::kAll;
  } else if (mode_name == "quorum") {
    fanout.mode = Fanout::kQuorum;
  } else if (mode_name == "hedge") {
    fanout.mode = Fanout::kHedge;
  } else {
    mode.fail(absl::StrCat("unknown mode \"", mode_name, "\" (expected all, quorum or hedge)"));
  }

  const Value list = value.require("upstreams", "at least two upstreams to fan out to");
  for (const Value& item : list.items()) {
    std::string name = upstream_reference(item, upstreams);
    if (std::find(fanout.upstreams.begin(), fanout.upstreams.end(), name) !=
        fanout.upstreams.end()) {
      item.fail(absl::StrCat("upstream \"", name, "\" is listed twice"));
    }
    fanout.upstreams.push_back(std::move(name));
  }
  const int n = static_cast<int>(fanout.upstreams.size());
  if (n < 2) list.fail(absl::StrCat("fanout needs at least 2 upstreams, got ", n));

  const Value quorum = value.get("quorum");
  if (fanout.mode == Fanout::kQuorum) {
    // Default: a majority, the usual meaning of "quorum".
    fanout.quorum = quorum.present() ? static_cast<int>(quorum.as_int(1, n)) : n / 2 + 1;
  } else if (quorum.present()) {
    quorum.fail(
        absl::StrCat("quorum only applies to mode: quorum (this is mode: ", mode_name, ")"));
  } else {
    fanout.quorum = fanout.mode == Fanout::kAll ? n : 1;
  }

  const Value delay = value.get("delay");
  if (fanout.mode == Fanout::kHedge) {
    // Required: a zero delay would silently double the load on every upstream.
    fanout.delay =
        value.require("delay", "how long to wait before sending the hedged copy").as_duration();
  } else if (delay.present()) {
    delay.fail(absl::StrCat("delay only applies to mode: hedge (this is mode: ", mode_name, ")"));
  }

  fanout.merge = fanout.mode == Fanout::kHedge ? Fanout::kFirst : Fanout::kConcat;
  if (const Value merge = value.get("merge"); merge.present()) {
    const std::string merge_name = merge.as_string();
    if (merge_name == "concat") {
      fanout.merge = Fanout::kConcat;
    } else if (merge_name == "first") {
      fanout.merge = Fanout::kFirst;
    } else {
      merge.fail(absl::StrCat("unknown merge \"", merge_name, "\" (expected concat or first)"));
    }
    if (fanout.mode == Fanout::kHedge && fanout.merge != Fanout::kFirst) {
      merge.fail("mode: hedge returns one response; merge must be first");
    }
  }
  return fanout;
}

Mirror decode_mirror(const Value& value, const std::vector<Upstream>& upstreams) {
  value.expect_keys({"upstream", "percent"});
  Mirror mirror;
  mirror.upstream =
      upstream_reference(value.require("upstream", "where to copy calls to"), upstreams);
  if (const Value v = value.get("percent"); v.present()) mirror.percent = v.as_number(0, 100);
  return mirror;
}

}  // namespace curfew::config::internal
