// RawH2Upstream: an HTTP/2 "gRPC server" written frame by frame, for behaviour no library
// offers on demand: refusing a chosen stream (RST_STREAM REFUSED_STREAM), sending GOAWAY before
// processing it, going silent without closing, or answering only after some PINGs. Streams it
// answers get a gRPC echo: their request body sent back as the response body, with grpc-status 0.
// It records every stream it saw, in order, with the request bytes.
//
// One thread, blocking sockets with 5 s read timeouts, on 127.0.0.1; at most 16 connections.
// Stopped and joined when destroyed, however the test ends.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "raw_frames.h"  // tests/h2: frame(), literal()

namespace curfew::testing {

class RawH2Upstream {
 public:
  enum class Action {
    kAnswer,            // echo the request
    kRefuse,            // RST_STREAM REFUSED_STREAM
    kGoaway,            // GOAWAY below this stream, then close gracefully
    kGoSilent,          // from this stream's HEADERS on, the connection answers nothing (not
                        // even PINGs) but stays open: a peer that vanished without a FIN
    kAnswerAfterPings,  // echo, but only once the connection has seen 3 PINGs (a slow peer)
  };

  struct SeenStream {
    int connection;
    uint32_t id;
    Action action;
    std::string body;  // the request bytes received (complete only for answered streams)
  };

  // The n-th stream the upstream sees (0-based, over all connections) gets actions[n]; streams
  // past the list are answered.
  explicit RawH2Upstream(std::vector<Action> actions) : actions_(actions.begin(), actions.end()) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  RawH2Upstream(const RawH2Upstream&) = delete;
  RawH2Upstream& operator=(const RawH2Upstream&) = delete;
  ~RawH2Upstream() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    {
      std::lock_guard lock(mu_);
      if (conn_fd_ >= 0) ::shutdown(conn_fd_, SHUT_RDWR);
    }
    thread_.join();
    ::close(listen_fd_);
  }

  int port() const { return port_; }
  std::vector<SeenStream> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  int connections() const { return connections_.load(); }
  int pings() const { return pings_.load(); }  // PINGs received and acknowledged

