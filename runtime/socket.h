// Sockets on an epoll loop (asyncio's streams, reduced to what an HTTP/2 proxy needs): a
// listening socket that accepts, a connected stream that reads and writes, and connect().
//
//   rt::Listener listener = rt::Listener::bind(loop, address);   // throws std::system_error
//   rt::Socket conn = co_await listener.accept();
//   size_t n = co_await conn.read_some(buf);                       // 0: the peer closed
//   co_await conn.write_all(bytes);
//
// Every wait is a cancellation point (FdWatch's). Errors are std::system_error naming the call.
// A Socket owns its fd and its FdWatch; move it only while no task waits on it.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "runtime/fd_watch.h"
#include "runtime/loop.h"
#include "runtime/task.h"

namespace curfew::rt {

// An IPv4/IPv6 address and port, a unix-domain path ("unix:/path", "unix-abstract:name"), or a
// vsock address ("vsock:CID:PORT", a VM's host or guest).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  // "127.0.0.1:8080", "[::1]:8080", "unix:/run/x.sock", "unix-abstract:name", "vsock:2:5000".
  // Throws
  // std::invalid_argument naming the problem.
  static SocketAddress parse(std::string_view text);
  std::string to_string() const;
  int family() const noexcept { return storage.ss_family; }
  // The same bytes (addresses are built zero-filled, so padding compares equal).
  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
    return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
  }
};

// A connected, non-blocking stream socket registered on one loop.
class Socket {
 public:
  Socket() = default;
  // Takes ownership of `fd` (non-blocking) and registers it on `loop` (if that fails, closes
  // `fd` and throws std::system_error).
  Socket(Loop& loop, int fd);
  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  ~Socket();

  bool is_open() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  // The peer's address (empty when unknown).
  const std::string& peer() const noexcept { return peer_; }
  void set_peer(std::string peer) { peer_ = std::move(peer); }

  // Reads what is there (at least one byte, waiting for it), or 0 at end of stream.
  Task<size_t> read_some(std::span<char> buf);
  // Writes every byte, waiting for the socket to take them.
  Task<void> write_all(std::string_view bytes);
  // One non-blocking write: how much the socket took now (0 when full). Throws on error.
  size_t try_write(std::string_view bytes);
  // One non-blocking read: bytes read, 0 at end of stream, -1 when nothing is there now.
  long try_read(std::span<char> buf);
  FdWatch& watch() noexcept { return *watch_; }

  // Half-closes the sending side (FIN), then the receiving side stays readable.
  void shutdown_write() noexcept;
  // Shuts both directions down: a task waiting to read wakes and reads end of stream.
  void shutdown_both() noexcept;
  // Closes at once; with `reset`, an RST instead of a FIN (SO_LINGER 0).
  void close(bool reset = false) noexcept;

 private:
  int fd_ = -1;
  std::unique_ptr<FdWatch> watch_;  // heap: a move keeps the watch's address, which epoll holds
  std::string peer_;
};

// A listening socket on one loop.
class Listener {
 public:
  // Binds and listens (SO_REUSEADDR; backlog 1024). Throws std::system_error naming the address.
  static Listener bind(Loop& loop, const SocketAddress& address);
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&&) = delete;
  ~Listener();

  // The bound address (with the port the kernel chose for port 0).
  SocketAddress local_address() const;
  // Waits for the next connection (TCP_NODELAY set, non-blocking) and returns its fd with the
  // peer's address; the caller wraps it in a Socket on the loop that will serve it.
  struct Accepted {
    int fd = -1;
    std::string peer;
  };
  Task<Accepted> accept();

 private:
  Listener(Loop& loop, int fd);
  int fd_ = -1;
  std::unique_ptr<FdWatch> watch_;
};

// Connects to `address` from `loop`, waiting at most until the caller's deadline scope says
// (wrap it in a Timeout). TCP_NODELAY on TCP. Throws std::system_error naming the address.
Task<Socket> connect(Loop& loop, const SocketAddress& address);

}  // namespace curfew::rt
