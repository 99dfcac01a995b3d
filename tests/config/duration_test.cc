#include "config/duration.h"

#include <chrono>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curfew::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

TEST(ParseDuration, AcceptsEachUnit) {
  EXPECT_EQ(*parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(*parse_duration("1s"), seconds(1));
  EXPECT_EQ(*parse_duration("2m"), minutes(2));
  EXPECT_EQ(*parse_duration("0s"), nanoseconds(0));
  EXPECT_EQ(*parse_duration("0ms"), nanoseconds(0));
}

TEST(ParseDuration, AcceptsFractionsExactly) {
  EXPECT_EQ(*parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*parse_duration("0.1s"), milliseconds(100));  // No floating-point rounding.
  EXPECT_EQ(*parse_duration("0.5m"), seconds(30));
  EXPECT_EQ(*parse_duration("0.000001ms"), nanoseconds(1));
  EXPECT_EQ(*parse_duration("1.50ms"), std::chrono::microseconds(1500));
  EXPECT_EQ(*parse_duration("2.0000000000s"), seconds(2));  // Zeros past 1ns are harmless.
}

TEST(ParseDuration, RejectsMissingUnitWithClearText) {
  absl::StatusOr<nanoseconds> d = parse_duration("25");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("bad duration \"25\""));
  EXPECT_THAT(d.status().message(), HasSubstr("expected a number followed by ms, s or m"));
}

TEST(ParseDuration, RejectsNegative) {
  absl::StatusOr<nanoseconds> d = parse_duration("-1s");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("cannot be negative"));
}

TEST(ParseDuration, RejectsOtherUnits) {
  for (const char* text : {"100us", "1h", "1d", "5ns", "1S", "1sec"}) {
    absl::StatusOr<nanoseconds> d = parse_duration(text);
    ASSERT_FALSE(d.ok()) << text;
    EXPECT_THAT(d.status().message(), HasSubstr("unknown unit")) << text;
  }
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* text : {"", "s", "ms", ".5s", "1.s", "1 s", " 1s", "1s ", "1m30s", "+1s",
                           "1e3ms", "one s", "1,5s", "0x10s"}) {
    EXPECT_FALSE(parse_duration(text).ok()) << '"' << text << '"';
  }
}

TEST(ParseDuration, RejectsSubNanosecondPrecision) {
  absl::StatusOr<nanoseconds> d = parse_duration("0.0000001ms");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("more precise than one nanosecond"));
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_THAT(parse_duration("99999999999999999999s").status().message(), HasSubstr("too large"));
  EXPECT_THAT(parse_duration("153722868m").status().message(), HasSubstr("too large"));
  EXPECT_TRUE(parse_duration("153722867m").ok());  // Just under 2^63 ns.
  EXPECT_THAT(parse_duration("9223372036.854775808s").status().message(), HasSubstr("too large"));
  EXPECT_EQ(*parse_duration("9223372036.854775807s"), nanoseconds::max());
}

TEST(FormatDuration, PicksTheMostReadableExactUnit) {
  EXPECT_EQ(format_duration(nanoseconds(0)), "0s");
  EXPECT_EQ(format_duration(minutes(2)), "2m");
  EXPECT_EQ(format_duration(seconds(30)), "30s");
  EXPECT_EQ(format_duration(seconds(90)), "90s");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1.5s");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(std::chrono::microseconds(100)), "0.1ms");
  EXPECT_EQ(format_duration(nanoseconds(1)), "0.000001ms");
  EXPECT_EQ(format_duration(milliseconds(-250)), "-250ms");
}

TEST(FormatDuration, RoundTripsThroughParse) {
  for (nanoseconds d :
       {nanoseconds(0), nanoseconds(1), nanoseconds(999'999'999), nanoseconds(1'000'000'001),
        nanoseconds(61'500'000'000), nanoseconds(minutes(10)), nanoseconds(milliseconds(5)),
        nanoseconds::max()}) {
    absl::StatusOr<nanoseconds> parsed = parse_duration(format_duration(d));
    ASSERT_TRUE(parsed.ok()) << format_duration(d) << ": " << parsed.status();
    EXPECT_EQ(*parsed, d) << format_duration(d);
  }
}

}  // namespace
}  // namespace curfew::config
