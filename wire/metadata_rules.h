// Which header fields a gRPC proxy forwards end to end, and the gRPC rules for custom metadata
// (PROTOCOL-HTTP2.md, "Custom-Metadata"; RFC 9113 §8.2).
#pragma once

#include <cstddef>
#include <string_view>

namespace curfew::wire {

// True for a pseudo-header (":method", ":status"...): the caller builds them per hop.
constexpr bool is_pseudo_header(std::string_view name) noexcept {
  return !name.empty() && name.front() == ':';
}

// True for a field that describes one HTTP connection rather than the call (RFC 9113 §8.2.2):
// connection, keep-alive, proxy-connection, transfer-encoding, upgrade, and te with any value
// other than "trailers" (gRPC requires "te: trailers" on requests, so that one is forwarded).
// HTTP/2 forbids these, but a peer may still send them and they must not reach the next hop.
// Names match case-insensitively (HTTP/2 names are lowercase, but this is no place to enforce it).
bool is_connection_specific_header(std::string_view name, std::string_view value);

// True when a proxy may copy the field to the next hop as is: neither a pseudo-header nor
// connection-specific.
bool is_forwardable_header(std::string_view name, std::string_view value);

// True for a binary metadata key (name ending in "-bin"), whose value travels base64-encoded.
bool is_binary_header(std::string_view name);

// True for a valid gRPC metadata key: non-empty, only 0-9 a-z '_' '-' '.'. Uppercase is invalid
// (HTTP/2 requires lowercase names), and so is a pseudo-header's ':'.
bool is_valid_header_name(std::string_view name);

// True for a valid value of an ASCII (non -bin) key: only printable ASCII, 0x20 to 0x7E. The
// empty value is accepted: gRPC libraries send it although the grammar says 1*.
bool is_valid_ascii_value(std::string_view value);

// The size a field counts for in SETTINGS_MAX_HEADER_LIST_SIZE: its name and value lengths plus
// 32 (RFC 9113 §6.5.2, after RFC 7541 §4.1). gRPC suggests the same accounting for its own
// header list limits, with -bin values counted in their base64 form (as they travel).
constexpr size_t header_list_size(std::string_view name, std::string_view value) noexcept {
  return name.size() + value.size() + 32;
}

}  // namespace curfew::wire
