#include "sidecar/internal/upstream_call.h"

#include "runtime/grpc_unary_call.h"
#include "runtime/loop.h"
#include "sidecar/internal/deadline_policy.h"
#include "sidecar/internal/metadata.h"

namespace curfew::sidecar {
namespace {

Metadata copy(const std::multimap<grpc::string_ref, grpc::string_ref>& from) {
  Metadata out;
  for (const auto& [k, v] : from) {
    if (!is_hop_by_hop(k))
      out.emplace_back(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  return out;
}

}  // namespace

rt::Task<UpstreamReply> call_upstream(Upstream& upstream, const UnaryRequest& request,
                                      rt::TimePoint deadline) {
  rt::UnaryCall call(upstream.next_stub(), request.method, request.message, *rt::Loop::current());
  forward_request_metadata(request.metadata, call.context());
  call.context().set_deadline(to_system_deadline(deadline));
  UpstreamReply reply;
  reply.status = co_await call.finish();
  reply.response = call.response();  // ByteBuffer copies share the slices (refcounted)
  reply.initial_metadata = copy(call.context().GetServerInitialMetadata());
  const auto& trailers = call.context().GetServerTrailingMetadata();
  reply.trailing_metadata = copy(trailers);
  if (auto it = trailers.find("grpc-retry-pushback-ms"); it != trailers.end()) {
    reply.retry_pushback_ms.emplace(it->second.data(), it->second.size());
  }
  co_return reply;
}

rt::Task<UpstreamReply> GrpcUnaryCaller::call(const std::string& upstream,
                                              const UnaryRequest& request, rt::TimePoint deadline) {
  Upstream* u = upstreams_.find(upstream);
  if (u == nullptr) {  // never for names a validated config refers to
    UpstreamReply reply;
    reply.status =
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "curfew: no upstream named '" + upstream + "'");
    co_return reply;
  }
  co_return co_await call_upstream(*u, request, deadline);
}

}  // namespace curfew::sidecar
