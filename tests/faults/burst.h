// Bursts of concurrent calls on the async gRPC API: every call started at once on one completion
// queue, some cancelled by the caller at chosen points, every outcome collected. Bounded in time.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "curfew/demo/demo.grpc.pb.h"

namespace curfew::testing {

struct BurstCall {
  demo::SlowRequest request;                              // sent to /curfew.demo.Demo/Slow
  std::optional<std::chrono::milliseconds> deadline;      // the caller's own, if any
  std::optional<std::chrono::milliseconds> cancel_after;  // the caller cancels then, if set
  // Outcome
  grpc::Status status;
  demo::EchoReply reply;
  std::chrono::milliseconds took{};
  bool done = false;
};

// Runs `calls` concurrently on `stub` and waits (at most `limit`) for every one to end.
// Returns false if some did not end in time.
inline bool run_burst(demo::Demo::Stub& stub, std::vector<BurstCall>& calls,
                      std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  struct Live {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncResponseReader<demo::EchoReply>> rpc;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Live>> live(calls.size());
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < calls.size(); ++i) {
    live[i] = std::make_unique<Live>();
    if (calls[i].deadline)
      live[i]->ctx.set_deadline(std::chrono::system_clock::now() + *calls[i].deadline);
    live[i]->rpc = stub.PrepareAsyncSlow(&live[i]->ctx, calls[i].request, &cq);
    live[i]->rpc->StartCall();
    live[i]->rpc->Finish(&calls[i].reply, &calls[i].status, reinterpret_cast<void*>(i));
  }
  // The caller-side cancellations, in time order, from one thread.
  std::vector<std::pair<std::chrono::milliseconds, size_t>> cancels;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].cancel_after) cancels.emplace_back(*calls[i].cancel_after, i);
  }
  std::sort(cancels.begin(), cancels.end());
  std::thread canceller([&] {
    for (const auto& [at, i] : cancels) {
      std::this_thread::sleep_until(start + at);
      live[i]->ctx.TryCancel();
    }
  });
  size_t finished = 0;
  const auto until = std::chrono::system_clock::now() + limit;
  while (finished < calls.size()) {
    void* tag = nullptr;
    bool ok = false;
    if (cq.AsyncNext(&tag, &ok, until) != grpc::CompletionQueue::GOT_EVENT) break;
    BurstCall& c = calls[reinterpret_cast<size_t>(tag)];
    c.done = true;
    c.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    ++finished;
  }
  canceller.join();
  if (finished < calls.size()) {
    for (auto& l : live) l->ctx.TryCancel();  // let the queue drain before it goes
    while (finished < calls.size()) {
      void* tag = nullptr;
      bool ok = false;
      if (!cq.Next(&tag, &ok)) break;
      ++finished;
    }
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
    return false;
  }
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return true;
}

// How many calls ended with each status code.
inline std::map<grpc::StatusCode, int> count_codes(const std::vector<BurstCall>& calls) {
  std::map<grpc::StatusCode, int> out;
  for (const BurstCall& c : calls) ++out[c.status.error_code()];
  return out;
}

}  // namespace curfew::testing
