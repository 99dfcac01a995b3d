// Shutdown with connections in every state — accepted but not yet handed to their loop, handed
// over with their task not yet run, serving — leaves no fd behind and ends promptly. A connection
// task cancelled before its first step is destroyed unrun: the fd it owns must still be closed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

int open_fds() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

// A TCP connection to 127.0.0.1:port that sends nothing (curfew waits for its preface); -1 once
// nothing listens there any more.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(Shutdown, ConnectionsInEveryStateLeaveNoFdBehind) {
  const int baseline = open_fds();
  for (int round = 0; round < 20; ++round) {
    auto sidecar = start_sidecar(
        "listeners:\n  - name: inbound\n    address: 127.0.0.1:0\n    routes:\n"
        "      - {name: r, match: {prefix: /}, upstream: app, timeout: 1s}\n"
        "upstreams:\n  - {name: app, endpoints: ['127.0.0.1:1']}\n");
    ASSERT_NE(sidecar, nullptr);
    const int port = sidecar->port("inbound");
    // Connections keep arriving while the shutdown runs, so that some are caught between the
    // accept and the hand-over, and some between the spawn of their task and its first step.
    std::vector<int> callers;
    std::atomic<bool> stop{false};
    std::thread connector([&] {
      for (int i = 0; i < 400 && !stop; ++i) {
        const int fd = connect_to(port);
        if (fd < 0) break;  // the listener is closed
        callers.push_back(fd);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + round % 5));
    const auto started = std::chrono::steady_clock::now();
    sidecar.reset();  // shutdown with a deadline of now
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "round " << round;
    stop = true;
    connector.join();
    for (const int fd : callers) ::close(fd);
  }
  int now = 0;
  EXPECT_TRUE(eventually([&] { return (now = open_fds()) <= baseline; }))
      << now << " fds open, " << baseline << " before the first sidecar started";
}

}  // namespace
}  // namespace curfew::testing
