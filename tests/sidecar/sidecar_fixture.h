// Test fixture: a real curfew Sidecar (in-process) in front of real backends, all on 127.0.0.1.
#pragma once

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "config/load.h"
#include "sidecar/sidecar.h"

namespace curfew::testing {

// Starts a Sidecar from `yaml` (listeners should use 127.0.0.1:0); fails the test on error.
inline std::unique_ptr<sidecar::Sidecar> start_sidecar(const std::string& yaml,
                                                       sidecar::CallObserver* observer = nullptr) {
  auto config = config::load_config_string(yaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  config->worker_threads = 2;
  auto started = sidecar::Sidecar::start(*std::move(config), observer);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? std::move(*started) : nullptr;
}

inline std::shared_ptr<grpc::Channel> channel_to(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(32 << 20);
  args.SetMaxSendMessageSize(32 << 20);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

// Polls `pred` every 5 ms for at most `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace curfew::testing
