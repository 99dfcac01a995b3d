// H2UnaryCaller: the unary policies' upstream call (UnaryCaller) on the nghttp2 data path: one
// buffered request message on a stream of the loop's UpstreamPool, the whole response read
// back, on an endpoint the pool picks (and, for the call's retries and hedges, another one). A
// buffering route asks the upstream for an uncompressed reply (grpc-accept-encoding:
// identity): fan-out merges replies, which compressed bytes would defeat.
//
// On this path metadata values are kept as they travel: a -bin value stays base64, in the
// request (UnaryRequest::metadata) and in the reply (UpstreamReply's metadata). The status's
// binary details are decoded (CallStatus holds them so).
#pragma once

#include <map>
#include <string>

#include "config/config.h"
#include "sidecar/internal/routing.h"
#include "sidecar/internal/unary_caller.h"
#include "sidecar/internal/upstream_pool.h"

namespace curfew::sidecar {

class H2UnaryCaller final : public UnaryCaller {
 public:
  // `pool` (the loop's) and `routing` (the call's) outlive the caller.
  // `callers_deadline`: the caller's own deadline when it is the one the upstream calls are
  // bound by (max() when a route's or a per-try deadline is shorter): a call that runs out a
  // shorter deadline ran out one the endpoint had in full, and counts as its failure (outlier
  // detection); one that runs out the caller's own does not.
  H2UnaryCaller(UpstreamPool& pool, const Routing& routing,
                rt::TimePoint callers_deadline = rt::TimePoint::max())
      : pool_(pool), routing_(routing), callers_deadline_(callers_deadline) {}
  rt::Task<UpstreamReply> call(const std::string& upstream, const UnaryRequest& request,
                               rt::TimePoint deadline) override;

 private:
  UpstreamPool& pool_;
  const Routing& routing_;
  rt::TimePoint callers_deadline_;
  // The endpoints this caller's calls tried, per upstream: a retry or a hedge of the same call
  // goes to another endpoint of the set while one is left. (One caller serves one proxied call.)
  std::map<std::string, TriedEndpoints> tried_;
};

}  // namespace curfew::sidecar
