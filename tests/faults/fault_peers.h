// Faulty peers on 127.0.0.1 for the fault-injection tests: things that sit where a gRPC upstream
// should be (or where a caller should be) and misbehave at the TCP or HTTP/2 level.
//
//   FaultyUpstream(kSilent)        accepts connections and never sends a byte
//   FaultyUpstream(kBlackhole)     never accepts: its accept queue is full, so SYNs are dropped and
//                                  a connect hangs as it would towards a blackholed address
//   FaultyUpstream(kPlainTcp)      a plain-TCP service: answers with a banner and garbage
//   FaultyUpstream(kHttp2NotFound) an HTTP/2 server that is not gRPC: ":status 404", no grpc-status
//   FaultyUpstream(kHttp2Reset)    an HTTP/2 peer that resets every stream (RST_STREAM)
//   FaultyUpstream(kHttp2ResetMidStream) answers headers and one gRPC message, then (100 ms
//                                  later) RST_STREAM
//   SilentCaller                   a raw HTTP/2 client that opens streams and then says nothing
//   closed_port()                  a port nothing listens on (connection refused)
//
// Every peer runs one poll() thread, bounded in time per iteration, stopped by its destructor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace curfew::testing {

namespace h2 {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kPrefaceSize = 24;
enum : uint8_t {
  kData = 0,
  kHeaders = 1,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9
};
enum : uint8_t { kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4 };
enum : uint32_t {
  kNoError = 0,
  kProtocolError = 1,
  kInternalError = 2,
  kRefusedStream = 7,
  kCancel = 8
};

inline std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const uint32_t n = static_cast<uint32_t>(payload.size());
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>((stream >> 24) & 0x7f));
  f.push_back(static_cast<char>(stream >> 16));
  f.push_back(static_cast<char>(stream >> 8));
  f.push_back(static_cast<char>(stream));
  return f + payload;
}

inline std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// HPACK: a literal header field without indexing, the name taken from the static table.
inline std::string literal(uint8_t static_index, const std::string& value) {
  std::string out;
  out.push_back(static_cast<char>(static_index < 15 ? static_index : 15));
  if (static_index >= 15) out.push_back(static_cast<char>(static_index - 15));
  out.push_back(static_cast<char>(value.size()));  // values here are < 127 bytes
  return out + value;
}
// HPACK: a literal header field without indexing, with a literal name.
inline std::string literal(const std::string& name, const std::string& value) {
  std::string out(1, '\0');
  out.push_back(static_cast<char>(name.size()));
  out += name;
  out.push_back(static_cast<char>(value.size()));
  return out + value;
}

// One gRPC length-prefixed message.
inline std::string grpc_message(const std::string& bytes) {
  return std::string(1, '\0') + u32(static_cast<uint32_t>(bytes.size())) + bytes;
}

// Parses the frames in `buffer` (after the preface), calling on_frame(type, flags, stream,
// payload) for each complete one and erasing it.
template <class F>
void each_frame(std::string& buffer, F&& on_frame) {
  while (buffer.size() >= 9) {
    const auto b = [&](size_t i) { return static_cast<uint8_t>(buffer[i]); };
    const size_t n = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
    if (buffer.size() < 9 + n) return;
    const uint32_t stream =
        ((uint32_t{b(5)} & 0x7f) << 24) | (uint32_t{b(6)} << 16) | (uint32_t{b(7)} << 8) | b(8);
    const std::string payload = buffer.substr(9, n);
    const uint8_t type = b(3), flags = b(4);
    buffer.erase(0, 9 + n);
    on_frame(type, flags, stream, payload);
  }
}

}  // namespace h2

inline int listen_socket(int backlog) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(fd, backlog);
  return fd;
}

inline int bound_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

inline int connect_to(int port, bool nonblocking = false) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  return fd;
}

