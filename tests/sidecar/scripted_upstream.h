// ScriptedUpstream: a real gRPC server on 127.0.0.1 whose answer to curfew.demo.Demo/Echo each
// test scripts (fast, slow, failing with a code, hanging until cancelled), and which records
// what it saw: calls started, calls cancelled, calls still running.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "curfew/demo/demo.grpc.pb.h"

namespace curfew::testing {

struct Script {
  std::chrono::milliseconds delay{0};  // before answering (the call may be cancelled meanwhile)
  bool hang = false;                   // never answer: wait until cancelled (at most 30 s)
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string details;  // grpc-status-details-bin of a failure
};

class ScriptedUpstream final : public demo::Demo::Service {
 public:
  // `script(n)` decides the n-th call's answer (n from 0).
  ScriptedUpstream(std::string name, std::function<Script(int)> script)
      : name_(std::move(name)), script_(std::move(script)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~ScriptedUpstream() override {
    server_->Shutdown(std::chrono::system_clock::now());
    // Handlers are done now, but TSan cannot see gRPC's own synchronisation: taking the lock
    // the handlers took orders their writes before this object's destruction.
    std::lock_guard<std::mutex> lock(mu_);
    last_metadata_.clear();
  }

  int port() const { return port_; }
  const std::string& name() const { return name_; }
  int started() const { return started_; }
  int cancelled() const { return cancelled_; }
  int active() const { return active_; }
  int completed() const { return completed_; }

  // The metadata of the latest call (keys and values as received).
  std::multimap<std::string, std::string> last_metadata() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_metadata_;
  }

  grpc::Status Echo(grpc::ServerContext* ctx, const demo::EchoRequest* request,
                    demo::EchoReply* reply) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_metadata_.clear();
      for (const auto& [k, v] : ctx->client_metadata()) {
        last_metadata_.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
      }
    }
    const int n = started_++;
    ++active_;
    struct Done {
      std::atomic<int>& active;
      ~Done() { --active; }
    } done{active_};
    const Script s = script_(n);
    const auto until =
        std::chrono::steady_clock::now() + (s.hang ? std::chrono::seconds(30) : s.delay);
    while (std::chrono::steady_clock::now() < until) {
      if (ctx->IsCancelled()) {
        ++cancelled_;
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ++completed_;
    for (const auto& [k, v] : s.trailers) ctx->AddTrailingMetadata(k, v);
    if (s.code != grpc::StatusCode::OK) return grpc::Status(s.code, s.message, s.details);
    reply->set_message(request->message() + " from " + name_);
    reply->add_parts(name_);
    return grpc::Status::OK;
  }

 private:
  std::string name_;
  std::function<Script(int)> script_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> started_{0}, cancelled_{0}, active_{0}, completed_{0};
  mutable std::mutex mu_;
  std::multimap<std::string, std::string> last_metadata_;
};

inline std::function<Script(int)> always(Script s) {
  return [s](int) { return s; };
}

}  // namespace curfew::testing
