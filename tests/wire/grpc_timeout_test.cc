#include "wire/grpc_timeout.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::wire {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr nanoseconds kMax = nanoseconds::max();

struct ParseCase {
  const char* name;
  std::string value;
  std::optional<nanoseconds> expected;
};

TEST(GrpcTimeoutTest, Parse) {
  const std::vector<ParseCase> cases = {
      // Every unit.
      {"one nanosecond", "1n", nanoseconds(1)},
      {"one microsecond", "1u", microseconds(1)},
      {"one millisecond", "1m", milliseconds(1)},
      {"one second", "1S", seconds(1)},
      {"one minute", "1M", minutes(1)},
      {"one hour", "1H", hours(1)},
      {"several digits", "250m", milliseconds(250)},
      // Digit count: 1 to 8.
      {"eight digits", "99999999n", nanoseconds(99'999'999)},
      {"eight digits of seconds", "12345678S", seconds(12'345'678)},
      {"leading zeros within eight digits", "00000001S", seconds(1)},
      {"nine digits", "999999999n", std::nullopt},
      {"nine zeros", "000000001S", std::nullopt},
      // Zero is a deadline already passed, not an error.
      {"zero", "0n", nanoseconds(0)},
      {"zero hours", "0H", nanoseconds(0)},
      // The largest values of each unit; only hours overflow and saturate.
      {"max minutes", "99999999M", minutes(99'999'999)},
      {"max seconds", "99999999S", seconds(99'999'999)},
      {"largest hours that fit", "2562047H", hours(2'562'047)},
      {"first hours that overflow", "2562048H", kMax},
      {"max hours saturate", "99999999H", kMax},
      // Malformed.
      {"empty", "", std::nullopt},
      {"unit only", "S", std::nullopt},
      {"digits only", "1", std::nullopt},
      {"minus sign", "-1S", std::nullopt},
      {"plus sign", "+1S", std::nullopt},
      {"leading space", " 1S", std::nullopt},
      {"trailing space", "1S ", std::nullopt},
      {"space before unit", "1 S", std::nullopt},
      {"lowercase s", "1s", std::nullopt},
      {"lowercase h", "1h", std::nullopt},
      {"uppercase U", "1U", std::nullopt},
      {"unknown unit", "1x", std::nullopt},
      {"two units", "1SS", std::nullopt},
      {"unit first", "S1", std::nullopt},
      {"decimal point", "1.5S", std::nullopt},
      {"hex", "0x1S", std::nullopt},
      {"NUL inside", std::string("1\0S", 3), std::nullopt},
      {"non-ASCII digit", "\xef\xbc\x91S", std::nullopt},
  };
  for (const ParseCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(parse_grpc_timeout(c.value), c.expected) << '"' << c.value << '"';
  }
}

struct FormatCase {
  const char* name;
  nanoseconds timeout;
  std::string expected;
};

