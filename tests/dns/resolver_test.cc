// dns::resolve (dns/resolver.h) against a real DNS server (dnsmasq, tests/dns/dnsmasq.h) on
// 127.0.0.1, and the system resolver for /etc/hosts.
//
// Timing: only generous bounds (a timeout + 2 s), never precise durations. Every loop is bounded
// in count and time.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dns/resolver.h"
#include "dnsmasq.h"
#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/timeout.h"

namespace dns = curfew::dns;
namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew::testing::Dnsmasq;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

namespace {

constexpr char kHosts[] =
    "127.0.0.2 multi.test\n"
    "127.0.0.3 multi.test\n"
    "127.0.0.4 multi.test\n"
    "::1 six.test\n"
    "127.0.0.5 both.test\n"
    "::1 both.test\n";

// 60 A records: more than a 512-byte UDP answer holds, so c-ares asks again over TCP.
std::string big_hosts() {
  std::string out = kHosts;
  for (int i = 1; i <= 60; ++i) out += "127.0.1." + std::to_string(i) + " big.test\n";
  return out;
}

std::vector<std::string> texts(const dns::Answer& answer) {
  std::vector<std::string> out;
  for (const auto& a : answer.addresses) out.push_back(a.to_string());
  return out;
}

// A UDP port on 127.0.0.1 that takes queries and never answers, for as long as it lives.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~SilentServer() { close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(curfew::testing::kDnsmasq, X_OK) != 0)
      GTEST_SKIP() << "no " << curfew::testing::kDnsmasq << " (Debian: dnsmasq-base)";
    ASSERT_TRUE(dnsmasq_.ready()) << "dnsmasq did not answer:\n" << dnsmasq_.log();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "dnsmasq's log:\n" << dnsmasq_.log();
  }
  dns::Query query(std::string host, std::string port = "80") const {
    return {.host = std::move(host),
            .port = std::move(port),
            .server = dnsmasq_.server(),
            .timeout = 5s};
  }

  Dnsmasq dnsmasq_{big_hosts(), {"--cname=alias.test,multi.test"}};
};

