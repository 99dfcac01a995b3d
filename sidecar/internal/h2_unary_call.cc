#include "sidecar/internal/h2_unary_call.h"

#include <limits>
#include <optional>
#include <vector>

#include "absl/strings/escaping.h"
#include "runtime/errors.h"
#include "runtime/timeout.h"
#include "sidecar/internal/metadata.h"
#include "wire/grpc_timeout.h"
#include "wire/h2_error.h"
#include "wire/message_reader.h"
#include "wire/percent_encoding.h"
#include "wire/status_mapping.h"

namespace curfew::sidecar {
namespace {

using grpc::StatusCode;

// Collects one response's messages (a unary reply has one).
class Collect final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader h) override {
    ++messages;
    compressed = h.compressed;
    payload.clear();
    return absl::OkStatus();
  }
  absl::Status on_message_data(std::string_view piece) override {
    payload.append(piece.data(), piece.size());
    return absl::OkStatus();
  }
  absl::Status on_message_end() override { return absl::OkStatus(); }
  int messages = 0;
  bool compressed = false;
  std::string payload;
};

// The application's header fields, values as they travel.
Metadata metadata_of(const h2::Headers& headers) {
  Metadata out;
  for (const h2::Header& h : headers) {
    if (!is_hop_by_hop(h.name)) out.emplace_back(h.name, h.value);
  }
  return out;
}

UpstreamReply failure(StatusCode code, const std::string& message) {
  UpstreamReply reply;
  reply.status = CallStatus(code, message);
  return reply;
}

// The call on one stream; nullopt when the upstream refused the stream unprocessed
// (REFUSED_STREAM, or above a GOAWAY's last stream id: RFC 9113 §8.7), so it may be sent again.
rt::Task<std::optional<UpstreamReply>> exchange(h2::Stream& up, std::string body,
                                                const std::string& name) {
  co_await up.write(std::move(body));
  up.end();
  if (!co_await up.wait_headers()) {
    if (up.reset_by_peer() &&
        up.reset_code() == static_cast<uint32_t>(wire::H2Error::kRefusedStream))
      co_return std::nullopt;
    if (up.reset_by_peer()) {
      co_return failure(static_cast<StatusCode>(wire::grpc_code_from_h2_error(up.reset_code())),
                        "upstream '" + name + "' reset the stream (HTTP/2 error " +
                            std::to_string(up.reset_code()) + ")");
    }
    co_return failure(StatusCode::UNAVAILABLE, "upstream '" + name + "' connection lost");
  }
  UpstreamReply reply;
  const int http_status = wire::http_status_of(h2::find_header(up.headers(), ":status"));
  if (http_status != 200 && !h2::find_header(up.headers(), "grpc-status")) {
    co_return failure(static_cast<StatusCode>(wire::grpc_code_from_http_status(http_status)),
                      "upstream '" + name + "' answered HTTP " + std::to_string(http_status));
  }
  const h2::Headers* trailers = &up.headers();
  Collect collect;
  if (!up.headers_only()) {
    reply.initial_metadata = metadata_of(up.headers());
    wire::MessageReader reader(std::numeric_limits<uint32_t>::max());
    for (;;) {  // bounded by the upstream's stream
      std::optional<std::string> chunk = co_await up.read();
      if (!chunk) break;
      if (absl::Status s = reader.feed(*chunk, collect); !s.ok()) {
        co_return failure(StatusCode::INTERNAL,
                          "upstream '" + name + "' sent " + std::string(s.message()));
      }
    }
    if (!up.ended_cleanly()) {
      if (up.reset_by_peer()) {
        co_return failure(static_cast<StatusCode>(wire::grpc_code_from_h2_error(up.reset_code())),
                          "upstream '" + name + "' reset the stream");
      }
      co_return failure(StatusCode::UNAVAILABLE, "upstream '" + name + "' connection lost");
    }
    trailers = &up.trailers();
  }
  StatusCode code = StatusCode::UNKNOWN;
  if (auto s = h2::find_header(*trailers, "grpc-status")) {
    auto parsed = wire::parse_grpc_status(*s);
    if (parsed.ok()) code = static_cast<StatusCode>(*parsed);
  }
  std::string message;
  if (auto m = h2::find_header(*trailers, "grpc-message")) message = wire::decode_grpc_message(*m);
  std::string details;
  if (auto d = h2::find_header(*trailers, "grpc-status-details-bin"))
    absl::Base64Unescape(absl::string_view(d->data(), d->size()), &details);
  reply.trailing_metadata = metadata_of(*trailers);
  if (auto p = h2::find_header(*trailers, "grpc-retry-pushback-ms")) reply.retry_pushback_ms = *p;
  if (code == StatusCode::OK && collect.messages != 1) {
    co_return failure(StatusCode::INTERNAL, "upstream '" + name + "' answered a unary call with " +
                                                std::to_string(collect.messages) + " messages");
  }
  if (collect.compressed) {
    co_return failure(StatusCode::INTERNAL,
                      "upstream '" + name + "' compressed its reply although asked not to");
  }
  reply.response = std::move(collect.payload);
  reply.status = CallStatus(code, std::move(message), std::move(details));
  co_return reply;
}

}  // namespace