TEST(GrpcTimeoutTest, Format) {
  const std::vector<FormatCase> cases = {
      // Expired deadlines go out as the smallest positive timeout.
      {"zero", nanoseconds(0), "1n"},
      {"minus one", nanoseconds(-1), "1n"},
      {"most negative", nanoseconds::min(), "1n"},
      // Nanoseconds while they fit in 8 digits.
      {"one nanosecond", nanoseconds(1), "1n"},
      {"eight digits of nanoseconds", nanoseconds(99'999'999), "99999999n"},
      // 9 digits of nanoseconds: microseconds, rounded up.
      {"exact microseconds", nanoseconds(100'000'000), "100000u"},
      {"one nanosecond over rounds up", nanoseconds(100'000'001), "100001u"},
      {"just under the next microsecond", nanoseconds(100'000'999), "100001u"},
      {"one second", seconds(1), "1000000u"},
      {"eight digits of microseconds", microseconds(99'999'999), "99999999u"},
      // Past 8 digits of microseconds: milliseconds, rounded up.
      {"one nanosecond over 8 digits of us", microseconds(99'999'999) + nanoseconds(1), "100000m"},
      {"one hour", hours(1), "3600000m"},
      {"one day", hours(24), "86400000m"},
      {"eight digits of milliseconds", milliseconds(99'999'999), "99999999m"},
      // Seconds, minutes, hours.
      {"two days", hours(48), "172800S"},
      {"ms overflow rounds up to a second", milliseconds(99'999'999) + nanoseconds(1), "100000S"},
      {"eight digits of seconds", seconds(99'999'999), "99999999S"},
      {"seconds overflow to minutes", seconds(100'000'000), "1666667M"},
      {"eight digits of minutes", minutes(99'999'999), "99999999M"},
      {"minutes overflow to hours", minutes(99'999'999) + nanoseconds(1), "1666667H"},
      {"largest", kMax, "2562048H"},
  };
  for (const FormatCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(format_grpc_timeout(c.timeout), c.expected) << c.timeout.count() << "ns";
  }
}

// parse(format(d)) is never shorter than d, and longer by less than one unit of the scale used
// (1ns for d <= 0).
void expect_round_trip(nanoseconds d) {
  const std::string text = format_grpc_timeout(d);
  const std::optional<nanoseconds> back = parse_grpc_timeout(text);
  ASSERT_TRUE(back.has_value()) << d.count() << "ns formatted as \"" << text << '"';
  EXPECT_GE(*back, d) << d.count() << "ns formatted as \"" << text << '"';
  const int64_t excess = (*back - d).count();
  if (d.count() <= 0) {
    EXPECT_EQ(*back, nanoseconds(1)) << d.count() << "ns formatted as \"" << text << '"';
  } else if (d.count() <= 99'999'999) {
    EXPECT_EQ(excess, 0) << d.count() << "ns formatted as \"" << text << '"';
  } else {
    EXPECT_LE(static_cast<double>(excess) / static_cast<double>(d.count()), 1.0001e-5)
        << d.count() << "ns formatted as \"" << text << '"';
  }
}

TEST(GrpcTimeoutTest, RoundTripAtEveryUnitBoundary) {
  for (const int64_t unit : {int64_t{1}, int64_t{1'000}, int64_t{1'000'000}, int64_t{1'000'000'000},
                             int64_t{60'000'000'000}, int64_t{3'600'000'000'000}}) {
    for (const int64_t count : {int64_t{1}, int64_t{99'999'999}, int64_t{100'000'000}}) {
      if (count > kMax.count() / unit) continue;
      for (const int64_t delta : {-1, 0, 1}) expect_round_trip(nanoseconds(count * unit + delta));
    }
  }
  expect_round_trip(kMax);
  expect_round_trip(kMax - nanoseconds(1));
}

TEST(GrpcTimeoutTest, RoundTripRandom) {
  std::mt19937_64 rng(20240611);
  for (int i = 0; i < 20'000; ++i) {
    // Spread over every magnitude: a random bit length, then random bits below it.
    const int bits = static_cast<int>(rng() % 63) + 1;
    const auto value = static_cast<int64_t>(rng() >> (64 - bits));
    if (value <= 0) continue;
    expect_round_trip(nanoseconds(value));
  }
}

TEST(GrpcTimeoutTest, FormattedValuesAreAlwaysValid) {
  const std::vector<nanoseconds> timeouts = {nanoseconds(-5), nanoseconds(0), nanoseconds(7),
                                             seconds(30),     hours(100'000), kMax};
  for (const nanoseconds d : timeouts) {
    const std::string text = format_grpc_timeout(d);
    EXPECT_GE(text.size(), 2u) << text;
    EXPECT_LE(text.size(), 9u) << text;
    EXPECT_TRUE(parse_grpc_timeout(text).has_value()) << text;
  }
}

}  // namespace
}  // namespace curfew::wire
