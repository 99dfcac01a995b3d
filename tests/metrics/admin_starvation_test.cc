// The admin port cannot be starved (issue 17): connections that stall in the request line, say
// nothing, dribble a header byte at a time or never read their answers, any number of them,
// never make a probe wait; a scrape in progress does not either. Raw sockets for the hostile
// clients, cpp-httplib for the probes (an independent client that sends Connection: close, like
// the kubelet). Every loop is bounded in count and time; only loopback addresses.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "metrics/admin_server.h"

namespace curfew::testing {
namespace {

using metrics::AdminServer;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::unique_ptr<AdminServer> start_admin(AdminServer::Options options) {
  auto admin = AdminServer::start(std::move(options));
  EXPECT_TRUE(admin.ok()) << admin.status();
  return admin.ok() ? std::move(*admin) : nullptr;
}

milliseconds ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
}

// A TCP connection to 127.0.0.1:port, closed when it goes. `receive_buffer` > 0 shrinks the
// socket's receive buffer (set before connecting, so the window is small from the start).
class RawConnection {
 public:
  explicit RawConnection(int port, int receive_buffer = 0)
      : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }

  // Sends what the socket takes now (never blocks): the bytes it took (0 when full), -1 once
  // the connection is gone.
  ssize_t send_some(std::string_view bytes) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n >= 0 ? n : (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  }
  bool send_now(std::string_view bytes) { return send_some(bytes) >= 0; }

  // Whether the server has closed this connection (EOF or reset) within `wait`; what it sent
  // before is read and dropped (at most `max_bytes`).
  bool closed_by_server(milliseconds wait, size_t max_bytes = 64 << 20) {
    const auto until = Clock::now() + wait;
    size_t read = 0;
    char buf[65536];
    while (read <= max_bytes) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count()))) <= 0) return false;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        return true;
      }
      if (n > 0) read += static_cast<size_t>(n);
    }
    return false;
  }

  // Everything the server sends until it closes the connection or `wait` passes.
  std::string read_until_closed(milliseconds wait) {
    const auto until = Clock::now() + wait;
    std::string got;
    char buf[4096];
    for (int i = 0; i < 10000 && Clock::now() < until; ++i) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        break;
      }
    }
    return got;
  }

 private:
  int fd_;
  bool connected_ = false;
};

// A connection that sent a request line and a header, and nothing more.
std::unique_ptr<RawConnection> stalled(int port) {
  auto c = std::make_unique<RawConnection>(port);
  c->send_now("GET /readyz HTTP/1.1\r\nHost: stalled\r\n");
  return c;
}