TEST_F(ResolverTest, ReturnsEveryARecordOfAName) {
  auto found = dns::resolve(query("multi.test", "443"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(texts(*found),
              UnorderedElementsAre("127.0.0.2:443", "127.0.0.3:443", "127.0.0.4:443"));
  EXPECT_EQ(found->ttl, 60s);  // dnsmasq's --local-ttl
}

TEST_F(ResolverTest, ReturnsAaaaRecords) {
  auto found = dns::resolve(query("six.test", "8080"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(texts(*found), ElementsAre("[::1]:8080"));
}

TEST_F(ResolverTest, ReturnsBothFamiliesIpv4First) {
  auto found = dns::resolve(query("both.test"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(texts(*found), ElementsAre("127.0.0.5:80", "[::1]:80"));
}

TEST_F(ResolverTest, FollowsCnames) {
  auto found = dns::resolve(query("alias.test"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(texts(*found), UnorderedElementsAre("127.0.0.2:80", "127.0.0.3:80", "127.0.0.4:80"));
  EXPECT_EQ(found->ttl, 60s);
}

TEST_F(ResolverTest, TakesATruncatedAnswerOverTcp) {
  auto found = dns::resolve(query("big.test"));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->addresses.size(), 60u);
}

TEST_F(ResolverTest, UnknownNameIsNotFoundNamingTheNameAndTheServer) {
  auto found = dns::resolve(query("missing.test"));
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound) << found.status();
  EXPECT_EQ(found.status().message(),
            "resolving 'missing.test' via " + dnsmasq_.server() + ": Domain name not found");
}

// The server given is the only source: not /etc/hosts, whose "localhost" c-ares never asks a
// server about.
TEST_F(ResolverTest, GivenServerIsTheOnlySource) {
  auto found = dns::resolve(query("localhost"));
  ASSERT_FALSE(found.ok()) << texts(*found).front();
  EXPECT_THAT(found.status().message(),
              HasSubstr("resolving 'localhost' via " + dnsmasq_.server() + ": "));
}

TEST_F(ResolverTest, SeesTheNewAnswerAfterTheServerReloads) {
  auto before = dns::resolve(query("multi.test"));
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->addresses.size(), 3u);

  dnsmasq_.set_hosts("127.0.0.7 multi.test\n127.0.0.8 new.test\n");
  // dnsmasq re-reads on SIGHUP in its own time: ask again, bounded (100 x ~50 ms).
  std::vector<std::string> seen;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto after = dns::resolve(query("multi.test"));
    ASSERT_TRUE(after.ok()) << after.status();
    seen = texts(*after);
    if (seen.size() == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_THAT(seen, ElementsAre("127.0.0.7:80"));
  auto added = dns::resolve(query("new.test"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(texts(*added), ElementsAre("127.0.0.8:80"));
}

TEST_F(ResolverTest, ManyThreadsResolveAtOnce) {
  constexpr int kThreads = 8;
  constexpr int kEach = 25;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(kThreads);
  const auto started = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          auto found = dns::resolve(query(i % 2 == 0 ? "multi.test" : "both.test"));
          if (found.ok() && found->addresses.size() == (i % 2 == 0 ? 3u : 2u)) {
            ++ok;
          } else if (failures[t].empty()) {
            failures[t] = found.ok() ? "wrong answer" : found.status().ToString();
          }
        }
      });
    }
  }
  EXPECT_EQ(ok.load(), kThreads * kEach);
  for (const auto& f : failures) EXPECT_EQ(f, "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 60s);
}

TEST_F(ResolverTest, ResolvesOffTheLoopOnTheBlockingPool) {
  auto found = rt::run(dns::resolve_off_loop(query("both.test", "9")));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(texts(*found), ElementsAre("127.0.0.5:9", "[::1]:9"));
}

// Tests without dnsmasq.

TEST(Resolver, SilentServerFailsWithinTheTimeout) {
  SilentServer silent;
  const auto started = std::chrono::steady_clock::now();
  auto found = dns::resolve(
      {.host = "multi.test", .port = "80", .server = silent.server(), .timeout = 500ms});
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kDeadlineExceeded) << found.status();
  EXPECT_THAT(found.status().message(),
              HasSubstr("resolving 'multi.test' via " + silent.server() + ": "));
  EXPECT_LT(took, 500ms + 2s);
}

TEST(Resolver, ServerNotListeningFailsWithinTheTimeout) {
  std::string server;
  {
    SilentServer closed_again;  // its port, free once it is gone
    server = closed_again.server();
  }
  const auto started = std::chrono::steady_clock::now();
  auto found = dns::resolve({.host = "multi.test", .port = "80", .server = server, .timeout = 1s});
  ASSERT_FALSE(found.ok());
  // c-ares 1.18.1 retries a refused UDP query as if it had timed out: either code will do.
  EXPECT_THAT(found.status().code(),
              AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(found.status().message(), HasSubstr("resolving 'multi.test' via " + server + ": "));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s + 2s);
}

TEST(Resolver, CancelledAwaiterReturnsAtOnceWhileTheCallFinishesOnThePool) {
  SilentServer silent;
  dns::Query q{.host = "multi.test", .port = "80", .server = silent.server(), .timeout = 1s};
  bool timed_out = false;
  const auto started = std::chrono::steady_clock::now();
  rt::run([](dns::Query q, bool& timed_out) -> rt::Task<void> {
    try {
      (void)co_await rt::Timeout::after(100ms).run(dns::resolve_off_loop(std::move(q)));
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
  }(q, timed_out));
  EXPECT_TRUE(timed_out);
  // rt::run's runtime joins its pool, so the abandoned call ran to its own end meanwhile.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s + 2s);
}

TEST(Resolver, SystemResolverReadsEtcHosts) {
  auto found = dns::resolve({.host = "localhost", .port = "80", .server = "", .timeout = 5s});
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_FALSE(found->addresses.empty());
  for (const auto& a : found->addresses) {
    EXPECT_TRUE(a.to_string() == "127.0.0.1:80" || a.to_string() == "[::1]:80") << a.to_string();
  }
}

TEST(Resolver, NumericHostIsReturnedWithoutAskingAnyone) {
  SilentServer silent;
  auto found =
      dns::resolve({.host = "127.0.0.9", .port = "7", .server = silent.server(), .timeout = 5s});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(texts(*found), ElementsAre("127.0.0.9:7"));
}

TEST(Resolver, PortMustBeNumeric) {
  for (const char* port : {"http", "", "0x50", "-1", "65536", " 80", "123456"}) {
    auto found = dns::resolve({.host = "127.0.0.1", .port = port, .server = "", .timeout = 1s});
    ASSERT_FALSE(found.ok()) << port;
    EXPECT_EQ(found.status().code(), absl::StatusCode::kInvalidArgument) << found.status();
    EXPECT_EQ(found.status().message(), "resolving '127.0.0.1' via the system resolver: port '" +
                                            std::string(port) + "' is not a number 0-65535");
  }
  auto max = dns::resolve({.host = "127.0.0.1", .port = "65535", .server = "", .timeout = 1s});
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_THAT(texts(*max), ElementsAre("127.0.0.1:65535"));
}

TEST(Resolver, MalformedQueriesAreInvalidArguments) {
  for (const char* server : {"not-an-address", "127.0.0.1:53,127.0.0.2:53", "127.0.0.1:x"}) {
    auto found = dns::resolve({.host = "x.test", .port = "80", .server = server, .timeout = 1s});
    ASSERT_FALSE(found.ok()) << server;
    EXPECT_EQ(found.status().code(), absl::StatusCode::kInvalidArgument) << found.status();
  }
  auto empty = dns::resolve({.host = "", .port = "80", .server = "", .timeout = 1s});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument) << empty.status();
  auto no_time = dns::resolve({.host = "x.test", .port = "80", .server = "", .timeout = 0ms});
  EXPECT_EQ(no_time.status().code(), absl::StatusCode::kDeadlineExceeded) << no_time.status();
}

}  // namespace
