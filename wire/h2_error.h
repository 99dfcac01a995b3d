// HTTP/2 error codes (RFC 9113 §7), as carried by RST_STREAM and GOAWAY frames.
//
// Defined here rather than taken from nghttp2 so that wire/ stays free of any HTTP/2 library:
// the values are fixed by the RFC and are what nghttp2's NGHTTP2_* error codes hold as well.
#pragma once

#include <cstdint>
#include <string_view>

namespace curfew::wire {

enum class H2Error : uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kFlowControlError = 0x3,
  kSettingsTimeout = 0x4,
  kStreamClosed = 0x5,
  kFrameSizeError = 0x6,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kCompressionError = 0x9,
  kConnectError = 0xa,
  kEnhanceYourCalm = 0xb,
  kInadequateSecurity = 0xc,
  kHttp11Required = 0xd,
};

// The code as it goes into a frame (or an nghttp2 call).
constexpr uint32_t h2_code(H2Error error) noexcept { return static_cast<uint32_t>(error); }

// The RFC's name of `code` ("REFUSED_STREAM"), for logs and status messages; "UNKNOWN" for a
// code the RFC does not define (a peer may send any 32-bit value; RFC 9113 §7 says to treat
// it as INTERNAL_ERROR, but the log should still say it was something else).
constexpr std::string_view h2_error_name(uint32_t code) noexcept {
  switch (static_cast<H2Error>(code)) {
    case H2Error::kNoError:
      return "NO_ERROR";
    case H2Error::kProtocolError:
      return "PROTOCOL_ERROR";
    case H2Error::kInternalError:
      return "INTERNAL_ERROR";
    case H2Error::kFlowControlError:
      return "FLOW_CONTROL_ERROR";
    case H2Error::kSettingsTimeout:
      return "SETTINGS_TIMEOUT";
    case H2Error::kStreamClosed:
      return "STREAM_CLOSED";
    case H2Error::kFrameSizeError:
      return "FRAME_SIZE_ERROR";
    case H2Error::kRefusedStream:
      return "REFUSED_STREAM";
    case H2Error::kCancel:
      return "CANCEL";
    case H2Error::kCompressionError:
      return "COMPRESSION_ERROR";
    case H2Error::kConnectError:
      return "CONNECT_ERROR";
    case H2Error::kEnhanceYourCalm:
      return "ENHANCE_YOUR_CALM";
    case H2Error::kInadequateSecurity:
      return "INADEQUATE_SECURITY";
    case H2Error::kHttp11Required:
      return "HTTP_1_1_REQUIRED";
  }
  return "UNKNOWN";
}

}  // namespace curfew::wire
