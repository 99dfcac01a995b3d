// The percent-encoding of the grpc-message trailer (PROTOCOL-HTTP2.md, "Status-Message"): the
// status message is UTF-8, and every byte outside printable ASCII, and '%' itself, travels as
// "%XX".
#pragma once

#include <string>
#include <string_view>

namespace curfew::wire {

// Encodes `message` for the grpc-message header: each byte outside 0x20..0x7E, and '%', becomes
// '%' and two uppercase hex digits; every other byte, space included, is kept.
// encode_grpc_message("a b%\n") == "a b%25%0A".
std::string encode_grpc_message(std::string_view message);

// Decodes a grpc-message value. Lenient, as the spec requires ("MUST NOT error or throw away
// the message") and as gRPC does: a '%' not followed by two hex digits (either case) is kept
// literally, so "100%", "%4" and "%zz" decode to themselves.
// For every byte string x, decode_grpc_message(encode_grpc_message(x)) == x.
std::string decode_grpc_message(std::string_view value);

}  // namespace curfew::wire
