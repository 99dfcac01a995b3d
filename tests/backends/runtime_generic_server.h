// RuntimeGenericServer: a generic gRPC server on 127.0.0.1 served by curfew's own runtime (one
// loop thread, AsyncGenericService), for tests that script a server call by call with the
// runtime's awaitables. Every accepted call runs `handle(call)` as a task of the server's group;
// the destructor cancels the runtime, shuts the server down and checks that no tag was left behind.
//
// Also: bytes() / text(), a ByteBuffer from and back to a string.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "runtime/errors.h"
#include "runtime/grpc_server.h"
#include "runtime/runtime.h"
#include "runtime/task_group.h"
#include "runtime/to_thread.h"

namespace curfew::testing {

inline grpc::ByteBuffer bytes(const std::string& text) {
  grpc::Slice slice(text);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string text(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

class RuntimeGenericServer {
 public:
  using Handler = std::function<rt::Task<void>(rt::ServerCallPtr)>;

  // `handle` runs on the server's loop thread, once per call; it must outlive the server.
  explicit RuntimeGenericServer(Handler handle) : handle_(std::move(handle)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterAsyncGenericService(&service_);
    runtime_ =
        std::make_unique<rt::Runtime>(rt::RuntimeOptions{.threads = 1, .server_builder = &builder});
    server_ = builder.BuildAndStart();
    thread_ = std::thread([this] { runtime_->run([this](int) { return serve(); }); });
  }
  RuntimeGenericServer(const RuntimeGenericServer&) = delete;
  RuntimeGenericServer& operator=(const RuntimeGenericServer&) = delete;
  ~RuntimeGenericServer() {
    runtime_->cancel("test over");
    thread_.join();
    server_.reset();
    EXPECT_EQ(runtime_->close(), 0u) << "a tag was left in a completion queue";
  }

  int port() const { return port_; }

 private:
  rt::Task<void> serve() {
    rt::Loop& loop = *rt::Loop::current();
    try {
      rt::TaskGroup group;
      co_await group.run(
          [](RuntimeGenericServer& self, rt::TaskGroup& g, rt::Loop& loop) -> rt::Task<void> {
            while (rt::ServerCallPtr call = co_await rt::accept(self.service_, loop)) {
              g.spawn(self.handle_(std::move(call)));
            }
          }(*this, group, loop));
    } catch (const rt::CancelledError&) {
    }
    // Cleanup after the cancellation: stop the server off the loop thread, the loop keeps
    // draining the calls' tags meanwhile.
    grpc::Server* server = server_.get();
    co_await rt::to_thread([server] { server->Shutdown(std::chrono::system_clock::now()); });
  }

  Handler handle_;
  int port_ = 0;
  grpc::AsyncGenericService service_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::unique_ptr<grpc::Server> server_;
  std::thread thread_;
};

}  // namespace curfew::testing
