// The admin HTTP server: /metrics, /healthz, /readyz on 127.0.0.1 (port 0 picks a free port).
#include "metrics/admin_server.h"

#include <httplib.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <thread>

#include <gtest/gtest.h>

#include "exposition.h"
#include "metrics/call_metrics.h"
#include "metrics/metric_families.h"
#include "metrics/server_metrics.h"

namespace curfew::testing {
namespace {

using metrics::AdminServer;

std::unique_ptr<AdminServer> start_admin(AdminServer::Options options) {
  auto admin = AdminServer::start(std::move(options));
  EXPECT_TRUE(admin.ok()) << admin.status();
  return admin.ok() ? std::move(*admin) : nullptr;
}

httplib::Client client(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5);
  c.set_read_timeout(5);
  return c;
}

TEST(AdminServer, PortZeroPicksAFreePortAndHealthzAnswers) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  EXPECT_GT(admin->port(), 0);
  auto c = client(admin->port());
  auto res = c.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST(AdminServer, ReadyzFollowsTheReadinessFunction) {
  std::atomic<bool> ready{false};
  auto admin = start_admin({.address = "127.0.0.1:0", .ready = [&] { return ready.load(); }});
  ASSERT_NE(admin, nullptr);
  auto c = client(admin->port());
  auto not_ready = c.Get("/readyz");
  ASSERT_TRUE(not_ready);
  EXPECT_EQ(not_ready->status, 503);
  ready = true;
  auto is_ready = c.Get("/readyz");
  ASSERT_TRUE(is_ready);
  EXPECT_EQ(is_ready->status, 200);
  ready = false;
  auto again = c.Get("/readyz");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 503);
  // Liveness does not depend on readiness.
  auto alive = c.Get("/healthz");
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->status, 200);
}

TEST(AdminServer, NoReadinessFunctionMeansNotReady) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  auto res = client(admin->port()).Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
}

