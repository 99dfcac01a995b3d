// FdWatch (runtime/fd_watch.h): waits for readiness of a non-blocking fd on an epoll loop. Each
// test makes its own epoll runtime (whatever the process's default poller), talks over a
// socketpair and bounds every wait with a Timeout, so a lost edge fails the test instead of
// hanging it.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/event.h"
#include "runtime/fd_watch.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew_test::Primitives;
using rt::Task;

namespace {

// Both ends non-blocking; closed when the test ends.
struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
  }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void close_end(int i) {
    ::close(fd[i]);
    fd[i] = -1;
  }
};

// Reads up to `want` bytes, waiting for readiness as the header says; "" on EOF.
Task<std::string> read_some(rt::FdWatch& watch, size_t want) {
  std::string buf(want, '\0');
  for (int i = 0; i < 1000; ++i) {  // bounded: each turn waits for an edge
    ssize_t n = ::read(watch.fd(), buf.data(), buf.size());
    if (n >= 0) {
      buf.resize(static_cast<size_t>(n));
      co_return buf;
    }
    if (errno != EAGAIN) throw std::runtime_error("read failed");
    co_await watch.readable();
  }
  throw std::runtime_error("no data after 1000 edges");
}

Task<void> write_after(int fd, rt::Duration delay, std::string data) {
  co_await rt::sleep(delay);
  EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
}

// A reader that found nothing waits, and the writer's bytes wake it.
TEST_F(Primitives, FdWatchWakesAReaderWhenBytesArrive) {
  SocketPair pair;
  std::string got;
  rt::run([&]() -> Task<void> {
    rt::FdWatch watch((co_await rt::this_task{}).loop(), pair.fd[0]);
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn(write_after(pair.fd[1], 20ms, "hello"));
      got = co_await rt::Timeout::after(5s).run(read_some(watch, 64));
    }());
  }());
  EXPECT_EQ(got, "hello");
}

// An edge that arrives while nobody waits is remembered: the bytes were written before the wait
// began and the loop handled their event with no waiter, yet the wait returns.
TEST_F(Primitives, FdWatchRemembersAnEdgeNobodyWaitedFor) {
  SocketPair pair;
  bool woke = false;
  rt::run([&]() -> Task<void> {
    rt::FdWatch watch((co_await rt::this_task{}).loop(), pair.fd[0]);
    EXPECT_EQ(::write(pair.fd[1], "x", 1), 1);
    co_await rt::sleep(10ms);  // the loop takes the edge now, with nobody waiting
    co_await rt::Timeout::after(5s).run([&]() -> Task<void> {
      co_await watch.readable();
      woke = true;
    }());
  }());
  EXPECT_TRUE(woke);
}

// A cancelled wait resumes at once with the cancellation (here the Timeout's TimeoutError); the
// watch stays registered and a later wait still sees later bytes.
TEST_F(Primitives, FdWatchCancelledWaitLeavesTheWatchUsable) {
  SocketPair pair;
  bool timed_out = false;
  std::string later;
  const auto start = rt::Clock::now();
  rt::Duration waited{};
  rt::run([&]() -> Task<void> {
    rt::FdWatch watch((co_await rt::this_task{}).loop(), pair.fd[0]);
    try {
      co_await rt::Timeout::after(30ms).run(read_some(watch, 8));
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
    waited = rt::Clock::now() - start;
    EXPECT_EQ(::write(pair.fd[1], "later", 5), 5);
    later = co_await rt::Timeout::after(5s).run(read_some(watch, 8));
  }());
  EXPECT_TRUE(timed_out);
  EXPECT_LT(waited, 3s);  // generous: the cancel path does not wait for an edge
  EXPECT_EQ(later, "later");
}

// A writer that filled the socket buffer waits for writability, and the reader draining the other
// end wakes it.
TEST_F(Primitives, FdWatchWakesAWriterWhenTheBufferDrains) {
  SocketPair pair;
  size_t written = 0;
  size_t drained = 0;
  bool wrote_after_wait = false;
  rt::run([&]() -> Task<void> {
    rt::FdWatch out((co_await rt::this_task{}).loop(), pair.fd[1]);
    const std::string chunk(64 * 1024, 'x');
    while (::write(pair.fd[1], chunk.data(), chunk.size()) > 0) written += chunk.size();
    EXPECT_EQ(errno, EAGAIN);
    rt::TaskGroup group;
    co_await rt::Timeout::after(5s).run(group.run([&]() -> Task<void> {
      group.spawn([](int in, size_t& drained) -> Task<void> {
        co_await rt::sleep(20ms);
        std::string buf(64 * 1024, '\0');
        for (ssize_t n; (n = ::read(in, buf.data(), buf.size())) > 0;)
          drained += static_cast<size_t>(n);
      }(pair.fd[0], drained));
      for (int i = 0; i < 100 && !wrote_after_wait; ++i) {  // bounded: one wait per turn
        co_await out.writable();
        wrote_after_wait = ::write(pair.fd[1], "y", 1) == 1;
      }
    }()));
  }());
  EXPECT_GT(written, 0u);
  EXPECT_GT(drained, 0u);
  EXPECT_TRUE(wrote_after_wait);
}

// The peer's close wakes a waiting reader: the read says EOF and the watch saw the hang-up.
TEST_F(Primitives, FdWatchWakesAReaderWhenThePeerHangsUp) {
  SocketPair pair;
  std::string got = "unset";
  bool hung_up = false;
  rt::run([&]() -> Task<void> {
    rt::FdWatch watch((co_await rt::this_task{}).loop(), pair.fd[0]);
    rt::TaskGroup group;
    co_await group.run([&]() -> Task<void> {
      group.spawn([](SocketPair& pair) -> Task<void> {
        co_await rt::sleep(20ms);
        pair.close_end(1);
      }(pair));
      got = co_await rt::Timeout::after(5s).run(read_some(watch, 8));
      hung_up = watch.hung_up();
    }());
  }());
  EXPECT_EQ(got, "");
  EXPECT_TRUE(hung_up);
}

// Every watch deregisters its fd when destroyed, and a cross-thread post wakes an epoll loop
// blocked with no timer.
TEST_F(Primitives, EpollLoopWakesForACrossThreadPostAndEndsWithNoFdRegistered) {
  SocketPair pair;
  long sources_inside = -1;
  long sources_after = -1;
  bool posted = false;
  rt::Runtime runtime;
  runtime.run([&](int) -> Task<void> {
    rt::Loop& loop = (co_await rt::this_task{}).loop();
    {
      rt::FdWatch a(loop, pair.fd[0]);
      rt::FdWatch b(loop, pair.fd[1]);
      sources_inside = loop.epoll().sources();
    }
    sources_after = loop.epoll().sources();
    rt::Event done;
    std::thread poster([&loop, &done, &posted] {
      std::this_thread::sleep_for(20ms);
      loop.post_threadsafe([&done, &posted] {
        posted = true;
        done.set();
      });
    });
    co_await rt::Timeout::after(5s).run([&]() -> Task<void> { co_await done.wait(); }());
    poster.join();
  });
  EXPECT_EQ(sources_inside, 2);
  EXPECT_EQ(sources_after, 0);
  EXPECT_TRUE(posted);
  EXPECT_EQ(runtime.close(), 0u);  // no fd watch left registered
}

}  // namespace
