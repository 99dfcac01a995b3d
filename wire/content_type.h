// Whether a content-type is gRPC's (PROTOCOL-HTTP2.md, "Content-Type"): "application/grpc",
// optionally with a "+" suffix naming the message format ("+proto", "+json", custom).
#pragma once

#include <string_view>

namespace curfew::wire {

// True for "application/grpc" exactly, followed by a '+' suffix ("application/grpc+proto"), or
// followed by media type parameters (";", optionally after spaces or tabs, as HTTP allows).
// The type and subtype are matched case-insensitively, as HTTP says media types are; the suffix
// and parameters are not inspected. False for everything else, notably "application/grpc-web"
// (gRPC-Web, a different protocol) and "application/grpcfoo".
bool is_grpc_content_type(std::string_view content_type);

}  // namespace curfew::wire
