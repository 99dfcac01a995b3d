// The gRPC message framing of a call's DATA frames (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"):
// each message is a 1-byte compressed flag (0 or 1), a 4-byte big-endian length, then that many
// bytes. DATA frame boundaries have no relation to message boundaries, so the reader takes the
// stream in chunks cut anywhere and reports each message in pieces as they arrive: a proxy can
// forward a message before its last byte is in, and never holds a whole message.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace curfew::wire {

// The size of the compressed flag and length in front of every message.
inline constexpr size_t kMessagePrefixBytes = 5;

// The prefix of one message.
struct MessageHeader {
  bool compressed = false;  // the body is compressed with the call's grpc-encoding
  uint32_t length = 0;      // of the body, prefix excluded

  friend bool operator==(const MessageHeader&, const MessageHeader&) = default;
};

// What a MessageReader reports, in stream order. For each message: on_message_header() once,
// on_message_data() zero or more times, on_message_end() once. A non-OK status returned by any
// of them stops MessageReader::feed(), which returns it.
class MessageSink {
 public:
  virtual ~MessageSink() = default;

  // The message's prefix, as soon as its 5 bytes are in and valid.
  virtual absl::Status on_message_header(MessageHeader header) = 0;

  // The next piece of the body, never empty. `piece` points into the chunk given to feed() and
  // is valid only during the call: copy what must outlive it.
  virtual absl::Status on_message_data(std::string_view piece) = 0;

  // The body is complete (right after on_message_header() for a zero-length message).
  virtual absl::Status on_message_end() = 0;
};

// Incremental parser of one direction of one call's message stream.
//
// Errors are final: once feed() has returned a non-OK status, the stream is broken (its framing
// is lost) and every later feed() returns the same status without reading anything.
class MessageReader {
 public:
  // Messages whose length exceeds `max_message_bytes` are refused before any of their body is
  // reported (std::numeric_limits<uint32_t>::max() sets no limit).
  explicit MessageReader(uint32_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Reads `chunk`, the next bytes of the stream (may be empty, may end anywhere), reporting what
  // it completes to `sink`. Returns:
  //   - INTERNAL "grpc message: compressed flag byte 0x02" for a flag other than 0 or 1, reported
  //     as soon as the flag byte is in;
  //   - RESOURCE_EXHAUSTED naming both sizes for a length above the limit;
  //   - the first non-OK status returned by `sink`.
  absl::Status feed(std::string_view chunk, MessageSink& sink);

  // True when no message is partly read: the stream may end here. False after an error.
  bool at_message_boundary() const noexcept {
    return status_.ok() && !in_body_ && prefix_size_ == 0;
  }

  // The status of a stream that ends now (END_STREAM): OK at a message boundary, INTERNAL naming
  // how much of the message arrived when it ends inside one, the error after an error.
  absl::Status end_of_stream_status() const;

  // Messages completely read (on_message_end() reported).
  uint64_t messages() const noexcept { return messages_; }
  // Body bytes reported through on_message_data(), prefixes excluded.
  uint64_t payload_bytes() const noexcept { return payload_bytes_; }
  // Every byte consumed from the stream, prefixes included.
  uint64_t stream_bytes() const noexcept { return stream_bytes_; }

 private:
  absl::Status fail(absl::Status status);

  uint32_t max_message_bytes_;
  absl::Status status_;  // the first error; OK until then
  std::array<unsigned char, kMessagePrefixBytes> prefix_{};
  size_t prefix_size_ = 0;  // bytes of the current prefix received, while !in_body_
  bool in_body_ = false;
  MessageHeader header_;    // of the current message, while in_body_
  uint32_t remaining_ = 0;  // of the current body, while in_body_
  uint64_t messages_ = 0;
  uint64_t payload_bytes_ = 0;
  uint64_t stream_bytes_ = 0;
};

// Appends the 5-byte prefix of a message to `out`; the caller appends the `length` body bytes.
void append_message_prefix(std::string& out, bool compressed, uint32_t length);

}  // namespace curfew::wire