inline bool send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// A port that refuses connections: bound (so nobody else gets it) but never listening.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    port_ = bound_port(fd_);
  }
  ~ClosedPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class FaultyUpstream {
 public:
  enum class Mode {
    kSilent,
    kBlackhole,
    kPlainTcp,
    kHttp2NotFound,
    kHttp2Reset,
    kHttp2ResetMidStream
  };

  explicit FaultyUpstream(Mode mode, uint32_t reset_code = h2::kInternalError)
      : mode_(mode), reset_code_(reset_code) {
    listen_fd_ = listen_socket(mode == Mode::kBlackhole ? 0 : 64);
    port_ = bound_port(listen_fd_);
    if (mode == Mode::kBlackhole) {
      // Fill the accept queue (a backlog of 0 holds one connection): later SYNs are dropped.
      for (int i = 0; i < 2; ++i) fillers_.push_back(connect_to(port_, /*nonblocking=*/true));
    }
    thread_ = std::thread([this] { run(); });
  }
  ~FaultyUpstream() {
    stop_ = true;
    thread_.join();
    for (auto& [fd, c] : conns_) close(fd);
    for (int fd : fillers_) close(fd);
    close(listen_fd_);
  }
  FaultyUpstream(const FaultyUpstream&) = delete;
  FaultyUpstream& operator=(const FaultyUpstream&) = delete;

  int port() const { return port_; }
  // Connections accepted so far (0 for a blackhole).
  int connections() const { return connections_; }
  // HTTP/2 streams the peer saw opened (HEADERS frames).
  int streams() const { return streams_; }

 private:
  struct Conn {
    std::string in;
    bool preface = false;
  };

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds;
      if (mode_ != Mode::kBlackhole) fds.push_back({listen_fd_, POLLIN, 0});
      for (auto& [fd, c] : conns_) fds.push_back({fd, POLLIN, 0});
      send_due_resets();
      if (poll(fds.data(), fds.size(), 10) <= 0) continue;
      for (const pollfd& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (p.fd == listen_fd_) {
          const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) continue;
          ++connections_;
          conns_[fd] = Conn{};
          if (mode_ == Mode::kPlainTcp) send_all(fd, "SSH-2.0-OpenSSH_9.2 not-grpc\r\n");
          continue;
        }
        char buf[16384];
        const ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          close(p.fd);
          conns_.erase(p.fd);
          continue;
        }
        on_bytes(p.fd, conns_[p.fd], std::string(buf, static_cast<size_t>(n)));
      }
    }
  }

  void on_bytes(int fd, Conn& c, std::string bytes) {
    switch (mode_) {
      case Mode::kSilent:
      case Mode::kBlackhole:
        return;  // read and ignore, never answer
      case Mode::kPlainTcp:
        send_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nnot here :)");
        return;
      default:
        break;
    }
    c.in += bytes;
    if (!c.preface) {
      if (c.in.size() < h2::kPrefaceSize) return;
      c.in.erase(0, h2::kPrefaceSize);
      c.preface = true;
      send_all(fd, h2::frame(h2::kSettings, 0, 0, ""));
    }
    h2::each_frame(c.in, [&](uint8_t type, uint8_t flags, uint32_t stream,
                             const std::string& payload) {
      if (type == h2::kSettings && !(flags & h2::kAck)) {
        send_all(fd, h2::frame(h2::kSettings, h2::kAck, 0, ""));
      } else if (type == h2::kPing && !(flags & h2::kAck)) {
        send_all(fd, h2::frame(h2::kPing, h2::kAck, 0, payload));
      } else if ((type == h2::kHeaders || type == h2::kContinuation) && (flags & h2::kEndHeaders)) {
        ++streams_;
        answer(fd, stream);
      }
    });
  }

  void answer(int fd, uint32_t stream) {
    switch (mode_) {
      case Mode::kHttp2NotFound:
        // ":status 404" (static table entry 13), "content-type: text/html", end of stream.
        send_all(fd, h2::frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, stream,
                               std::string(1, '\x8d') + h2::literal(31, "text/html")));
        return;
      case Mode::kHttp2Reset:
        send_all(fd, h2::frame(h2::kRstStream, 0, stream, h2::u32(reset_code_)));
        return;
      case Mode::kHttp2ResetMidStream:
        // ":status 200" (entry 8), content-type application/grpc, one message
        // (curfew.demo.EchoReply{message: "partial"}), then the stream is reset.
        send_all(fd, h2::frame(h2::kHeaders, h2::kEndHeaders, stream,
                               std::string(1, '\x88') + h2::literal(31, "application/grpc")));
        send_all(fd, h2::frame(h2::kData, 0, stream,
                               h2::grpc_message(std::string("\x0a\x07partial", 9))));
        resets_.push_back(
            {std::chrono::steady_clock::now() + std::chrono::milliseconds(100), fd, stream});
        return;
      default:
        return;
    }
  }

  // Mid-stream resets are sent a little after the message, so that it is not lost with them.
  void send_due_resets() {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(resets_, [&](const Reset& r) {
      if (r.at > now) return false;
      if (conns_.count(r.fd))
        send_all(r.fd, h2::frame(h2::kRstStream, 0, r.stream, h2::u32(reset_code_)));
      return true;
    });
  }
  struct Reset {
    std::chrono::steady_clock::time_point at;
    int fd;
    uint32_t stream;
  };

  const Mode mode_;
  const uint32_t reset_code_;
  std::vector<Reset> resets_;  // the peer thread's only
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
  std::map<int, Conn> conns_;  // the peer thread's only
  std::atomic<int> connections_{0}, streams_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A caller at the HTTP/2 level that opens `streams` gRPC calls to `method` (no grpc-timeout, no
// request message, no end of stream) and then goes silent: it neither sends nor reads anything
// more until it is destroyed.
class SilentCaller {
 public:
  SilentCaller(int port, const std::string& method, int streams) {
    fd_ = connect_to(port);
    std::string out(h2::kPreface, h2::kPrefaceSize);
    out += h2::frame(h2::kSettings, 0, 0, "");
    for (int i = 0; i < streams; ++i) {
      const std::string block = std::string("\x83\x86", 2) +           // :method POST, :scheme http
                                h2::literal(4, method) +               // :path
                                h2::literal(1, "127.0.0.1") +          // :authority
                                h2::literal(31, "application/grpc") +  // content-type
                                h2::literal("te", "trailers");
      out += h2::frame(h2::kHeaders, h2::kEndHeaders, static_cast<uint32_t>(2 * i + 1), block);
    }
    sent_ = send_all(fd_, out);
  }
  ~SilentCaller() { close(fd_); }
  bool sent() const { return sent_; }

 private:
  int fd_ = -1;
  bool sent_ = false;
};

}  // namespace curfew::testing