// A connection that sends requests and reads none of the answers, until the server stops
// taking its requests (for 100 ms): the server's writes have stalled, its send buffer and the
// connection's small receive buffer full.
std::unique_ptr<RawConnection> non_reader(int port) {
  auto c = std::make_unique<RawConnection>(port, 4096);
  std::string requests;
  for (int i = 0; i < 100; ++i) requests += "GET /healthz HTTP/1.1\r\nHost: nonreader\r\n\r\n";
  size_t at = 0;  // in `requests`, sent round and round without cutting a request in two
  int refused = 0;
  for (const auto until = Clock::now() + 3s; Clock::now() < until && refused < 20;) {
    const ssize_t n = c->send_some(std::string_view(requests).substr(at));
    if (n < 0) break;
    at = (at + static_cast<size_t>(n)) % requests.size();
    refused = n == 0 ? refused + 1 : 0;
    if (n == 0) std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(refused, 20) << "the server never stopped reading this connection";
  return c;
}

// Sends a request line, then a header byte every `every`, `bytes` times or until the server
// closes the connection (or `stop`).
void dribble(int port, milliseconds every, int bytes, const std::atomic<bool>& stop) {
  RawConnection c(port);
  if (!c.send_now("GET /healthz HTTP/1.1\r\n")) return;
  for (int i = 0; i < bytes && !stop; ++i) {
    if (!c.send_now("X")) return;
    std::this_thread::sleep_for(every);
  }
}

struct ProbeFigures {
  milliseconds slowest{0};
  milliseconds median{0};
  int answered = 0;  // 200s
};

// `rounds` times, `gap` apart: GET /readyz and GET /healthz, each on a new connection.
ProbeFigures probe(int port, int rounds, milliseconds gap = 0ms) {
  std::vector<milliseconds> took;
  ProbeFigures figures;
  for (int i = 0; i < rounds; ++i) {
    for (const char* path : {"/readyz", "/healthz"}) {
      httplib::Client c("127.0.0.1", port);
      c.set_connection_timeout(5);
      c.set_read_timeout(5);
      const auto t0 = Clock::now();
      auto res = c.Get(path);
      took.push_back(ms_since(t0));
      EXPECT_TRUE(res) << path << ": " << httplib::to_string(res.error());
      if (res && res->status == 200) ++figures.answered;
    }
    std::this_thread::sleep_for(gap);
  }
  std::sort(took.begin(), took.end());
  figures.slowest = took.back();
  figures.median = took[took.size() / 2];
  return figures;
}

// 64 connections stalled in their request head, 64 that say nothing, 8 that never read their
// answers and 8 that dribble a header byte every 100 ms, all opened before the probes and
// hostile throughout them; then 20 rounds of /readyz and /healthz, 50 ms apart.
// When `held_throughout`, the stalled and silent connections must all be open at the end: the
// probes were answered beside them, not after the server dropped them.
ProbeFigures probe_beside_hostile_connections(AdminServer::Options options, bool held_throughout) {
  options.address = "127.0.0.1:0";
  options.ready = [] { return true; };
  auto admin = start_admin(std::move(options));
  if (admin == nullptr) return {};
  const int port = admin->port();
  std::vector<std::unique_ptr<RawConnection>> held, non_readers;
  for (int i = 0; i < 64; ++i) {
    held.push_back(stalled(port));
    held.push_back(std::make_unique<RawConnection>(port));
  }
  for (const auto& c : held) EXPECT_TRUE(c->connected());
  for (int i = 0; i < 8; ++i) non_readers.push_back(non_reader(port));
  std::atomic<bool> stop{false};
  std::vector<std::thread> dribblers;
  for (int i = 0; i < 8; ++i) dribblers.emplace_back([&, port] { dribble(port, 100ms, 40, stop); });
  std::this_thread::sleep_for(200ms);  // every hostile connection is in place
  const ProbeFigures figures = probe(port, 20, 50ms);
  stop = true;
  for (auto& t : dribblers) t.join();
  EXPECT_EQ(figures.answered, 40);
  if (held_throughout) {
    int closed = 0;
    for (const auto& c : held) closed += c->closed_by_server(1ms);
    EXPECT_EQ(closed, 0);
  }
  return figures;
}

// Room for every hostile connection and time-outs longer than the test: the probes are answered
// promptly because nothing blocks the server, not because the hostile connections went away.
TEST(AdminStarvation, HostileConnectionsHeldOpenNeverDelayAProbe) {
  const ProbeFigures f = probe_beside_hostile_connections(
      {.request_timeout = 30s, .idle_timeout = 30s, .write_timeout = 30s, .max_connections = 512},
      true);
  std::printf(
      "[ admin ] 40 probes beside 152 hostile connections held open: slowest %lld ms, "
      "median %lld ms\n",
      static_cast<long long>(f.slowest.count()), static_cast<long long>(f.median.count()));
  EXPECT_LT(f.slowest, 1000ms);
}

// The same with the defaults curfew runs with (64 connections at most: the hostile ones are
// evicted as others come; the dribblers are cut at 2 s).
TEST(AdminStarvation, HostileConnectionsNeverDelayAProbeWithTheDefaults) {
  const ProbeFigures f = probe_beside_hostile_connections({}, false);
  std::printf(
      "[ admin ] 40 probes beside 152 hostile connections, default limits: slowest %lld "
      "ms, median %lld ms\n",
      static_cast<long long>(f.slowest.count()), static_cast<long long>(f.median.count()));
  EXPECT_LT(f.slowest, 1000ms);
}

// A connection that sends a request line only, one that sends nothing and one that keeps
// sending a header byte every 50 ms are all closed once their head is request_timeout late.
TEST(AdminStarvation, AnIncompleteRequestHeadIsClosedAfterTheRequestTimeout) {
  auto admin =
      start_admin({.address = "127.0.0.1:0", .request_timeout = 300ms, .idle_timeout = 30s});
  ASSERT_NE(admin, nullptr);
  const auto t0 = Clock::now();
  auto line_only = stalled(admin->port());
  RawConnection silent(admin->port());
  RawConnection dribbler(admin->port());
  ASSERT_TRUE(dribbler.send_now("GET /healthz HTTP/1.1\r\n"));
  EXPECT_FALSE(silent.closed_by_server(100ms)) << "closed before its time";
  milliseconds dribbler_closed_after{-1};
  for (int i = 0; i < 60; ++i) {  // 3 s at most
    if (!dribbler.send_now("X") || dribbler.closed_by_server(50ms)) {
      dribbler_closed_after = ms_since(t0);
      break;
    }
  }
  ASSERT_TRUE(line_only->closed_by_server(3s));
  ASSERT_TRUE(silent.closed_by_server(3s));
  const milliseconds others_closed_by = ms_since(t0);
  std::printf(
      "[ admin ] request_timeout 300 ms: dribbler closed after %lld ms, the others by "
      "%lld ms\n",
      static_cast<long long>(dribbler_closed_after.count()),
      static_cast<long long>(others_closed_by.count()));
  EXPECT_GE(dribbler_closed_after, 250ms);
  EXPECT_LT(dribbler_closed_after, 1500ms);
  EXPECT_LT(others_closed_by, 1500ms);
}

// A kept-alive connection gets its answer, then is closed after idle_timeout without a request.
TEST(AdminStarvation, AKeptAliveConnectionWithoutARequestIsClosedAfterTheIdleTimeout) {
  auto admin = start_admin({.address = "127.0.0.1:0", .idle_timeout = 300ms});
  ASSERT_NE(admin, nullptr);
  RawConnection c(admin->port());
  const auto t0 = Clock::now();
  ASSERT_TRUE(c.send_now("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string got = c.read_until_closed(3s);
  const milliseconds took = ms_since(t0);
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 1500ms);
}

// A client that asks and never reads is closed once a response has waited write_timeout.
TEST(AdminStarvation, AResponseNotTakenEndsTheConnectionAfterTheWriteTimeout) {
  auto admin = start_admin({.address = "127.0.0.1:0", .write_timeout = 300ms});
  ASSERT_NE(admin, nullptr);
  auto c = non_reader(admin->port());
  std::this_thread::sleep_for(800ms);  // write_timeout and some
  // Reading now, the client finds the end of the connection at once (a server still waiting for
  // it to read would go on answering, then keep the connection open).
  EXPECT_TRUE(c->closed_by_server(500ms));
}

// At the connection bound, newcomers still get their answers: the connections that waited
// longest for a request make room, and never more than the bound are held.
TEST(AdminStarvation, AtTheConnectionLimitAProberStillGetsIn) {
  auto admin =
      start_admin({.address = "127.0.0.1:0", .ready = [] { return true; }, .max_connections = 8});
  ASSERT_NE(admin, nullptr);
  std::vector<std::unique_ptr<RawConnection>> hostile;
  for (int i = 0; i < 20; ++i) hostile.push_back(stalled(admin->port()));
  std::this_thread::sleep_for(100ms);
  const ProbeFigures f = probe(admin->port(), 5);
  EXPECT_EQ(f.answered, 10);
  EXPECT_LT(f.slowest, 1000ms);
  int held = 0;
  for (const auto& c : hostile) held += !c->closed_by_server(100ms);
  std::printf(
      "[ admin ] at max_connections 8: 10 probes answered, slowest %lld ms; %d of 20 "
      "stalled connections still held\n",
      static_cast<long long>(f.slowest.count()), held);
  EXPECT_LE(held, 8);
  EXPECT_GE(held, 1);  // the newest stalled ones keep their places: eviction is oldest first
}

// A gauge family of `series` series, collected after `delay`; counts its collections and says
// when the first began and ended.
class BigSlowCollectable : public prometheus::Collectable {
 public:
  BigSlowCollectable(int series, milliseconds delay) : series_(series), delay_(delay) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    collections_.fetch_add(1);
    began_ = true;
    std::this_thread::sleep_for(delay_);
    prometheus::MetricFamily family{
        .name = "test_big", .help = "many series", .type = prometheus::MetricType::Gauge};
    for (int i = 0; i < series_; ++i) {
      prometheus::ClientMetric m;
      m.label = {{.name = "series", .value = std::to_string(i)}};
      m.gauge.value = i;
      family.metric.push_back(std::move(m));
    }
    ended_ = true;
    return {family};
  }

  bool began() const { return began_; }
  bool ended() const { return ended_; }
  int collections() const { return collections_; }

 private:
  const int series_;
  const milliseconds delay_;
  mutable std::atomic<bool> began_{false};
  mutable std::atomic<bool> ended_{false};
  mutable std::atomic<int> collections_{0};
};

// A scrape of 200k series (6 MB; the collection takes 1.5 s) is in progress while the probes
// run: they neither wait for it nor for its serialisation.
TEST(AdminStarvation, AScrapeInProgressDoesNotDelayProbes) {
  BigSlowCollectable big(200000, 1500ms);
  auto admin =
      start_admin({.address = "127.0.0.1:0", .collectables = {&big}, .ready = [] { return true; }});
  ASSERT_NE(admin, nullptr);
  size_t scrape_bytes = 0;
  const auto t0 = Clock::now();
  std::thread scraper([&, port = admin->port()] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30);
    auto res = c.Get("/metrics");
    EXPECT_TRUE(res && res->status == 200);
    if (res) scrape_bytes = res->body.size();
  });
  for (int i = 0; i < 500 && !big.began(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(big.began());
  const ProbeFigures f = probe(admin->port(), 10);
  const bool probes_overlapped_the_scrape = !big.ended();
  scraper.join();
  std::printf("[ admin ] 20 probes during a %zu-byte scrape (%lld ms): slowest %lld ms\n",
              scrape_bytes, static_cast<long long>(ms_since(t0).count()),
              static_cast<long long>(f.slowest.count()));
  EXPECT_TRUE(probes_overlapped_the_scrape);
  EXPECT_EQ(f.answered, 20);
  EXPECT_LT(f.slowest, 1000ms);
  EXPECT_GT(scrape_bytes, 200000u * 20);
}

// Scrapes that arrive together share one collection: a crowd of scrapers costs one, not one
// each, and none of them waits for a queue of its peers.
TEST(AdminStarvation, ConcurrentScrapesShareACollection) {
  BigSlowCollectable slow(10, 300ms);
  auto admin = start_admin({.address = "127.0.0.1:0", .collectables = {&slow}});
  ASSERT_NE(admin, nullptr);
  std::atomic<int> ok{0};
  std::vector<std::thread> scrapers;
  const auto t0 = Clock::now();
  for (int i = 0; i < 8; ++i) {
    scrapers.emplace_back([&, port = admin->port()] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(10);
      auto res = c.Get("/metrics");
      if (res && res->status == 200 &&
          res->body.find("test_big{series=\"9\"} 9") != std::string::npos) {
        ok.fetch_add(1);
      }
    });
  }
  for (auto& t : scrapers) t.join();
  const milliseconds took = ms_since(t0);
  EXPECT_EQ(ok.load(), 8);
  EXPECT_LE(slow.collections(), 3) << "8 scrapes, each its own collection";
  EXPECT_LT(took, 8 * 300ms);
}

// A request head over the limit (8 KiB) is answered 431 and its connection closed, whether the
// head ends or not.
TEST(AdminStarvation, AnOversizedRequestHeadIsRefused) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  for (const std::string& head :
       {"GET /healthz HTTP/1.1\r\nX-Big: " + std::string(16384, 'b') + "\r\n\r\n",
        "GET /" + std::string(65536, 'a')}) {
    RawConnection c(admin->port());
    ASSERT_TRUE(c.send_now(head));
    const std::string got = c.read_until_closed(3s);
    EXPECT_EQ(got.rfind("HTTP/1.1 431 ", 0), 0u) << got.substr(0, 200);
    EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got.substr(0, 200);
  }
  // And it serves on.
  EXPECT_EQ(probe(admin->port(), 1).answered, 1);  // /healthz (no readiness function here)
}

}  // namespace
}  // namespace curfew::testing
