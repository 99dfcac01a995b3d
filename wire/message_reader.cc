#include "wire/message_reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace curfew::wire {

absl::Status MessageReader::fail(absl::Status status) {
  status_ = std::move(status);
  return status_;
}

absl::Status MessageReader::feed(std::string_view chunk, MessageSink& sink) {
  if (!status_.ok()) return status_;
  while (!chunk.empty()) {
    if (in_body_) {
      const size_t n = std::min<size_t>(remaining_, chunk.size());
      const std::string_view piece = chunk.substr(0, n);
      chunk.remove_prefix(n);
      remaining_ -= static_cast<uint32_t>(n);
      payload_bytes_ += n;
      stream_bytes_ += n;
      if (absl::Status s = sink.on_message_data(piece); !s.ok()) return fail(std::move(s));
    } else {
      prefix_[prefix_size_++] = static_cast<unsigned char>(chunk.front());
      chunk.remove_prefix(1);
      ++stream_bytes_;
      // The flag is checked on arrival: a peer that is not speaking gRPC framing is refused
      // without waiting for four more bytes that may never come.
      if (prefix_size_ == 1 && prefix_[0] > 1) {
        return fail(absl::InternalError(absl::StrCat("grpc message: compressed flag byte 0x",
                                                     absl::Hex(prefix_[0], absl::kZeroPad2))));
      }
      if (prefix_size_ < kMessagePrefixBytes) continue;
      header_.compressed = prefix_[0] == 1;
      header_.length = (uint32_t{prefix_[1]} << 24) | (uint32_t{prefix_[2]} << 16) |
                       (uint32_t{prefix_[3]} << 8) | uint32_t{prefix_[4]};
      if (header_.length > max_message_bytes_) {
        return fail(absl::ResourceExhaustedError(
            absl::StrCat("grpc message: length ", header_.length, " exceeds the limit of ",
                         max_message_bytes_, " bytes")));
      }
      prefix_size_ = 0;
      in_body_ = true;
      remaining_ = header_.length;
      if (absl::Status s = sink.on_message_header(header_); !s.ok()) return fail(std::move(s));
    }
    // Also reached right after the header of an empty message, which has no body to wait for.
    if (in_body_ && remaining_ == 0) {
      in_body_ = false;
      ++messages_;
      if (absl::Status s = sink.on_message_end(); !s.ok()) return fail(std::move(s));
    }
  }
  return absl::OkStatus();
}

absl::Status MessageReader::end_of_stream_status() const {
  if (!status_.ok()) return status_;
  if (in_body_) {
    return absl::InternalError(absl::StrCat("grpc message: stream ended after ",
                                            header_.length - remaining_, " of the ", header_.length,
                                            " bytes of a message"));
  }
  if (prefix_size_ != 0) {
    return absl::InternalError(absl::StrCat("grpc message: stream ended after ", prefix_size_,
                                            " of the ", kMessagePrefixBytes,
                                            " bytes of a message prefix"));
  }
  return absl::OkStatus();
}

void append_message_prefix(std::string& out, bool compressed, uint32_t length) {
  const char prefix[kMessagePrefixBytes] = {
      static_cast<char>(compressed ? 1 : 0),    static_cast<char>((length >> 24) & 0xff),
      static_cast<char>((length >> 16) & 0xff), static_cast<char>((length >> 8) & 0xff),
      static_cast<char>(length & 0xff),
  };
  out.append(prefix, kMessagePrefixBytes);
}

}  // namespace curfew::wire
