// Upstreams: one gRPC channel per configured endpoint, and the choice of endpoint per call.
//
// Only configured upstreams are ever dialled: curfew is never an open proxy.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "config/config.h"

namespace curfew::sidecar {

class Upstream {
 public:
  // Opens channels (lazily connecting) to every endpoint of `config`, accepting messages and
  // metadata (headers, trailers) up to the given sizes.
  static absl::StatusOr<std::unique_ptr<Upstream>> open(const config::Upstream& config,
                                                        int max_message_bytes,
                                                        int max_metadata_bytes);

  const std::string& name() const noexcept { return name_; }

  // The stub for the next call: endpoints in turn (per-endpoint round robin).
  grpc::GenericStub& next_stub() noexcept;

 private:
  struct Endpoint {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<grpc::GenericStub> stub;
  };
  std::string name_;
  std::vector<Endpoint> endpoints_;
  std::atomic<unsigned> next_{0};
};

// Every upstream of a configuration, by name.
class Upstreams {
 public:
  static absl::StatusOr<std::shared_ptr<const Upstreams>> open(const config::Config& config);
  // nullptr for an unknown name (never the case for names a validated config refers to).
  Upstream* find(const std::string& name) const;

 private:
  std::unordered_map<std::string, std::unique_ptr<Upstream>> by_name_;
};

}  // namespace curfew::sidecar
