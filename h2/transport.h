// Transport: the byte stream an h2::Session runs on: a plain socket (SocketTransport), or TLS
// over one. The session's reader and writer use it at once, from the loop thread only.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "runtime/socket.h"
#include "runtime/task.h"

namespace curfew::h2 {

class Transport {
 public:
  virtual ~Transport() = default;
  // Reads what is there, waiting for at least one byte; 0 when the peer closed. Throws
  // std::system_error.
  virtual rt::Task<size_t> read_some(std::span<char> buf) = 0;
  // Waits for the next sign that read_some has bytes (an edge); may wake with nothing to read.
  virtual rt::Task<void> readable() = 0;
  // Writes what it can now, without waiting (possibly nothing). Throws std::system_error.
  virtual size_t try_write(std::string_view bytes) = 0;
  // Waits until try_write can make progress.
  virtual rt::Task<void> writable() = 0;
  // Both directions end (the reader sees EOF); the fd stays open until close().
  virtual void shutdown_both() noexcept = 0;
  virtual void close() noexcept = 0;
  // The peer's address, for logs (may be empty).
  virtual const std::string& peer() const noexcept = 0;
};

// A plain TCP or unix socket.
class SocketTransport final : public Transport {
 public:
  explicit SocketTransport(rt::Socket socket) : socket_(std::move(socket)) {}
  rt::Task<size_t> read_some(std::span<char> buf) override { return socket_.read_some(buf); }
  rt::Task<void> readable() override { co_await socket_.watch().readable(); }
  size_t try_write(std::string_view bytes) override { return socket_.try_write(bytes); }
  rt::Task<void> writable() override { co_await socket_.watch().writable(); }
  void shutdown_both() noexcept override { socket_.shutdown_both(); }
  void close() noexcept override { socket_.close(); }
  const std::string& peer() const noexcept override { return socket_.peer(); }

 private:
  rt::Socket socket_;
};

}  // namespace curfew::h2
