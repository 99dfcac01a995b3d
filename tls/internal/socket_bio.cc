#include "tls/internal/socket_bio.h"

#include <openssl/bio.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

namespace curfew::tls::internal {
namespace {

struct State {
  int fd = -1;
  int error = 0;
  bool eof = false;
};

State* state(BIO* bio) noexcept { return static_cast<State*>(BIO_get_data(bio)); }

int bio_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  State* s = state(bio);
  for (;;) {
    const ssize_t n = ::send(s->fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_write(bio);
    } else {
      s->error = errno;
    }
    return -1;
  }
}

int bio_read(BIO* bio, char* out, int size) {
  BIO_clear_retry_flags(bio);
  State* s = state(bio);
  for (;;) {
    const ssize_t n = ::recv(s->fd, out, static_cast<size_t>(size), 0);
    if (n > 0) return static_cast<int>(n);
    if (n == 0) {
      s->eof = true;  // BIO_eof() says so: OpenSSL tells a peer's EOF from an error by it
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(bio);
    } else {
      s->error = errno;
    }
    return -1;
  }
}

long bio_ctrl(BIO* bio, int cmd, long /*num*/, void* ptr) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:  // nothing is buffered here
      return 1;
    case BIO_CTRL_EOF:
      return state(bio)->eof ? 1 : 0;
    case BIO_C_GET_FD:
      if (ptr != nullptr) *static_cast<int*>(ptr) = state(bio)->fd;
      return state(bio)->fd;
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_data(bio, nullptr);
  return 1;
}

int bio_destroy(BIO* bio) {
  delete state(bio);
  BIO_set_data(bio, nullptr);
  BIO_set_init(bio, 0);
  return 1;
}

const BIO_METHOD* method() {
  // Built once per process (thread-safe static) and never freed: it is shared by every BIO.
  static BIO_METHOD* const m = [] {
    BIO_METHOD* built = BIO_meth_new(
        BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "curfew socket");
    if (built == nullptr) return built;
    BIO_meth_set_write(built, bio_write);
    BIO_meth_set_read(built, bio_read);
    BIO_meth_set_ctrl(built, bio_ctrl);
    BIO_meth_set_create(built, bio_create);
    BIO_meth_set_destroy(built, bio_destroy);
    return built;
  }();
  return m;
}

}  // namespace

BIO* new_socket_bio(int fd) {
  const BIO_METHOD* m = method();
  if (m == nullptr) return nullptr;
  auto s = std::make_unique<State>(State{.fd = fd});
  BIO* bio = BIO_new(m);
  if (bio == nullptr) return nullptr;
  BIO_set_data(bio, s.release());  // freed by bio_destroy
  BIO_set_init(bio, 1);
  return bio;
}

int socket_bio_error(BIO* bio) noexcept {
  const State* s = state(bio);
  return s != nullptr ? s->error : 0;
}

}  // namespace curfew::tls::internal
