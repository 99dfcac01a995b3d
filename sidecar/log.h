// Minimal leveled logging to stderr, one line per event with a UTC timestamp. (Debian's Abseil
// 20220623 predates absl/log.) Nothing secret is logged: no metadata values, no payloads.
#pragma once

#include <string_view>

namespace curfew::sidecar {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void set_log_level(LogLevel level) noexcept;
// Parses "debug", "info", "warning", "error".
bool parse_log_level(std::string_view text, LogLevel* level) noexcept;
void log(LogLevel level, std::string_view message);

}  // namespace curfew::sidecar
