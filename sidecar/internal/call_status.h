// CallStatus: a gRPC status as curfew carries it from an upstream's trailers (or its own
// decision) to the caller's: the code, the message (decoded, not percent-encoded) and the binary
// details (grpc-status-details-bin decoded: a serialized google.rpc.Status), empty when absent.
#pragma once

#include <string>
#include <utility>

#include <grpcpp/support/status_code_enum.h>

namespace curfew::sidecar {

class CallStatus {
 public:
  CallStatus() = default;  // OK
  CallStatus(grpc::StatusCode code, std::string message, std::string details = {})
      : code_(code), message_(std::move(message)), details_(std::move(details)) {}

  bool ok() const noexcept { return code_ == grpc::StatusCode::OK; }
  grpc::StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& details() const noexcept { return details_; }

 private:
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  std::string message_;
  std::string details_;
};

}  // namespace curfew::sidecar
