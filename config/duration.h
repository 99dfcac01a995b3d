// Durations as written in curfew config files: "250ms", "1.5s", "2m".

#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace curfew::config {

// parse_duration()
//
// Parses a non-negative decimal number immediately followed by a unit, which is exactly one of
// `ms`, `s` or `m` (minutes): "250ms", "1s", "1.5s", "2m", "0s". Anything else ("25", "-1s",
// "1h", "1 s", "1m30s") is an InvalidArgumentError whose message says what was expected.
// Precision finer than one nanosecond is an error rather than silently rounded.
absl::StatusOr<std::chrono::nanoseconds> parse_duration(std::string_view text);

// format_duration()
//
// Formats `d` in the most readable unit such that parse_duration() gives back exactly `d`:
// 0 -> "0s", 2min -> "2m", 30s -> "30s", 1500ms -> "1.5s", 250ms -> "250ms", 100us -> "0.1ms".
// Negative durations get a leading "-" (for diagnostics; parse_duration() rejects them).
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace curfew::config