TEST(AdminServer, MetricsServesEveryCollectableInTextFormat) {
  metrics::ServerMetrics server("1.2.3");
  metrics::CallMetrics calls;
  const std::string listener = "inbound", route = "r";
  calls.call_started(listener, &route);
  server.set_readiness([] { return true; });
  server.reload_succeeded();
  server.reload_failed();
  server.reload_failed();
  auto admin = start_admin({.address = "127.0.0.1:0", .collectables = {&server, &calls}});
  ASSERT_NE(admin, nullptr);

  auto res = client(admin->port()).Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res->body.substr(0, 7), "# HELP ");
  Exposition e(res->body);
  EXPECT_EQ(e.value("curfew_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_EQ(e.value("curfew_config_reloads_total", {{"result", "ok"}}), 1);
  EXPECT_EQ(e.value("curfew_config_reloads_total", {{"result", "error"}}), 2);
  EXPECT_EQ(e.value("curfew_config_last_reload_successful"), 0);
  EXPECT_EQ(e.value("curfew_ready"), 1);
  EXPECT_GT(*e.value("process_start_time_seconds"), 1.6e9);
  EXPECT_EQ(e.value("curfew_inflight_requests", {{"listener", "inbound"}, {"route", "r"}}), 1);
  EXPECT_EQ(e.type("curfew_config_reloads_total"), "counter");
  EXPECT_EQ(e.type("curfew_request_duration_seconds"), "histogram");
  EXPECT_EQ(res->body, admin->scrape());
}

TEST(AdminServer, ReloadsAreCountedFromZeroAndTheLastResultIsKept) {
  metrics::ServerMetrics server("x");
  Exposition fresh(expose(server));
  EXPECT_EQ(fresh.value("curfew_config_reloads_total", {{"result", "ok"}}), 0);
  EXPECT_EQ(fresh.value("curfew_config_reloads_total", {{"result", "error"}}), 0);
  EXPECT_EQ(fresh.value("curfew_config_last_reload_successful"), 1) << "the start config applied";
  EXPECT_EQ(fresh.value("curfew_ready"), 0) << "no readiness function yet";
  server.reload_failed();
  server.reload_succeeded();
  Exposition after(expose(server));
  EXPECT_EQ(after.value("curfew_config_last_reload_successful"), 1);
  EXPECT_GE(*after.value("curfew_config_last_reload_success_timestamp_seconds"),
            *fresh.value("curfew_config_last_reload_success_timestamp_seconds"));
}

TEST(ServerMetrics, FamiliesAreTheDeclaredOnes) {
  // ServerMetrics exposes exactly the families of kServerFamilies (metrics/metric_families.h),
  // with the declared help, type and label names.
  metrics::ServerMetrics server("x");
  const auto families = server.Collect();
  ASSERT_EQ(families.size(), std::size(metrics::kServerFamilies));
  for (size_t i = 0; i < families.size(); ++i) {
    const metrics::MetricFamilyDecl& declared = *metrics::kServerFamilies[i];
    const prometheus::MetricFamily& f = families[i];
    EXPECT_EQ(f.name, declared.name);
    EXPECT_EQ(f.help, declared.help) << f.name;
    EXPECT_EQ(f.type, declared.type) << f.name;
    ASSERT_FALSE(f.metric.empty()) << f.name;
    for (const auto& series : f.metric) {
      ASSERT_EQ(series.label.size(), declared.labels.size()) << f.name;
      for (size_t l = 0; l < series.label.size(); ++l) {
        EXPECT_EQ(series.label[l].name, declared.labels[l]) << f.name;
      }
    }
  }
}

TEST(AdminServer, UnknownPathIs404) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  auto res = client(admin->port()).Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(AdminServer, AnotherMethodIs405AndAnotherPath404) {
  auto admin = start_admin({.address = "127.0.0.1:0", .ready = [] { return true; }});
  ASSERT_NE(admin, nullptr);
  auto c = client(admin->port());
  auto post = c.Post("/readyz", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET");
  auto del = c.Delete("/metrics");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  auto other = c.Post("/quitquitquit", "", "text/plain");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  auto query = c.Get("/readyz?verbose=1");  // the query does not change the path
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 200);
}

TEST(AdminServer, KeptAliveConnectionsAnswerPipelinedRequestsInOrder) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  httplib::Client c = client(admin->port());
  c.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    auto res = c.Get(i % 2 ? "/readyz" : "/healthz");
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->status, i % 2 ? 503 : 200) << i;
  }
  // Three requests in one write; three answers, in order, on the one connection.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(admin->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval five_seconds{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
  const std::string requests =
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, requests.data(), requests.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(requests.size()));
  std::string got;
  char buf[4096];
  for (int i = 0; i < 100; ++i) {  // until the server closes (Connection: close), bounded
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t ok = got.find("HTTP/1.1 200 OK\r\n");
  const size_t not_found = got.find("HTTP/1.1 404 Not Found\r\n");
  const size_t not_ready = got.find("HTTP/1.1 503 Service Unavailable\r\n");
  EXPECT_EQ(ok, 0u) << got;
  EXPECT_NE(not_found, std::string::npos) << got;
  EXPECT_NE(not_ready, std::string::npos) << got;
  EXPECT_LT(not_found, not_ready) << got;
  EXPECT_TRUE(got.ends_with("not ready\n")) << got;
}

TEST(AdminServer, AddressInUseIsAnError) {
  auto first = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(first, nullptr);
  auto second = AdminServer::start({.address = "127.0.0.1:" + std::to_string(first->port())});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen"), std::string::npos) << second.status();
}

TEST(AdminServer, BadAddressIsAnError) {
  for (const char* address :
       {"127.0.0.1", "127.0.0.1:http", ":9901", "127.0.0.1:70000", "::1:9901"}) {
    auto admin = AdminServer::start({.address = address});
    EXPECT_FALSE(admin.ok()) << address;
  }
}