rt::Task<UpstreamReply> H2UnaryCaller::call(const std::string& upstream,
                                            const UnaryRequest& request, rt::TimePoint deadline) {
  const config::Upstream* config = routing_.config.find_upstream(upstream);
  const UpstreamTls* tls = routing_.tls_for(upstream);
  if (config == nullptr || config->endpoints.empty())
    co_return failure(StatusCode::UNAVAILABLE, "curfew: no upstream named '" + upstream + "'");
  if (rt::Clock::now() >= deadline)
    co_return failure(StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
  // A node of a std::map: stays put while concurrent calls (fan-out children) add others.
  TriedEndpoints& tried = tried_[upstream];

  // The application's fields, the same on every stream; :authority and grpc-timeout are each
  // stream's own (the endpoint's, the deadline's).
  h2::Headers metadata;
  for (const auto& [k, v] : request.metadata) {
    if (!is_hop_by_hop(k)) metadata.push_back({k, v});
  }
  if (request.compressed) {
    for (const auto& [k, v] : request.metadata) {
      if (k == "grpc-encoding") metadata.push_back({"grpc-encoding", v});
    }
  }
  auto request_headers = [&](std::string_view authority) {
    h2::Headers headers;
    headers.reserve(9, 160 + request.method.size() + authority.size() + metadata.byte_size());
    headers.push_back({":method", "POST"});
    headers.push_back({":scheme", tls != nullptr ? "https" : "http"});
    headers.push_back({":path", request.method});
    headers.push_back({":authority", authority});
    headers.push_back({"te", "trailers"});
    headers.push_back({"content-type", "application/grpc"});
    headers.push_back({"user-agent", "curfew/" CURFEW_VERSION});
    headers.push_back({"grpc-accept-encoding", "identity"});
    headers.push_back({"grpc-timeout", wire::format_grpc_timeout(deadline - rt::Clock::now())});
    for (const h2::Header h : metadata) headers.push_back(h);
    return headers;
  };
  const std::string& payload = request.message;  // borrowed: the request outlives the call
  // A stream refused unprocessed is sent again once on another stream (another endpoint when
  // the set has one), as gRPC does (gRFC A6); a connection that stopped taking streams between
  // the pick and open_stream is replaced the same way.
  std::string refused;
  for (int turn = 0; turn < 2; ++turn) {
    EndpointLease lease;
    try {
      if (!pool_.pick_connected(*config, tls, tried, lease))
        lease = co_await rt::deadline(deadline, pool_.pick(*config, tls, tried));
    } catch (const UpstreamUnavailable& e) {
      co_return failure(StatusCode::UNAVAILABLE, e.what());
    } catch (const rt::TimeoutError&) {
      co_return failure(StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
    }
    lease.learn_if_cancelled();  // a hedge that lost teaches the balancer its endpoint is slow
    std::shared_ptr<h2::Stream> up =
        lease.session().open_stream(request_headers(lease.authority()));
    if (!up) {
      refused = "upstream '" + upstream + "' endpoint " + lease.endpoint().address_text +
                " refused a new stream";
      continue;
    }
    struct ResetOnExit {
      h2::Stream& up;
      ~ResetOnExit() { up.reset(static_cast<uint32_t>(wire::H2Error::kCancel)); }
    } reset_on_exit{*up};
    std::string body;
    wire::append_message_prefix(body, request.compressed, static_cast<uint32_t>(payload.size()));
    body += payload;
    try {
      std::optional<UpstreamReply> reply =
          co_await rt::deadline(deadline, exchange(*up, std::move(body), upstream));
      if (reply) {
        // What the balancer and outlier detection learn: an UNAVAILABLE (the pod is going, the
        // connection broke), or a deadline it had in full run out, is the endpoint's failure;
        // any other answer shows it serving.
        const StatusCode code = reply->status.code();
        if (code == StatusCode::UNAVAILABLE ||
            (code == StatusCode::DEADLINE_EXCEEDED && deadline < callers_deadline_)) {
          lease.failed(reply->status.message(), rt::Clock::now());
        } else if (code != StatusCode::DEADLINE_EXCEEDED && code != StatusCode::CANCELLED) {
          lease.succeeded(rt::Clock::now());
        }
        co_return *std::move(reply);
      }
      refused = "upstream '" + upstream + "' refused the stream (HTTP/2 REFUSED_STREAM)";
    } catch (const rt::TimeoutError&) {
      if (deadline < callers_deadline_)
        lease.failed("ran out a deadline it had in full", rt::Clock::now());
      co_return failure(StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
    }
  }
  co_return failure(StatusCode::UNAVAILABLE, refused);
}

}  // namespace curfew::sidecar
