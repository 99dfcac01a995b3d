// One unary call to an upstream on behalf of the caller, as used by the unary policies (fan-out,
// retries, mirroring): the request is buffered, so it can be sent more than once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "runtime/clock.h"
#include "runtime/task.h"
#include "sidecar/internal/upstreams.h"

namespace curfew::sidecar {

// The caller's request, read in full.
struct UnaryRequest {
  const std::string& method;
  const grpc::ByteBuffer& message;
  const std::multimap<grpc::string_ref, grpc::string_ref>& metadata;
  bool compressed = false;  // the message is compressed as the metadata's grpc-encoding says
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// What an upstream answered.
struct UpstreamReply {
  grpc::Status status;
  grpc::ByteBuffer response;
  Metadata initial_metadata;
  Metadata trailing_metadata;  // what is forwarded to the caller (transport keys excluded)
  std::optional<std::string>
      retry_pushback_ms;  // the upstream's grpc-retry-pushback-ms, for curfew
};

// Calls `upstream` with `request`, the deadline `deadline` propagated. Cancellation of the
// awaiting task cancels the call (RST_STREAM CANCEL) and throws CancelledError.
rt::Task<UpstreamReply> call_upstream(Upstream& upstream, const UnaryRequest& request,
                                      rt::TimePoint deadline);

// How the unary policies (fan-out, retries, mirroring) reach a named upstream: one buffered
// unary call, with call_upstream()'s contract. Each data path provides one: the gRPC path's
// channels (GrpcUnaryCaller), the nghttp2 path's connections (h2_unary_call.h).
class UnaryCaller {
 public:
  virtual ~UnaryCaller() = default;
  virtual rt::Task<UpstreamReply> call(const std::string& upstream, const UnaryRequest& request,
                                       rt::TimePoint deadline) = 0;
};

// The gRPC path's: a call on the upstream's channel from `upstreams` (which must outlive it).
class GrpcUnaryCaller final : public UnaryCaller {
 public:
  explicit GrpcUnaryCaller(const Upstreams& upstreams) : upstreams_(upstreams) {}
  rt::Task<UpstreamReply> call(const std::string& upstream, const UnaryRequest& request,
                               rt::TimePoint deadline) override;

 private:
  const Upstreams& upstreams_;
};

}  // namespace curfew::sidecar