TEST(AdminServer, SplitsAddresses) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(metrics::split_admin_address("[::1]:9901", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 9901);
  ASSERT_TRUE(metrics::split_admin_address("*:0", host, port));
  EXPECT_EQ(host, "::") << "every address: dual-stack IPv6, IPv4 where there is no IPv6";
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(metrics::split_admin_address("[::]:9901", host, port));
  EXPECT_EQ(host, "::");
  EXPECT_EQ(port, 9901);
  ASSERT_TRUE(metrics::split_admin_address("localhost:80", host, port));
  EXPECT_EQ(host, "localhost");
}

// "*" binds every address: IPv4 and, where the platform has IPv6, IPv6 on the same port.
TEST(AdminServer, StarBindsIPv4AndIPv6) {
  auto admin = start_admin({.address = "*:0", .ready = [] { return true; }});
  ASSERT_NE(admin, nullptr);
  auto res = client(admin->port()).Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const int v6_socket = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (v6_socket < 0) GTEST_SKIP() << "no IPv6 here: IPv4 only, as intended";
  ::close(v6_socket);
  httplib::Client v6("::1", admin->port());
  v6.set_connection_timeout(2);
  v6.set_read_timeout(5);
  auto res6 = v6.Get("/readyz");
  ASSERT_TRUE(res6) << httplib::to_string(res6.error());
  EXPECT_EQ(res6->status, 200);
}

// Makes socket(AF_INET6, ...) fail with EAFNOSUPPORT on the calling thread (and the threads it
// starts), as on a kernel without IPv6: a seccomp filter, which binds that thread only.
bool refuse_ipv6_sockets_on_this_thread() {
#if defined(__x86_64__)
  constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  return false;
#endif
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // the family
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{.len = static_cast<unsigned short>(std::size(filter)), .filter = filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

// Where IPv6 sockets cannot be made, "*" falls back to 0.0.0.0: IPv4 answers (and IPv6 does not:
// the fallback really is an IPv4 socket).
TEST(AdminServer, StarFallsBackToIPv4WhereThereIsNoIPv6) {
  std::unique_ptr<AdminServer> admin;
  bool filtered = false;
  std::thread without_ipv6([&] {
    filtered = refuse_ipv6_sockets_on_this_thread();
    if (filtered) admin = start_admin({.address = "*:0", .ready = [] { return true; }});
  });
  without_ipv6.join();
  if (!filtered) GTEST_SKIP() << "cannot install a seccomp filter here";
  ASSERT_NE(admin, nullptr);
  auto res = client(admin->port()).Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  const int v6_socket = ::socket(AF_INET6, SOCK_STREAM, 0);  // this thread has no filter
  if (v6_socket < 0) return;
  ::close(v6_socket);
  httplib::Client v6("::1", admin->port());
  v6.set_connection_timeout(2);
  EXPECT_FALSE(v6.Get("/readyz")) << "bound on IPv6 after all";
}

TEST(AdminServer, StopIsIdempotentAndClosesThePort) {
  auto admin = start_admin({.address = "127.0.0.1:0"});
  ASSERT_NE(admin, nullptr);
  const int port = admin->port();
  {
    auto c = client(port);  // a keep-alive connection left open must not hold stop() up for long
    ASSERT_TRUE(c.Get("/healthz"));
    const auto start = std::chrono::steady_clock::now();
    admin->stop();
    admin->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  }
  auto c = client(port);
  c.set_connection_timeout(1);
  EXPECT_FALSE(c.Get("/healthz"));
}

TEST(AdminServer, ManyScrapesInParallel) {
  metrics::CallMetrics calls;
  auto admin = start_admin({.address = "127.0.0.1:0", .collectables = {&calls}});
  ASSERT_NE(admin, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      auto c = client(admin->port());
      for (int i = 0; i < 20; ++i) {
        if (auto res = c.Get("/metrics"); res && res->status == 200) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 120);
}

}  // namespace
}  // namespace curfew::testing
