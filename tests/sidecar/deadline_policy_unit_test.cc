// decide_deadline() as a table, in the style of Envoy's RouterFilterUtilityTest.FinalTimeout: every
// rule of the deadline policy and every boundary, one row each, checked to the nanosecond against a
// fixed arrival time (no clock is read).
//
// The rule under test (sidecar/deadline_policy.h, config/config.h):
//   budget = the caller's grpc-timeout, cut to the route's max_timeout if longer   (kCaller /
//            kCallerCapped; the route's `timeout` is NOT consulted when the caller sent one),
//          = else the route's timeout                                              (kRoute),
//          = else the listener's default_timeout (kListenerDefault;
//            max_timeout never caps a route or listener timeout);
//   deadline          = arrival + budget;
//   upstream_deadline = deadline - deadline_offset;
//   fast_fail         = budget <= 0, or budget < min_budget (exactly min_budget is enough), or
//                       upstream_deadline <= arrival (offset >= budget).
#include "sidecar/internal/deadline_policy.h"

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::sidecar {
namespace {

using namespace std::chrono_literals;
using Source = CallDeadline::Source;
using std::chrono::nanoseconds;

// Far from the clock's epoch, so that negative budgets stay representable and nothing is "unset".
const rt::TimePoint kArrival = rt::TimePoint{} + 1000h + 123456789ns;

struct Row {
  const char* name;
  // Inputs.
  std::optional<nanoseconds> caller_timeout;
  std::optional<nanoseconds> route_timeout;
  std::optional<nanoseconds> max_timeout;
  nanoseconds min_budget;
  nanoseconds deadline_offset;
  nanoseconds listener_default;
  // Expected, relative to kArrival.
  nanoseconds deadline;
  nanoseconds upstream_deadline;
  bool fast_fail;
  Source source;
  const char* describe;
};

std::ostream& operator<<(std::ostream& os, const Row& row) { return os << row.name; }

constexpr auto kNone = std::nullopt;

// Columns: name | caller | route timeout | max_timeout | min_budget | offset | listener default
//          => deadline | upstream deadline | fast_fail | source | describe()
const std::vector<Row> kRows = {
    // --- Where the budget comes from ---------------------------------------------------------
    {"NoCallerRouteTimeout", kNone, 250ms, kNone, 0ns, 0ns, 750ms, 250ms, 250ms, false,
     Source::kRoute, "250ms (route timeout)"},
    {"NoCallerNoRouteTimeoutListenerDefault", kNone, kNone, kNone, 0ns, 0ns, 750ms, 750ms, 750ms,
     false, Source::kListenerDefault, "750ms (listener default_timeout)"},
    {"NoCallerRouteTimeoutNotCappedByMaxTimeout", kNone, 5s, 1s, 0ns, 0ns, 750ms, 5s, 5s, false,
     Source::kRoute, "5000ms (route timeout)"},
    {"NoCallerListenerDefaultNotCappedByMaxTimeout", kNone, kNone, 100ms, 0ns, 0ns, 750ms, 750ms,
     750ms, false, Source::kListenerDefault, "750ms (listener default_timeout)"},
    {"CallerShorterThanRouteTimeout", 100ms, 250ms, kNone, 0ns, 0ns, 750ms, 100ms, 100ms, false,
     Source::kCaller, "100ms (caller's grpc-timeout)"},
    {"CallerLongerThanRouteTimeoutIsKept", 2s, 250ms, kNone, 0ns, 0ns, 750ms, 2s, 2s, false,
     Source::kCaller, "2000ms (caller's grpc-timeout)"},
    {"CallerLongerThanListenerDefaultIsKept", 5s, kNone, kNone, 0ns, 0ns, 750ms, 5s, 5s, false,
     Source::kCaller, "5000ms (caller's grpc-timeout)"},
    {"CallerShorterThanListenerDefault", 10ms, kNone, kNone, 0ns, 0ns, 750ms, 10ms, 10ms, false,
     Source::kCaller, "10ms (caller's grpc-timeout)"},

    // --- max_timeout caps the caller's own timeout ---------------------------------------------
    {"CallerExactlyMaxTimeoutNotCapped", 1s, 250ms, 1s, 0ns, 0ns, 750ms, 1s, 1s, false,
     Source::kCaller, "1000ms (caller's grpc-timeout)"},
    {"CallerOneNsAboveMaxTimeoutCapped", 1s + 1ns, 250ms, 1s, 0ns, 0ns, 750ms, 1s, 1s, false,
     Source::kCallerCapped, "1000ms (caller's grpc-timeout capped by max_timeout)"},
    {"CallerOneNsBelowMaxTimeoutKept", 1s - 1ns, 250ms, 1s, 0ns, 0ns, 750ms, 1s - 1ns, 1s - 1ns,
     false, Source::kCaller, "999ms (caller's grpc-timeout)"},
    {"CallerHoursAboveMaxTimeoutCapped", 24h, kNone, 1s, 0ns, 0ns, 750ms, 1s, 1s, false,
     Source::kCallerCapped, "1000ms (caller's grpc-timeout capped by max_timeout)"},
    {"CallerFarBelowMaxTimeoutKept", 3ms, kNone, 1s, 0ns, 0ns, 750ms, 3ms, 3ms, false,
     Source::kCaller, "3ms (caller's grpc-timeout)"},

    // --- deadline_offset: the upstream is told deadline - offset --------------------------------
    {"OffsetOnCallerTimeout", 100ms, kNone, kNone, 0ns, 20ms, 750ms, 100ms, 80ms, false,
     Source::kCaller, "100ms (caller's grpc-timeout)"},
    {"OffsetOnCappedTimeout", 10s, kNone, 1s, 0ns, 50ms, 750ms, 1s, 950ms, false,
     Source::kCallerCapped, "1000ms (caller's grpc-timeout capped by max_timeout)"},
    {"OffsetOnRouteTimeout", kNone, 250ms, kNone, 0ns, 50ms, 750ms, 250ms, 200ms, false,
     Source::kRoute, "250ms (route timeout)"},
    {"OffsetOnListenerDefault", kNone, kNone, kNone, 0ns, 50ms, 750ms, 750ms, 700ms, false,
     Source::kListenerDefault, "750ms (listener default_timeout)"},
    {"OffsetOneNsBelowBudgetStillCalls", 100ms, kNone, kNone, 0ns, 100ms - 1ns, 750ms, 100ms, 1ns,
     false, Source::kCaller, "100ms (caller's grpc-timeout)"},
    {"OffsetEqualToBudgetFastFails", 100ms, kNone, kNone, 0ns, 100ms, 750ms, 100ms, 0ns, true,
     Source::kCaller, "100ms (caller's grpc-timeout)"},
    {"OffsetAboveBudgetFastFails", 100ms, kNone, kNone, 0ns, 150ms, 750ms, 100ms, -50ms, true,
     Source::kCaller, "100ms (caller's grpc-timeout)"},
    {"OffsetAboveBudgetButBelowMinBudgetCheck", 30ms, kNone, kNone, 10ms, 50ms, 750ms, 30ms, -20ms,
     true, Source::kCaller, "30ms (caller's grpc-timeout)"},

    // --- min_budget: exactly min_budget is enough, one ns less fast-fails ---------------------
    {"CallerExactlyMinBudget", 50ms, kNone, kNone, 50ms, 0ns, 750ms, 50ms, 50ms, false,
     Source::kCaller, "50ms (caller's grpc-timeout)"},
    {"CallerOneNsBelowMinBudgetFastFails", 50ms - 1ns, kNone, kNone, 50ms, 0ns, 750ms, 50ms - 1ns,
     50ms - 1ns, true, Source::kCaller, "49ms (caller's grpc-timeout)"},
    {"CallerOneNsAboveMinBudget", 50ms + 1ns, kNone, kNone, 50ms, 0ns, 750ms, 50ms + 1ns,
     50ms + 1ns, false, Source::kCaller, "50ms (caller's grpc-timeout)"},
    // min_budget is compared with the whole budget, not with what is left after the offset.
    {"MinBudgetComparedBeforeOffset", 60ms, kNone, kNone, 50ms, 20ms, 750ms, 60ms, 40ms, false,
     Source::kCaller, "60ms (caller's grpc-timeout)"},
    // It applies to the capped budget.
    {"MinBudgetAppliesAfterCap", 10s, kNone, 40ms, 50ms, 0ns, 750ms, 40ms, 40ms, true,
     Source::kCallerCapped, "40ms (caller's grpc-timeout capped by max_timeout)"},
    // And to route / listener timeouts (config validation forbids these, the policy still holds).
    {"MinBudgetAboveRouteTimeout", kNone, 30ms, kNone, 50ms, 0ns, 750ms, 30ms, 30ms, true,
     Source::kRoute, "30ms (route timeout)"},
    {"MinBudgetAboveListenerDefault", kNone, kNone, kNone, 1s, 0ns, 750ms, 750ms, 750ms, true,
     Source::kListenerDefault, "750ms (listener default_timeout)"},

    // --- Already expired: zero or negative caller timeout ---------------------------------------
    {"CallerZeroTimeoutFastFails", 0ns, 250ms, kNone, 0ns, 0ns, 750ms, 0ns, 0ns, true,
     Source::kCaller, "0ms (caller's grpc-timeout)"},
    {"CallerNegativeTimeoutFastFails", -5ms, 250ms, kNone, 0ns, 0ns, 750ms, -5ms, -5ms, true,
     Source::kCaller, "-5ms (caller's grpc-timeout)"},
    {"CallerNegativeTimeoutNotCapped", -5ms, kNone, 1s, 0ns, 0ns, 750ms, -5ms, -5ms, true,
     Source::kCaller, "-5ms (caller's grpc-timeout)"},
    {"CallerNegativeTimeoutWithOffset", -5ms, kNone, kNone, 0ns, 20ms, 750ms, -5ms, -25ms, true,
     Source::kCaller, "-5ms (caller's grpc-timeout)"},
    {"CallerOneNsNotExpired", 1ns, kNone, kNone, 0ns, 0ns, 750ms, 1ns, 1ns, false, Source::kCaller,
     "0ms (caller's grpc-timeout)"},
    {"RouteTimeoutZeroFastFails", kNone, 0ns, kNone, 0ns, 0ns, 750ms, 0ns, 0ns, true,
     Source::kRoute, "0ms (route timeout)"},

    // --- describe() truncates to whole milliseconds -------------------------------------------
    {"DescribeTruncatesSubMillisecond", 1999999ns, kNone, kNone, 0ns, 0ns, 750ms, 1999999ns,
     1999999ns, false, Source::kCaller, "1ms (caller's grpc-timeout)"},
    {"DescribeShowsBudgetNotUpstreamBudget", kNone, 1500ms, kNone, 0ns, 500ms, 750ms, 1500ms, 1s,
     false, Source::kRoute, "1500ms (route timeout)"},
};

class DecideDeadlineTable : public ::testing::TestWithParam<Row> {};

TEST_P(DecideDeadlineTable, Decides) {
  const Row& row = GetParam();
  config::Listener listener;
  listener.name = "inbound";
  listener.default_timeout = row.listener_default;
  config::Route route;
  route.name = "r";
  route.timeout = row.route_timeout;
  route.max_timeout = row.max_timeout;
  route.min_budget = row.min_budget;
  route.deadline_offset = row.deadline_offset;

  const CallDeadline d = decide_deadline(listener, route, row.caller_timeout, kArrival);

  EXPECT_EQ(d.arrival, kArrival);
  EXPECT_EQ((d.deadline - kArrival).count(), row.deadline.count());
  EXPECT_EQ((d.upstream_deadline - kArrival).count(), row.upstream_deadline.count());
  EXPECT_EQ(d.budget.count(), row.deadline.count()) << "budget is deadline - arrival";
  EXPECT_EQ(d.fast_fail, row.fast_fail);
  EXPECT_EQ(static_cast<int>(d.source), static_cast<int>(row.source));
  EXPECT_EQ(d.describe(), row.describe);
}

INSTANTIATE_TEST_SUITE_P(Rows, DecideDeadlineTable, ::testing::ValuesIn(kRows),
                         [](const ::testing::TestParamInfo<Row>& info) {
                           return std::string(info.param.name);
                         });

// The same inputs at another arrival give the same decision shifted by exactly the difference.
TEST(DecideDeadline, RelativeToArrival) {
  config::Listener listener;
  config::Route route;
  route.timeout = 250ms;
  route.deadline_offset = 10ms;
  const rt::TimePoint later = kArrival + 37s + 5ns;
  const CallDeadline a = decide_deadline(listener, route, std::nullopt, kArrival);
  const CallDeadline b = decide_deadline(listener, route, std::nullopt, later);
  EXPECT_EQ(b.arrival, later);
  EXPECT_EQ(b.deadline, later + 250ms);
  EXPECT_EQ(b.upstream_deadline, later + 240ms);
  EXPECT_EQ(b.deadline - a.deadline, 37s + 5ns);
  EXPECT_EQ(b.budget, a.budget);
}

// A default-constructed listener's default_timeout is 1 s (config.h).
TEST(DecideDeadline, DefaultListenerTimeoutIsOneSecond) {
  const CallDeadline d =
      decide_deadline(config::Listener{}, config::Route{}, std::nullopt, kArrival);
  EXPECT_EQ(d.deadline, kArrival + 1s);
  EXPECT_EQ(d.source, Source::kListenerDefault);
  EXPECT_FALSE(d.fast_fail);
  EXPECT_EQ(d.describe(), "1000ms (listener default_timeout)");
}

TEST(CallerTimeoutFrom, FarFutureMeansNone) {
  const auto now = std::chrono::system_clock::time_point{} + 1000h;
  EXPECT_EQ(caller_timeout_from(std::chrono::system_clock::time_point::max(), now), std::nullopt);
  EXPECT_EQ(caller_timeout_from(now + std::chrono::hours(24 * 365), now), std::nullopt);
  const auto just_under = caller_timeout_from(now + std::chrono::hours(24 * 365) - 1us, now);
  ASSERT_TRUE(just_under.has_value());
  EXPECT_EQ(*just_under, std::chrono::hours(24 * 365) - 1us);
}

TEST(CallerTimeoutFrom, PastDeadlineIsNegative) {
  const auto now = std::chrono::system_clock::time_point{} + 1000h;
  EXPECT_EQ(caller_timeout_from(now + 150ms, now), std::optional<rt::Duration>(150ms));
  EXPECT_EQ(caller_timeout_from(now, now), std::optional<rt::Duration>(0ns));
  EXPECT_EQ(caller_timeout_from(now - 3ms, now), std::optional<rt::Duration>(-3ms));
}

}  // namespace
}  // namespace curfew::sidecar
