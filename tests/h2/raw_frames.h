// Hand-written HTTP/2 frames and a blocking raw socket, for tests that play a peer no library
// would be (an attacker, or a client whose frames arrive in an unusual order).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace curfew_test {

inline std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const auto n = static_cast<uint32_t>(payload.size());
  f += static_cast<char>(n >> 16);
  f += static_cast<char>(n >> 8);
  f += static_cast<char>(n);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>(stream >> 16);
  f += static_cast<char>(stream >> 8);
  f += static_cast<char>(stream);
  return f + payload;
}

// HPACK "literal header field without indexing, new name" (RFC 7541 §6.2.2), lengths < 127.
inline std::string literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name +
         static_cast<char>(value.size()) + value;
}

inline std::string request_block() {
  return literal(":method", "POST") + literal(":scheme", "http") + literal(":path", "/a/B") +
         literal(":authority", "x") + literal("content-type", "application/grpc") +
         literal("te", "trailers");
}

inline int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{.tv_sec = 5, .tv_usec = 0};  // every read bounded
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads frames until EOF (or 5 s without bytes); returns the GOAWAY error code seen, or -1.
inline long read_until_close(int fd, bool* closed) {
  std::string buf;
  long goaway = -1;
  char chunk[65536];
  for (int i = 0; i < 100000; ++i) {  // bounded
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      *closed = n == 0 || errno == ECONNRESET;
      break;
    }
    buf.append(chunk, static_cast<size_t>(n));
    for (;;) {
      if (buf.size() < 9) break;
      const uint32_t len = (uint8_t(buf[0]) << 16) | (uint8_t(buf[1]) << 8) | uint8_t(buf[2]);
      if (buf.size() < 9 + len) break;
      if (buf[3] == 0x7 && len >= 8) {  // GOAWAY: last stream id, error code
        goaway = (uint8_t(buf[13]) << 24) | (uint8_t(buf[14]) << 16) | (uint8_t(buf[15]) << 8) |
                 uint8_t(buf[16]);
      }
      buf.erase(0, 9 + len);
    }
  }
  return goaway;
}

struct RawFrame {
  uint8_t type;
  uint8_t flags;
  uint32_t stream;
};

// Reads frames until `done(frames so far)` says so, EOF, or 5 s without bytes (bounded).
template <class Done>
std::vector<RawFrame> read_frames(int fd, Done&& done, bool* closed) {
  std::vector<RawFrame> frames;
  std::string buf;
  char chunk[65536];
  *closed = false;
  for (int i = 0; i < 100000 && !done(frames); ++i) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      *closed = n == 0 || errno == ECONNRESET;
      break;
    }
    buf.append(chunk, static_cast<size_t>(n));
    while (buf.size() >= 9) {
      const uint32_t len = (uint8_t(buf[0]) << 16) | (uint8_t(buf[1]) << 8) | uint8_t(buf[2]);
      if (buf.size() < 9 + len) break;
      frames.push_back({uint8_t(buf[3]), uint8_t(buf[4]),
                        ((uint8_t(buf[5]) & 0x7fU) << 24) | (uint8_t(buf[6]) << 16) |
                            (uint8_t(buf[7]) << 8) | uint8_t(buf[8])});
      buf.erase(0, 9 + len);
    }
  }
  return frames;
}

inline const std::string kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace curfew_test
