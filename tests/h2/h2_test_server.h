// An HTTP/2 server on curfew's h2::Session, on its own epoll runtime thread, for tests that talk
// to it with an independent peer (grpc++). Stopped (cancelled and joined) when destroyed, however
// the test ends.
#pragma once

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "h2/session.h"
#include "runtime/runtime.h"
#include "runtime/socket.h"
#include "runtime/task_group.h"

namespace curfew_test {

class H2TestServer {
 public:
  H2TestServer(curfew::h2::StreamHandler handler, curfew::h2::SessionLimits limits = {})
      : runtime_() {
    std::promise<int> port;
    auto bound = port.get_future();
    thread_ = std::thread([this, handler = std::move(handler), limits, &port]() mutable {
      runtime_.run([&](int) -> curfew::rt::Task<void> {
        curfew::rt::Loop& loop = (co_await curfew::rt::this_task{}).loop();
        auto listener =
            curfew::rt::Listener::bind(loop, curfew::rt::SocketAddress::parse("127.0.0.1:0"));
        const std::string address = listener.local_address().to_string();
        port.set_value(std::stoi(address.substr(address.rfind(':') + 1)));
        curfew::rt::TaskGroup connections;
        co_await connections.run([](curfew::rt::Listener& listener, curfew::rt::Loop& loop,
                                    curfew::rt::TaskGroup& connections,
                                    curfew::h2::StreamHandler handler,
                                    curfew::h2::SessionLimits limits,
                                    std::shared_ptr<Closures> closures) -> curfew::rt::Task<void> {
          for (;;) {  // until the test stops the server (cancellation)
            auto accepted = co_await listener.accept();
            curfew::rt::Socket socket(loop, accepted.fd);
            socket.set_peer(accepted.peer);
            connections.spawn(serve(std::move(socket), handler, limits, closures));
          }
        }(listener, loop, connections, handler, limits, closures_));
      });
    });
    port_ = bound.get();
  }
  H2TestServer(const H2TestServer&) = delete;
  H2TestServer& operator=(const H2TestServer&) = delete;
  ~H2TestServer() {
    runtime_.cancel("the test is over");
    thread_.join();
  }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Why each connection that ended so far ended, in order.
  std::vector<curfew::h2::CloseReason> closures() const {
    std::lock_guard lock(closures_->mu);
    return closures_->reasons;
  }

 private:
  struct Closures {
    mutable std::mutex mu;
    std::vector<curfew::h2::CloseReason> reasons;
  };

  static curfew::rt::Task<void> serve(curfew::rt::Socket socket, curfew::h2::StreamHandler handler,
                                      curfew::h2::SessionLimits limits,
                                      std::shared_ptr<Closures> closures) {
    curfew::h2::Session session(std::move(socket), curfew::h2::Role::kServer, limits);
    co_await session.run(std::move(handler));
    std::lock_guard lock(closures->mu);
    closures->reasons.push_back(session.close_reason());
  }

  std::shared_ptr<Closures> closures_ = std::make_shared<Closures>();
  curfew::rt::Runtime runtime_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace curfew_test
