// The client half of gRPC's interop test cases (grpc/grpc doc/interop-test-descriptions.md),
// runnable against any channel: straight to a TestService server, or through the proxy.
//
// Each case asserts what the description asserts (plus, where the description explicitly allows
// it, that payload bodies are all zeros). Every call carries a deadline (10 s unless the case sets
// its own), so a case never hangs however broken the path is.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>
#include <vector>

namespace curfew::testing {

struct InteropResult {
  std::string name;  // the case's name, as in InteropCaseNames()
  bool passed = false;
  std::string detail;  // why it failed; a short summary when it passed
};

// Largest message any case sends or receives (large_unary_16mb moves 16 MiB each way). gRPC
// rejects received messages over 4 MiB by default, so the client channel, the server, and any
// proxy in between must all allow at least this much.
inline constexpr int kInteropMaxMessageBytes = 32 * 1024 * 1024;

// Channel arguments for channels handed to RunInteropCase: max send and receive message length
// set to kInteropMaxMessageBytes. Without them large_unary_16mb fails with RESOURCE_EXHAUSTED.
grpc::ChannelArguments InteropChannelArguments();

// A plaintext channel to `target` (e.g. "127.0.0.1:5000") with InteropChannelArguments().
std::shared_ptr<grpc::Channel> CreateInteropChannel(const std::string& target);

// Every case RunInteropCase knows, in the order the description lists them (the extra
// large_unary_16mb last).
std::vector<std::string> InteropCaseNames();

// Runs one case over `channel`. An unknown name is a failed result, not an exception.
InteropResult RunInteropCase(const std::string& name, std::shared_ptr<grpc::Channel> channel);

}  // namespace curfew::testing