 private:
  static std::string u32(uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
            static_cast<char>(v)};
  }
  static void send_all(int fd, const std::string& bytes) {
    for (size_t off = 0; off < bytes.size();) {
      const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  void serve() {
    for (int c = 0; c < 16 && !stop_; ++c) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      timeval tv{.tv_sec = 5, .tv_usec = 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      const int one = 1;  // every frame leaves when written (no Nagle delay behind a close)
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      {
        std::lock_guard lock(mu_);
        conn_fd_ = fd;
      }
      ++connections_;
      serve_connection(fd, c);
      {
        std::lock_guard lock(mu_);
        conn_fd_ = -1;
      }
      ::close(fd);
    }
  }

  // Serves one connection until it closes, a GOAWAY was sent, or 5 s pass without bytes.
  void serve_connection(int fd, int connection) {
    send_all(fd, curfew_test::frame(0x4, 0, 0, ""));  // our SETTINGS (defaults)
    std::string buf;
    size_t preface = 24;
    std::map<uint32_t, size_t> streams;  // stream id -> index in seen_
    bool silent = false;                 // kGoSilent: nothing more is sent
    int pings = 0;
    std::vector<std::pair<uint32_t, std::string>> waiting;  // kAnswerAfterPings, not answered yet
    auto answer = [&](uint32_t id, const std::string& body) {
      send_all(fd,
               curfew_test::frame(0x1, 0x4, id,
                                  curfew_test::literal(":status", "200") +
                                      curfew_test::literal("content-type", "application/grpc")));
      send_all(fd, curfew_test::frame(0x0, 0, id, body));
      send_all(fd, curfew_test::frame(0x1, 0x5, id, curfew_test::literal("grpc-status", "0")));
    };
    char chunk[65536];
    for (int i = 0; i < 100000 && !stop_; ++i) {  // bounded
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
      const size_t skip = std::min(preface, buf.size());
      buf.erase(0, skip);
      preface -= skip;
      while (buf.size() >= 9) {
        const uint32_t len = (uint8_t(buf[0]) << 16) | (uint8_t(buf[1]) << 8) | uint8_t(buf[2]);
        if (buf.size() < 9 + len) break;
        const uint8_t type = buf[3], flags = buf[4];
        const uint32_t id = ((uint8_t(buf[5]) & 0x7fU) << 24) | (uint8_t(buf[6]) << 16) |
                            (uint8_t(buf[7]) << 8) | uint8_t(buf[8]);
        const std::string payload = buf.substr(9, len);
        buf.erase(0, 9 + len);
        if (silent) continue;
        if (type == 0x4 && (flags & 0x1) == 0)
          send_all(fd, curfew_test::frame(0x4, 0x1, 0, ""));  // ACK
        if (type == 0x6 && (flags & 0x1) == 0) {
          send_all(fd, curfew_test::frame(0x6, 0x1, 0, payload));
          ++pings_;
          if (++pings >= 3) {
            for (const auto& [waiting_id, body] : waiting) answer(waiting_id, body);
            waiting.clear();
          }
        }
        if (type == 0x1 && streams.count(id) == 0) {
          Action action = Action::kAnswer;
          {
            std::lock_guard lock(mu_);
            if (!actions_.empty()) {
              action = actions_.front();
              actions_.pop_front();
            }
            streams[id] = seen_.size();
            seen_.push_back({connection, id, action, ""});
          }
          if (action == Action::kRefuse) send_all(fd, curfew_test::frame(0x3, 0, id, u32(0x7)));
          if (action == Action::kGoSilent) silent = true;
          if (action == Action::kGoaway) {
            // Last stream id below this one: the client knows it was never processed.
            send_all(fd, curfew_test::frame(0x7, 0, 0, u32(id - 2 > id ? 0 : id - 2) + u32(0)));
            // A graceful close, as a server would: no more writes, then read until the client
            // closes. Closing at once with the client's bytes unread would send a TCP reset,
            // which may overtake the GOAWAY.
            ::shutdown(fd, SHUT_WR);
            for (int j = 0; j < 1000 && ::read(fd, chunk, sizeof chunk) > 0; ++j) {
            }
            return;
          }
        }
        if (type == 0x0 && streams.count(id) != 0) {
          std::string data = payload;
          if ((flags & 0x8) != 0 && !data.empty())
            data = data.substr(1, data.size() - 1 - uint8_t(data[0]));
          Action action;
          {
            std::lock_guard lock(mu_);
            seen_[streams[id]].body += data;
            action = seen_[streams[id]].action;
          }
          // Return the bytes' flow-control credit (stream and connection).
          if (!payload.empty()) {
            send_all(fd, curfew_test::frame(0x8, 0, 0, u32(static_cast<uint32_t>(payload.size()))));
            if (action == Action::kAnswer || action == Action::kAnswerAfterPings)
              send_all(fd,
                       curfew_test::frame(0x8, 0, id, u32(static_cast<uint32_t>(payload.size()))));
          }
        }
        if ((type == 0x0 || type == 0x1) && (flags & 0x1) != 0 && streams.count(id) != 0) {
          std::string body;
          Action action;
          {
            std::lock_guard lock(mu_);
            body = seen_[streams[id]].body;
            action = seen_[streams[id]].action;
          }
          if (action == Action::kAnswer) answer(id, body);
          if (action == Action::kAnswerAfterPings) {
            if (pings >= 3) {
              answer(id, body);
            } else {
              waiting.emplace_back(id, body);
            }
          }
        }
      }
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> pings_{0};
  mutable std::mutex mu_;
  int conn_fd_ = -1;
  std::deque<Action> actions_;
  std::vector<SeenStream> seen_;
};

}  // namespace curfew::testing
