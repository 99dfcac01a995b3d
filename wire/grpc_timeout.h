// The grpc-timeout request header (PROTOCOL-HTTP2.md, "Timeout"): 1 to 8 ASCII digits followed
// by one unit letter, H M S m u n (hours down to nanoseconds).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace curfew::wire {

// Parses a grpc-timeout value such as "250m" or "1S".
//
// Returns std::nullopt for anything the grammar does not allow: an empty value, no digits or
// more than 8, a sign, whitespace, a missing, unknown or repeated unit. "0n" (and any zero) is
// accepted and means an already expired deadline. A value too large for std::chrono::nanoseconds
// (only hours can be: 99999999H) saturates to std::chrono::nanoseconds::max().
std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value);

// Formats `timeout` as a grpc-timeout value.
//
// Uses the finest unit whose count fits in 8 digits, rounding up when the count is not exact so
// that the peer never sees a shorter timeout than ours: 99999999ns is "99999999n", 100000000ns
// is "100000u" and 100000001ns is "100001u". Zero or a negative timeout becomes "1n", as gRPC
// does: an already expired deadline still goes on the wire, as the smallest positive timeout.
// For every `timeout` > 0, parse_grpc_timeout(format_grpc_timeout(timeout)) >= timeout, and the
// excess is below one unit of the chosen scale (a relative error of at most about 1e-5 once the
// unit is coarser than nanoseconds, none in nanoseconds).
std::string format_grpc_timeout(std::chrono::nanoseconds timeout);

}  // namespace curfew::wire
