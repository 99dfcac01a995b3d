// One unary call to an upstream on behalf of the caller, as used by the unary policies (fan-out,
// retries, mirroring): the request is buffered, so it can be sent more than once.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/clock.h"
#include "runtime/task.h"
#include "sidecar/internal/call_status.h"

namespace curfew::sidecar {

// Header fields in order, values as they travel (a -bin value stays base64).
using Metadata = std::vector<std::pair<std::string, std::string>>;

// The caller's request, read in full. Borrowed: the caller's call owns every part and outlives
// the policy that reads it.
struct UnaryRequest {
  const std::string& method;
  const std::string& message;  // the one message's bytes, without gRPC's 5-byte prefix
  const Metadata& metadata;    // the caller's header fields, pseudo-headers excluded
  bool compressed = false;     // the message is compressed as the metadata's grpc-encoding says
};

// What an upstream answered.
struct UpstreamReply {
  CallStatus status;
  std::string response;  // the one message's bytes, without the prefix (empty unless OK)
  Metadata initial_metadata;
  Metadata trailing_metadata;  // what is forwarded to the caller (transport keys excluded)
  std::optional<std::string>
      retry_pushback_ms;  // the upstream's grpc-retry-pushback-ms, for curfew
};

// How the unary policies (fan-out, retries, mirroring) reach a named upstream: one buffered
// unary call, the deadline `deadline` propagated. Cancellation of the awaiting task cancels the
// call (RST_STREAM CANCEL) and throws CancelledError. The data path's is H2UnaryCaller
// (h2_unary_call.h); tests may script their own. `request` (and what it borrows) must outlive
// the returned task: the caller's bytes are sent from where they are, not copied.
class UnaryCaller {
 public:
  virtual ~UnaryCaller() = default;
  virtual rt::Task<UpstreamReply> call(const std::string& upstream, const UnaryRequest& request,
                                       rt::TimePoint deadline) = 0;
};

}  // namespace curfew::sidecar
