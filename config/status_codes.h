// gRPC status code names, as used by `retry.on` in config files.
//
// Kept here (rather than using grpc::StatusCode) so that the config library does not depend on
// gRPC; the numbers are fixed by the gRPC protocol and identical to grpc::StatusCode's values.

#pragma once

#include <optional>
#include <string_view>

namespace curfew::config {

// status_code_from_name()
//
// Returns the numeric code for a canonical upper-case name such as "UNAVAILABLE" (14), or
// std::nullopt if `name` is not one of the 17 gRPC status codes.
std::optional<int> status_code_from_name(std::string_view name);

// status_code_name()
//
// Returns the canonical name of `code`, or "UNKNOWN_CODE" if it is outside [0, 16].
std::string_view status_code_name(int code);

// kStatusCodeNames
//
// All 17 names, indexed by code: "OK", "CANCELLED", ..., "UNAUTHENTICATED".
inline constexpr const char* kStatusCodeNames[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

}  // namespace curfew::config
