// How a gRPC status is derived from what HTTP/2 says when the gRPC trailers do not, and the
// reverse for resetting a stream.
//
// gRPC codes are absl::StatusCode values: both enumerations number the codes identically (OK 0
// to UNAUTHENTICATED 16). HTTP/2 error codes are plain uint32_t, as frames and nghttp2 carry
// them; wire/h2_error.h names them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace curfew::wire {

// The gRPC code for a response whose HTTP :status is `http_status` and that carries no
// grpc-status (grpc/grpc doc/http-grpc-status-mapping.md): 400 and 431 INTERNAL,
// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502, 503 and 504
// UNAVAILABLE, any other UNKNOWN, 200 included (a real success would carry grpc-status).
// Only for that case: a grpc-status, when present, always wins. 1xx responses are interim and
// must be skipped by the caller, not mapped.
absl::StatusCode grpc_code_from_http_status(int http_status);

// The HTTP status a :status value carries (three digits), or 0 when it is absent or malformed.
int http_status_of(std::optional<std::string_view> status_value);

// The gRPC code for a stream reset by the peer with RST_STREAM, or left unfinished by a GOAWAY,
// carrying HTTP/2 error `h2_error` (PROTOCOL-HTTP2.md, "Errors"): REFUSED_STREAM UNAVAILABLE
// (nothing was processed: the call may be retried), CANCEL CANCELLED, ENHANCE_YOUR_CALM
// RESOURCE_EXHAUSTED, INADEQUATE_SECURITY PERMISSION_DENIED, every other code, unknown ones
// included, INTERNAL.
//
// NO_ERROR maps to INTERNAL because a call that ends without trailers did not succeed. The
// caller's duty: a peer may reset with NO_ERROR right after a complete response (trailers with
// END_STREAM received, PROTOCOL-HTTP2.md "Early Server Closure"); that call already has its
// status from the trailers and must not be passed through this.
absl::StatusCode grpc_code_from_h2_error(uint32_t h2_error);

// The HTTP/2 error code for resetting a stream toward a peer because the call ended with `code`:
//   - CANCEL for CANCELLED and DEADLINE_EXCEEDED: an expired deadline is a cancellation on the
//     wire (PROTOCOL-HTTP2.md, "Client Cancellation"), and CANCEL is what tells the peer to stop
//     working for a caller that no longer waits, not that it misbehaved;
//   - NO_ERROR for OK: the call completed and the reset only frees the stream ("Early Server
//     Closure");
//   - INTERNAL_ERROR for every other code: HTTP/2 has no error code for the other gRPC failures
//     (a gRPC status belongs in trailers, which a reset cannot carry), and REFUSED_STREAM or
//     ENHANCE_YOUR_CALM would assert things to the peer (nothing processed, it misbehaved) that a
//     gRPC code does not establish.
uint32_t rst_stream_code_for(absl::StatusCode code);

// Parses a grpc-status header value: the decimal code 0 to 16, without sign, whitespace or
// leading zero. Returns an UNKNOWN status whose message gives the reason for anything else
// (empty, not a number, a code gRPC does not define), so that a caller can fail the call with it.
absl::StatusOr<absl::StatusCode> parse_grpc_status(std::string_view value);

}  // namespace curfew::wire
