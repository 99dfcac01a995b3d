// libFuzzer target: a server-role h2::Session reading arbitrary bytes from its caller.
//
// The input is what a caller sends after the client connection preface (the harness writes the
// preface itself): frames, or anything else. The session runs on one end of a socketpair on an
// epoll runtime; on the other end the fuzzer's peer writes the preface and the input, then
// half-closes, reading and discarding the session's answers meanwhile (h2_fuzz_support.h).
// Each request stream is served as a gRPC proxy's handler would serve it:
//   - ":path /reset": the stream is reset with CANCEL (8) at once;
//   - a content-type that is not gRPC's: HTTP 415, trailers-only;
//   - otherwise the body is read chunk by chunk through a wire::MessageReader (1 MiB messages at
//     most); a framing error answers trailers-only with grpc-status 8 (too large) or 13 (bad
//     framing, or a body ending inside a message); a good body is echoed: response headers, the
//     bytes read, trailers grpc-status 0.
// Small SessionLimits (h2_fuzz_support.h) put the header list, window, concurrency, reset, ACK
// and CONTINUATION limits within reach of a few frames.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "h2/header.h"
#include "h2/session.h"
#include "h2/stream.h"
#include "h2_fuzz_support.h"
#include "runtime/task_group.h"
#include "wire/content_type.h"
#include "wire/grpc_timeout.h"
#include "wire/message_reader.h"
#include "wire/metadata_rules.h"

namespace {

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
namespace wire = curfew::wire;
using curfew_fuzz::Peer;

constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr uint32_t kMaxMessageBytes = 1 << 20;
constexpr uint32_t kCancel = 8;  // RFC 9113 CANCEL

// Counts what a proxy would forward (it copies nothing: the handler echoes the raw bytes).
class CountingSink final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader header) override {
    declared_ += header.length;
    return absl::OkStatus();
  }
  absl::Status on_message_data(std::string_view piece) override {
    received_ += piece.size();
    return absl::OkStatus();
  }
  absl::Status on_message_end() override { return absl::OkStatus(); }

 private:
  uint64_t declared_ = 0;
  uint64_t received_ = 0;
};

h2::Headers response_headers() {
  return {{":status", "200"}, {"content-type", "application/grpc"}};
}

h2::Headers trailers_only(const char* grpc_status) {
  h2::Headers headers = response_headers();
  headers.push_back({"grpc-status", grpc_status});
  return headers;
}

rt::Task<void> serve_stream(std::shared_ptr<h2::Stream> stream) {
  const h2::Headers& request = stream->headers();
  const auto path = h2::find_header(request, ":path");
  if (path && *path == "/reset") {
    stream->reset(kCancel);
    co_return;
  }
  const auto content_type = h2::find_header(request, "content-type");
  if (!content_type || !wire::is_grpc_content_type(*content_type)) {
    stream->send_trailers_only({{":status", "415"}});
    co_return;
  }
  // What a proxy looks at before forwarding: the deadline and the forwardable metadata.
  size_t forwardable = 0;
  for (const h2::Header& h : request) {
    if (h.name == "grpc-timeout") (void)wire::parse_grpc_timeout(h.value);
    if (wire::is_forwardable_header(h.name, h.value)) ++forwardable;
  }
  (void)forwardable;

  CountingSink sink;
  wire::MessageReader reader(kMaxMessageBytes);
  std::string body;
  absl::Status framing;
  while (std::optional<std::string> chunk = co_await stream->read()) {
    framing = reader.feed(*chunk, sink);
    if (!framing.ok()) break;
    body += *chunk;
  }
  if (framing.ok() && stream->ended_cleanly()) framing = reader.end_of_stream_status();
  if (!framing.ok()) {
    stream->send_trailers_only(
        trailers_only(framing.code() == absl::StatusCode::kResourceExhausted ? "8" : "13"));
    co_return;
  }
  if (!stream->send_headers(response_headers())) co_return;
  if (!co_await stream->write(std::move(body))) co_return;
  stream->end({{"grpc-status", "0"}});
}

rt::Task<void> start(rt::TaskGroup& group, h2::Session& session, Peer& peer, std::string bytes) {
  group.spawn(session.run(&serve_stream), "session");
  group.spawn(peer.drain(), "peer-reader");
  group.spawn(peer.send(std::move(bytes), session, /*after_session_speaks=*/false), "peer-writer");
  co_return;
}

rt::Task<void> serve_input(std::string bytes) {
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  const curfew_fuzz::SocketPair fds = curfew_fuzz::make_socketpair();
  h2::Session session(rt::Socket(loop, fds.session), h2::Role::kServer,
                      curfew_fuzz::small_limits());
  Peer peer(loop, fds.peer);
  rt::TaskGroup group;
  co_await group.run(start(group, session, peer, std::move(bytes)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(kClientPreface);
  bytes.append(reinterpret_cast<const char*>(data), size);
  curfew_fuzz::run_one([&] { return serve_input(std::move(bytes)); });
  return 0;
}
