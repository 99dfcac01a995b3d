// Sockets (runtime/socket.h) on an epoll loop: accept and connect over loopback, reads and writes
// larger than the socket buffers, end of stream, a refused connect, a cancelled accept, and the
// address forms. Each test makes its own epoll runtime and bounds every wait with a Timeout.
#include <chrono>
#include <string>
#include <system_error>

#include <unistd.h>

#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/runtime.h"
#include "runtime/socket.h"
#include "runtime/task.h"
#include "runtime/task_group.h"
#include "runtime/timeout.h"
#include "test_util.h"

namespace rt = curfew::rt;
using namespace std::chrono_literals;
using curfew_test::Primitives;
using rt::Task;

namespace {

Task<std::string> read_to_end(rt::Socket& socket) {
  std::string all;
  char buf[16384];
  for (int i = 0; i < 100000; ++i) {  // bounded: far more turns than the test's bytes need
    const size_t n = co_await socket.read_some(buf);
    if (n == 0) co_return all;
    all.append(buf, n);
  }
  throw std::runtime_error("stream did not end");
}

// 4 MiB each way through one loopback connection (far more than the socket buffers, so both
// sides wait for writability), then a half-close ends the peer's read.
TEST_F(Primitives, SocketCarriesBytesBothWaysAndEndsOnHalfClose) {
  const std::string upload(4 << 20, 'u');
  std::string received_by_server;
  std::string received_by_client;
  std::string peer;
  rt::run([&]() -> Task<void> {
    rt::Loop& loop = (co_await rt::this_task{}).loop();
    auto listener = rt::Listener::bind(loop, rt::SocketAddress::parse("127.0.0.1:0"));
    const auto address = listener.local_address();
    rt::TaskGroup group;
    co_await rt::Timeout::after(20s).run(group.run([&]() -> Task<void> {
      group.spawn([](rt::Listener& listener, rt::Loop& loop, std::string& got,
                     std::string& peer) -> Task<void> {
        auto accepted = co_await listener.accept();
        rt::Socket conn(loop, accepted.fd);
        peer = accepted.peer;
        got = co_await read_to_end(conn);
        co_await conn.write_all(got);  // echo it all back, then FIN
        conn.shutdown_write();
      }(listener, loop, received_by_server, peer));
      rt::Socket client = co_await rt::connect(loop, address);
      co_await client.write_all(upload);
      client.shutdown_write();
      received_by_client = co_await read_to_end(client);
    }()));
  }());
  EXPECT_EQ(received_by_server.size(), upload.size());
  EXPECT_EQ(received_by_client, upload);
  EXPECT_TRUE(peer.starts_with("127.0.0.1:")) << peer;
}

// Nobody listens: connect fails with ECONNREFUSED naming the address.
TEST_F(Primitives, SocketConnectToAClosedPortIsRefused) {
  std::string what;
  int code = 0;
  rt::run([&]() -> Task<void> {
    rt::Loop& loop = (co_await rt::this_task{}).loop();
    rt::SocketAddress closed;
    {
      auto listener = rt::Listener::bind(loop, rt::SocketAddress::parse("127.0.0.1:0"));
      closed = listener.local_address();
    }  // closed again: the port refuses
    try {
      co_await rt::Timeout::after(5s).run(rt::connect(loop, closed));
    } catch (const std::system_error& e) {
      what = e.what();
      code = e.code().value();
    }
  }());
  EXPECT_EQ(code, ECONNREFUSED);
  EXPECT_NE(what.find("connect to 127.0.0.1:"), std::string::npos) << what;
}

// A cancelled accept resumes with the cancellation; the listener still accepts afterwards.
TEST_F(Primitives, SocketCancelledAcceptLeavesTheListenerUsable) {
  bool timed_out = false;
  bool accepted_later = false;
  rt::run([&]() -> Task<void> {
    rt::Loop& loop = (co_await rt::this_task{}).loop();
    auto listener = rt::Listener::bind(loop, rt::SocketAddress::parse("127.0.0.1:0"));
    try {
      co_await rt::Timeout::after(20ms).run(listener.accept());
    } catch (const rt::TimeoutError&) {
      timed_out = true;
    }
    rt::Socket client =
        co_await rt::Timeout::after(5s).run(rt::connect(loop, listener.local_address()));
    auto accepted = co_await rt::Timeout::after(5s).run(listener.accept());
    rt::Socket server(loop, accepted.fd);
    accepted_later = server.is_open();
  }());
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(accepted_later);
}

// Unix-domain sockets (path and abstract) work the same way.
TEST_F(Primitives, SocketUnixDomainAddressesConnect) {
  const std::string name = "curfew-socket-test-" + std::to_string(::getpid());
  std::string got;
  rt::run([&]() -> Task<void> {
    rt::Loop& loop = (co_await rt::this_task{}).loop();
    auto address = rt::SocketAddress::parse("unix-abstract:" + name);
    auto listener = rt::Listener::bind(loop, address);
    rt::Socket client = co_await rt::Timeout::after(5s).run(rt::connect(loop, address));
    auto accepted = co_await rt::Timeout::after(5s).run(listener.accept());
    rt::Socket server(loop, accepted.fd);
    co_await client.write_all("over unix");
    client.shutdown_write();
    got = co_await rt::Timeout::after(5s).run(read_to_end(server));
  }());
  EXPECT_EQ(got, "over unix");
}

// Address forms: what parses, what it prints, and the error for what does not.
TEST(SocketAddress, ParsesEachFormAndNamesTheProblemOtherwise) {
  struct Case {
    const char* text;
    const char* printed;  // nullptr: must be rejected
  };
  const Case cases[] = {
      {"127.0.0.1:8080", "127.0.0.1:8080"},
      {"127.0.0.2:0", "127.0.0.2:0"},
      {"[::1]:443", "[::1]:443"},
      {"unix:/tmp/x.sock", "unix:/tmp/x.sock"},
      {"unix-abstract:curfew", "unix-abstract:curfew"},
      {"127.0.0.1", nullptr},
      {"127.0.0.1:65536", nullptr},
      {"127.0.0.1:80x", nullptr},
      {"localhost:80", nullptr},
      {"[::1:80", nullptr},
      {"unix:", nullptr},
      {"vsock:2:5000", "vsock:2:5000"},
      {"vsock:4294967295:1", "vsock:4294967295:1"},  // VMADDR_CID_ANY
      {"vsock:2", nullptr},
      {"vsock:x:5000", nullptr},
      {"vsock:2:", nullptr},
      {"vsock:4294967296:1", nullptr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    if (c.printed == nullptr) {
      try {
        rt::SocketAddress::parse(c.text);
        ADD_FAILURE() << "accepted";
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(c.text), std::string::npos) << e.what();
      }
    } else {
      EXPECT_EQ(rt::SocketAddress::parse(c.text).to_string(), c.printed);
    }
  }
}

}  // namespace
