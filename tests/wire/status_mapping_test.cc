#include "wire/status_mapping.h"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "wire/h2_error.h"

namespace curfew::wire {
namespace {

using absl::StatusCode;

TEST(StatusMappingTest, HttpStatus) {
  struct Case {
    const char* name;
    int http_status;
    StatusCode expected;
  };
  const std::vector<Case> cases = {
      {"400 Bad Request", 400, StatusCode::kInternal},
      {"401 Unauthorized", 401, StatusCode::kUnauthenticated},
      {"403 Forbidden", 403, StatusCode::kPermissionDenied},
      {"404 Not Found", 404, StatusCode::kUnimplemented},
      {"429 Too Many Requests", 429, StatusCode::kUnavailable},
      {"431 Request Header Fields Too Large", 431, StatusCode::kInternal},
      {"502 Bad Gateway", 502, StatusCode::kUnavailable},
      {"503 Service Unavailable", 503, StatusCode::kUnavailable},
      {"504 Gateway Timeout", 504, StatusCode::kUnavailable},
      // Everything else is UNKNOWN, 200 included.
      {"200 without grpc-status", 200, StatusCode::kUnknown},
      {"204", 204, StatusCode::kUnknown},
      {"301", 301, StatusCode::kUnknown},
      {"402", 402, StatusCode::kUnknown},
      {"405", 405, StatusCode::kUnknown},
      {"408", 408, StatusCode::kUnknown},
      {"415", 415, StatusCode::kUnknown},
      {"500", 500, StatusCode::kUnknown},
      {"501", 501, StatusCode::kUnknown},
      {"505", 505, StatusCode::kUnknown},
      {"0", 0, StatusCode::kUnknown},
      {"negative", -1, StatusCode::kUnknown},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(grpc_code_from_http_status(c.http_status), c.expected);
  }
}

TEST(StatusMappingTest, HttpStatusOfAStatusValue) {
  EXPECT_EQ(http_status_of("200"), 200);
  EXPECT_EQ(http_status_of("503"), 503);
  EXPECT_EQ(http_status_of(std::nullopt), 0);
  EXPECT_EQ(http_status_of(""), 0);
  EXPECT_EQ(http_status_of("20"), 0);
  EXPECT_EQ(http_status_of("2000"), 0);
  EXPECT_EQ(http_status_of("2x0"), 0);
  EXPECT_EQ(http_status_of("-20"), 0);
  EXPECT_EQ(http_status_of("099"), 0);
  EXPECT_EQ(http_status_of(" 200"), 0);
}

TEST(StatusMappingTest, H2Error) {
  struct Case {
    const char* name;
    uint32_t h2_error;
    StatusCode expected;
  };
  const std::vector<Case> cases = {
      {"NO_ERROR", h2_code(H2Error::kNoError), StatusCode::kInternal},
      {"PROTOCOL_ERROR", h2_code(H2Error::kProtocolError), StatusCode::kInternal},
      {"INTERNAL_ERROR", h2_code(H2Error::kInternalError), StatusCode::kInternal},
      {"FLOW_CONTROL_ERROR", h2_code(H2Error::kFlowControlError), StatusCode::kInternal},
      {"SETTINGS_TIMEOUT", h2_code(H2Error::kSettingsTimeout), StatusCode::kInternal},
      {"STREAM_CLOSED", h2_code(H2Error::kStreamClosed), StatusCode::kInternal},
      {"FRAME_SIZE_ERROR", h2_code(H2Error::kFrameSizeError), StatusCode::kInternal},
      {"REFUSED_STREAM", h2_code(H2Error::kRefusedStream), StatusCode::kUnavailable},
      {"CANCEL", h2_code(H2Error::kCancel), StatusCode::kCancelled},
      {"COMPRESSION_ERROR", h2_code(H2Error::kCompressionError), StatusCode::kInternal},
      {"CONNECT_ERROR", h2_code(H2Error::kConnectError), StatusCode::kInternal},
      {"ENHANCE_YOUR_CALM", h2_code(H2Error::kEnhanceYourCalm), StatusCode::kResourceExhausted},
      {"INADEQUATE_SECURITY", h2_code(H2Error::kInadequateSecurity), StatusCode::kPermissionDenied},
      {"HTTP_1_1_REQUIRED", h2_code(H2Error::kHttp11Required), StatusCode::kInternal},
      {"first undefined code", 0xe, StatusCode::kInternal},
      {"largest code", 0xffffffff, StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(grpc_code_from_h2_error(c.h2_error), c.expected);
  }
}

TEST(StatusMappingTest, RstStreamCode) {
  struct Case {
    StatusCode code;
    H2Error expected;
  };
  const std::vector<Case> cases = {
      {StatusCode::kOk, H2Error::kNoError},
      {StatusCode::kCancelled, H2Error::kCancel},
      {StatusCode::kUnknown, H2Error::kInternalError},
      {StatusCode::kInvalidArgument, H2Error::kInternalError},
      {StatusCode::kDeadlineExceeded, H2Error::kCancel},
      {StatusCode::kNotFound, H2Error::kInternalError},
      {StatusCode::kAlreadyExists, H2Error::kInternalError},
      {StatusCode::kPermissionDenied, H2Error::kInternalError},
      {StatusCode::kResourceExhausted, H2Error::kInternalError},
      {StatusCode::kFailedPrecondition, H2Error::kInternalError},
      {StatusCode::kAborted, H2Error::kInternalError},
      {StatusCode::kOutOfRange, H2Error::kInternalError},
      {StatusCode::kUnimplemented, H2Error::kInternalError},
      {StatusCode::kInternal, H2Error::kInternalError},
      {StatusCode::kUnavailable, H2Error::kInternalError},
      {StatusCode::kDataLoss, H2Error::kInternalError},
      {StatusCode::kUnauthenticated, H2Error::kInternalError},
  };
  ASSERT_EQ(cases.size(), 17u) << "every gRPC code";
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StatusCodeToString(c.code));
    EXPECT_EQ(rst_stream_code_for(c.code), h2_code(c.expected));
  }
}

TEST(StatusMappingTest, CancellationRoundTrips) {
  // What we send when cancelling reads back as CANCELLED on the other side.
  EXPECT_EQ(grpc_code_from_h2_error(rst_stream_code_for(StatusCode::kCancelled)),
            StatusCode::kCancelled);
  EXPECT_EQ(grpc_code_from_h2_error(rst_stream_code_for(StatusCode::kDeadlineExceeded)),
            StatusCode::kCancelled);
}

TEST(StatusMappingTest, ParseGrpcStatusValid) {
  for (int code = 0; code <= 16; ++code) {
    SCOPED_TRACE(code);
    const absl::StatusOr<StatusCode> parsed = parse_grpc_status(std::to_string(code));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, static_cast<StatusCode>(code));
  }
  // Spot checks that the numbering is gRPC's.
  EXPECT_EQ(*parse_grpc_status("0"), StatusCode::kOk);
  EXPECT_EQ(*parse_grpc_status("4"), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(*parse_grpc_status("14"), StatusCode::kUnavailable);
  EXPECT_EQ(*parse_grpc_status("16"), StatusCode::kUnauthenticated);
}

TEST(StatusMappingTest, ParseGrpcStatusInvalid) {
  struct Case {
    const char* name;
    std::string value;
    std::string expected_message;
  };
  const std::vector<Case> cases = {
      {"empty", "", "grpc-status \"\" is not a gRPC status code (0 to 16)"},
      {"17", "17", "grpc-status \"17\" is not a gRPC status code (0 to 16)"},
      {"20", "20", "grpc-status \"20\" is not a gRPC status code (0 to 16)"},
      {"three digits", "100", "grpc-status \"100\" is not a gRPC status code (0 to 16)"},
      {"past 32 bits", "4294967296",
       "grpc-status \"4294967296\" is not a gRPC status code (0 to 16)"},
      {"leading zero", "01", "grpc-status \"01\" is not a gRPC status code (0 to 16)"},
      {"two zeros", "00", "grpc-status \"00\" is not a gRPC status code (0 to 16)"},
      {"minus", "-1", "grpc-status \"-1\" is not a gRPC status code (0 to 16)"},
      {"plus", "+1", "grpc-status \"+1\" is not a gRPC status code (0 to 16)"},
      {"leading space", " 1", "grpc-status \" 1\" is not a gRPC status code (0 to 16)"},
      {"trailing space", "1 ", "grpc-status \"1 \" is not a gRPC status code (0 to 16)"},
      {"letters", "OK", "grpc-status \"OK\" is not a gRPC status code (0 to 16)"},
      {"digit and letter", "1a", "grpc-status \"1a\" is not a gRPC status code (0 to 16)"},
      {"control bytes escaped", "\n\x01",
       "grpc-status \"\\n\\x01\" is not a gRPC status code (0 to 16)"},
      {"long value cut", std::string(40, '9'),
       "grpc-status \"" + std::string(32, '9') + "...\" is not a gRPC status code (0 to 16)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(parse_grpc_status(c.value).status(), absl::UnknownError(c.expected_message));
  }
}

}  // namespace
}  // namespace curfew::wire
