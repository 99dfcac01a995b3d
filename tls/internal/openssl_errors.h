// OpenSSL's per-thread error queue as text for error messages.
//
// The queue belongs to the loop thread, which runs many connections: every TLS call clears it
// first (SSL_get_error() is only meaningful that way) and every failure takes what it left.
#pragma once

#include <string>

namespace curfew::tls::internal {

// The reasons queued on this thread since the last clear, oldest first, joined with "; " (e.g.
// "certificate verify failed"), and empties the queue. `fallback` when nothing was queued.
std::string take_openssl_errors(const std::string& fallback = "unknown TLS error");

}  // namespace curfew::tls::internal
