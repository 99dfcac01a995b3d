#include "runtime/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace curfew::rt {
namespace {

std::system_error sys_error(int err, const std::string& what) {
  return std::system_error(err, std::generic_category(), what);
}

void set_nodelay(int fd, int family) {
  if (family != AF_INET && family != AF_INET6) return;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string address_string(const sockaddr* sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN] = {};
  switch (sa->sa_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
      const size_t path_len = len > offsetof(sockaddr_un, sun_path)
                                  ? static_cast<size_t>(len) - offsetof(sockaddr_un, sun_path)
                                  : 0;
      if (path_len == 0) return "unix:";
      if (un->sun_path[0] == '\0')
        return "unix-abstract:" + std::string(un->sun_path + 1, path_len - 1);
      return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, path_len));
    }
    case AF_VSOCK: {
      const auto* vm = reinterpret_cast<const sockaddr_vm*>(sa);
      return "vsock:" + std::to_string(vm->svm_cid) + ":" + std::to_string(vm->svm_port);
    }
    default:
      return "";
  }
}

}  // namespace

SocketAddress SocketAddress::parse(std::string_view text) {
  SocketAddress out;
  auto unix_address = [&](std::string_view path, bool abstract) {
    auto* un = reinterpret_cast<sockaddr_un*>(&out.storage);
    un->sun_family = AF_UNIX;
    const size_t offset = abstract ? 1 : 0;
    if (path.empty() || path.size() + offset >= sizeof un->sun_path)
      throw std::invalid_argument("socket address \"" + std::string(text) +
                                  "\": unix path empty or longer than " +
                                  std::to_string(sizeof un->sun_path - 1 - offset) + " bytes");
    std::memcpy(un->sun_path + offset, path.data(), path.size());
    out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset + path.size() +
                                        (abstract ? 0 : 1));
    return out;
  };
  if (text.starts_with("unix:")) return unix_address(text.substr(5), false);
  if (text.starts_with("unix-abstract:")) return unix_address(text.substr(14), true);

  if (text.starts_with("vsock:")) {  // vsock:CID:PORT, both 32-bit numbers
    const std::string_view rest = text.substr(6);
    const size_t colon = rest.find(':');
    unsigned cid = 0, port = 0;
    const auto number = [](std::string_view digits, unsigned& value) {
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      return !digits.empty() && ec == std::errc() && end == digits.data() + digits.size();
    };
    if (colon == std::string_view::npos || !number(rest.substr(0, colon), cid) ||
        !number(rest.substr(colon + 1), port))
      throw std::invalid_argument("socket address \"" + std::string(text) +
                                  "\": expected vsock:CID:PORT (decimal numbers)");
    auto* vm = reinterpret_cast<sockaddr_vm*>(&out.storage);
    vm->svm_family = AF_VSOCK;
    vm->svm_cid = cid;
    vm->svm_port = port;
    out.length = sizeof(sockaddr_vm);
    return out;
  }

  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument("socket address \"" + std::string(text) + "\": no port");
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    throw std::invalid_argument("socket address \"" + std::string(text) + "\": bad port \"" +
                                std::string(port_text) + "\"");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    const std::string h(host.substr(1, host.size() - 2));
    if (::inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) != 1)
      throw std::invalid_argument("socket address \"" + std::string(text) +
                                  "\": not an IPv6 address");
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<uint16_t>(port));
  const std::string h(host);
  if (::inet_pton(AF_INET, h.c_str(), &in->sin_addr) != 1)
    throw std::invalid_argument("socket address \"" + std::string(text) +
                                "\": not an IPv4 address (names are resolved elsewhere)");
  out.length = sizeof(sockaddr_in);
  return out;
}

std::string SocketAddress::to_string() const {
  return address_string(reinterpret_cast<const sockaddr*>(&storage), length);
}

// --- Socket ---

Socket::Socket(Loop& loop, int fd) : fd_(fd) {
  try {
    watch_ = std::make_unique<FdWatch>(loop, fd);
  } catch (...) {
    ::close(fd);  // taken over: closed however this ends
    fd_ = -1;
    throw;
  }
}

Socket::Socket(Socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      watch_(std::move(other.watch_)),
      peer_(std::move(other.peer_)) {}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    watch_ = std::move(other.watch_);
    peer_ = std::move(other.peer_);
  }
  return *this;
}

Socket::~Socket() { close(); }

void Socket::close(bool reset) noexcept {
  if (fd_ < 0) return;
  watch_.reset();  // deregisters before the fd number can be reused
  if (reset) {
    linger l{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  ::close(fd_);
  fd_ = -1;
}

void Socket::shutdown_write() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Socket::shutdown_both() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

long Socket::try_read(std::span<char> buf) {
  for (;;) {
    const ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return -1;
    throw sys_error(errno, "read from " + peer_);
  }
}

size_t Socket::try_write(std::string_view bytes) {
  for (;;) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    throw sys_error(errno, "write to " + peer_);
  }
}

Task<size_t> Socket::read_some(std::span<char> buf) {
  // Bounded by the peer: each turn waits for a new edge.
  for (;;) {
    const long n = try_read(buf);
    if (n >= 0) co_return static_cast<size_t>(n);
    co_await watch_->readable();
  }
}

Task<void> Socket::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const size_t n = try_write(bytes);
    bytes.remove_prefix(n);
    if (!bytes.empty()) co_await watch_->writable();
  }
}

// --- Listener ---

Listener::Listener(Loop& loop, int fd) : fd_(fd), watch_(std::make_unique<FdWatch>(loop, fd)) {}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), watch_(std::move(other.watch_)) {}

Listener::~Listener() {
  if (fd_ < 0) return;
  watch_.reset();
  ::close(fd_);
}

Listener Listener::bind(Loop& loop, const SocketAddress& address) {
  const int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sys_error(errno, "socket for " + address.to_string());
  int one = 1;
  if (address.family() != AF_UNIX) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0 ||
      ::listen(fd, 1024) != 0) {
    const int err = errno;
    ::close(fd);
    throw sys_error(err, "listen on " + address.to_string());
  }
  return Listener(loop, fd);
}

SocketAddress Listener::local_address() const {
  SocketAddress out;
  out.length = sizeof out.storage;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&out.storage), &out.length);
  return out;
}

Task<Listener::Accepted> Listener::accept() {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd =
        ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd, peer.ss_family);
      co_return Accepted{fd, address_string(reinterpret_cast<sockaddr*>(&peer), len)};
    }
    if (errno == EAGAIN) {
      co_await watch_->readable();
    } else if (errno != EINTR && errno != ECONNABORTED) {  // ECONNABORTED: gave up while queued
      throw sys_error(errno, "accept");  // EMFILE and the like: the caller decides how to back off
    }
  }
}

Task<Socket> connect(Loop& loop, const SocketAddress& address) {
  const int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sys_error(errno, "socket for " + address.to_string());
  set_nodelay(fd, address.family());
  const bool in_progress =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0;
  const int connect_errno = errno;
  // Registered only now: epoll reports a socket that never connected as hung up, and that stale
  // edge would end the wait below at once.
  Socket socket(loop, fd);  // owns fd from here: closed however this ends
  socket.set_peer(address.to_string());
  if (in_progress && connect_errno != EINPROGRESS)
    throw sys_error(connect_errno, "connect to " + address.to_string());
  while (in_progress) {  // bounded by the caller's deadline; each turn waits for an edge
    co_await socket.watch().writable();
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) throw sys_error(err, "connect to " + address.to_string());
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0) break;
  }
  co_return socket;
}

}  // namespace curfew::rt
