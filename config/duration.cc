#include "config/duration.h"

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "config/internal/strings.h"

namespace curfew::config {
namespace {

using internal::to_absl;

constexpr int64_t kNanosPerMilli = 1'000'000;
constexpr int64_t kNanosPerSecond = 1'000 * kNanosPerMilli;
constexpr int64_t kNanosPerMinute = 60 * kNanosPerSecond;

absl::Status bad_duration(std::string_view text, std::string_view why = "") {
  return absl::InvalidArgumentError(
      absl::StrCat("bad duration \"", to_absl(text), "\" (",
                   why.empty() ? "expected a number followed by ms, s or m" : to_absl(why), ")"));
}

// Writes `value / unit` as a decimal with trailing zeros trimmed, e.g. (1500ms, 1s) -> "1.5".
std::string decimal(uint64_t value, uint64_t unit) {
  std::string out = absl::StrCat(value / unit);
  uint64_t rest = value % unit;
  if (rest == 0) return out;
  out += '.';
  for (uint64_t digit = unit / 10; rest != 0 && digit != 0; digit /= 10) {
    out += static_cast<char>('0' + rest / digit);
    rest %= digit;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  if (text.starts_with('-')) return bad_duration(text, "durations cannot be negative");

  // Split "<digits>[.<digits>]<unit>".
  size_t i = 0;
  while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
  const std::string_view whole = text.substr(0, i);
  std::string_view fraction;
  if (i < text.size() && text[i] == '.') {
    const size_t start = ++i;
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
    fraction = text.substr(start, i - start);
    if (fraction.empty()) return bad_duration(text);
  }
  if (whole.empty()) return bad_duration(text);
  const std::string_view unit = text.substr(i);

  int64_t unit_nanos;
  if (unit == "ms") {
    unit_nanos = kNanosPerMilli;
  } else if (unit == "s") {
    unit_nanos = kNanosPerSecond;
  } else if (unit == "m") {
    unit_nanos = kNanosPerMinute;
  } else if (unit.empty()) {
    return bad_duration(text);
  } else {
    return bad_duration(text,
                        absl::StrCat("unknown unit \"", to_absl(unit), "\": expected ms, s or m"));
  }

  // Integer arithmetic throughout, so "0.1s" is exactly 100ms (no floating-point rounding).
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t nanos = 0;
  for (char c : whole) {
    if (nanos > (kMax / unit_nanos - (c - '0')) / 10) return bad_duration(text, "too large");
    nanos = nanos * 10 + (c - '0');
  }
  nanos *= unit_nanos;
  int64_t place = unit_nanos;
  for (char c : fraction) {
    place /= 10;
    if (place == 0) {
      if (c != '0') return bad_duration(text, "more precise than one nanosecond");
      continue;
    }
    if (nanos > kMax - (c - '0') * place) return bad_duration(text, "too large");
    nanos += (c - '0') * place;
  }
  return std::chrono::nanoseconds(nanos);
}

std::string format_duration(std::chrono::nanoseconds d) {
  const int64_t count = d.count();
  if (count == 0) return "0s";
  // Work on the magnitude as unsigned so that the minimum int64 does not overflow.
  const uint64_t magnitude =
      count < 0 ? uint64_t{0} - static_cast<uint64_t>(count) : static_cast<uint64_t>(count);
  const std::string sign = count < 0 ? "-" : "";
  if (magnitude % kNanosPerMinute == 0) {
    return absl::StrCat(sign, magnitude / kNanosPerMinute, "m");
  }
  // Seconds read best from 1s up, as long as they need no more than millisecond digits.
  if (magnitude >= kNanosPerSecond && magnitude % kNanosPerMilli == 0) {
    return absl::StrCat(sign, decimal(magnitude, kNanosPerSecond), "s");
  }
  return absl::StrCat(sign, decimal(magnitude, kNanosPerMilli), "ms");
}

}  // namespace curfew::config
