// A BIO on a non-blocking socket that never raises SIGPIPE.
//
// OpenSSL's own socket BIO writes with write(2): a peer that reset the connection would kill
// curfew with SIGPIPE, which it does not ignore (the runtime's sockets send with MSG_NOSIGNAL).
// This one sends with MSG_NOSIGNAL, reports EAGAIN as "retry" (SSL_ERROR_WANT_READ/WRITE), and
// keeps the errno of the last failed call for error messages.
#pragma once

#include <openssl/types.h>

namespace curfew::tls::internal {

// A new BIO on `fd` (not owned: freeing the BIO leaves the fd open), or null when out of memory.
BIO* new_socket_bio(int fd);

// The errno of the BIO's last failed read or write (0 when none failed, or at end of stream).
int socket_bio_error(BIO* bio) noexcept;

}  // namespace curfew::tls::internal
