// libFuzzer target: a client-role h2::Session reading arbitrary bytes from its "upstream".
//
// The input is what the upstream server sends after its first frame: the harness prepends an
// empty SETTINGS frame (a server's connection preface), so the fuzzer explores what follows.
// The session runs on one end of a socketpair on an epoll runtime and opens two gRPC calls
// (streams 1 and 3: request headers, one small framed message, END_STREAM); on the other end
// the fuzzer's peer waits for the session's first bytes (its preface and requests), writes the
// input, then half-closes, reading and discarding everything meanwhile (h2_fuzz_support.h).
// Each call is read as a gRPC proxy reads an upstream's answer: the response headers (or a
// trailers-only response), the body through a wire::MessageReader (a framing error resets the
// stream with CANCEL), then the trailers' grpc-status. Once both calls ended the session shuts
// down (GOAWAY).
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
#include "wire/message_reader.h"
#include "wire/status_mapping.h"

namespace {

namespace rt = curfew::rt;
namespace h2 = curfew::h2;
namespace wire = curfew::wire;
using curfew_fuzz::Peer;

// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
constexpr std::string_view kServerPreface{"\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9};
constexpr uint32_t kMaxMessageBytes = 1 << 20;
constexpr uint32_t kCancel = 8;  // RFC 9113 CANCEL

class DiscardingSink final : public wire::MessageSink {
 public:
  absl::Status on_message_header(wire::MessageHeader) override { return absl::OkStatus(); }
  absl::Status on_message_data(std::string_view) override { return absl::OkStatus(); }
  absl::Status on_message_end() override { return absl::OkStatus(); }
};

h2::Headers request_headers(const char* path) {
  return {{":method", "POST"},
          {":scheme", "http"},
          {":path", path},
          {":authority", "upstream"},
          {"content-type", "application/grpc"},
          {"te", "trailers"},
          {"grpc-timeout", "1S"}};
}

// The gRPC code for a response without a usable grpc-status: from its HTTP :status.
absl::StatusCode code_from_http_status(const h2::Stream& stream) {
  const auto http = h2::find_header(stream.headers(), ":status");
  int http_status = 0;
  if (http && http->size() == 3) {
    for (char c : *http) http_status = http_status * 10 + (c - '0');
  }
  return wire::grpc_code_from_http_status(http_status);
}

// The gRPC status of a finished call, as a proxy derives it (the value only feeds the parsers).
absl::StatusCode call_status(const h2::Stream& stream, const absl::Status& framing) {
  if (!framing.ok()) return framing.code();
  if (!stream.ended_cleanly()) return wire::grpc_code_from_h2_error(stream.reset_code());
  const auto content_type = h2::find_header(stream.headers(), "content-type");
  if (!content_type || !wire::is_grpc_content_type(*content_type))
    return code_from_http_status(stream);
  const h2::Headers& trailers = stream.headers_only() ? stream.headers() : stream.trailers();
  if (auto status = h2::find_header(trailers, "grpc-status")) {
    auto code = wire::parse_grpc_status(*status);
    return code.ok() ? *code : code.status().code();
  }
  return code_from_http_status(stream);
}

rt::Task<void> call(std::shared_ptr<h2::Stream> stream) {
  if (stream == nullptr) co_return;  // the session refused a new stream
  std::string message;
  wire::append_message_prefix(message, false, 5);
  message += "hello";
  if (co_await stream->write(std::move(message))) stream->end();
  if (!co_await stream->wait_headers()) co_return;

  DiscardingSink sink;
  wire::MessageReader reader(kMaxMessageBytes);
  absl::Status framing;
  while (std::optional<std::string> chunk = co_await stream->read()) {
    framing = reader.feed(*chunk, sink);
    if (!framing.ok()) {
      stream->reset(kCancel);  // a proxy stops an upstream call whose framing broke
      break;
    }
  }
  if (framing.ok() && stream->ended_cleanly()) framing = reader.end_of_stream_status();
  (void)call_status(*stream, framing);
}

rt::Task<void> start_calls(rt::TaskGroup& calls, std::shared_ptr<h2::Stream> a,
                           std::shared_ptr<h2::Stream> b) {
  calls.spawn(call(std::move(a)), "call-a");
  calls.spawn(call(std::move(b)), "call-b");
  co_return;
}

rt::Task<void> calls_then_shutdown(h2::Session& session, std::shared_ptr<h2::Stream> a,
                                   std::shared_ptr<h2::Stream> b) {
  {
    rt::TaskGroup calls;
    co_await calls.run(start_calls(calls, std::move(a), std::move(b)));
  }
  session.shutdown();
}

rt::Task<void> start(rt::TaskGroup& group, h2::Session& session, Peer& peer, std::string bytes) {
  // Both requests are queued before the session's first write: the peer answers after it.
  auto a = session.open_stream(request_headers("/curfew.fuzz.Echo/A"));
  auto b = session.open_stream(request_headers("/curfew.fuzz.Echo/B"));
  group.spawn(session.run(nullptr), "session");
  group.spawn(peer.drain(), "peer-reader");
  group.spawn(peer.send(std::move(bytes), session, /*after_session_speaks=*/true), "peer-writer");
  group.spawn(calls_then_shutdown(session, std::move(a), std::move(b)), "calls");
  co_return;
}

rt::Task<void> call_upstream(std::string bytes) {
  rt::Loop& loop = (co_await rt::this_task{}).loop();
  const curfew_fuzz::SocketPair fds = curfew_fuzz::make_socketpair();
  h2::Session session(rt::Socket(loop, fds.session), h2::Role::kClient,
                      curfew_fuzz::small_limits());
  Peer peer(loop, fds.peer);
  rt::TaskGroup group;
  co_await group.run(start(group, session, peer, std::move(bytes)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(kServerPreface);
  bytes.append(reinterpret_cast<const char*>(data), size);
  curfew_fuzz::run_one([&] { return call_upstream(std::move(bytes)); });
  return 0;
}
