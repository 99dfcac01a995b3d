#include "wire/h2_error.h"

#include <cstdint>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::wire {
namespace {

TEST(H2ErrorTest, CodesAndNamesAreRfc9113s) {
  struct Case {
    H2Error error;
    uint32_t code;
    std::string_view name;
  };
  const std::vector<Case> cases = {
      {H2Error::kNoError, 0x0, "NO_ERROR"},
      {H2Error::kProtocolError, 0x1, "PROTOCOL_ERROR"},
      {H2Error::kInternalError, 0x2, "INTERNAL_ERROR"},
      {H2Error::kFlowControlError, 0x3, "FLOW_CONTROL_ERROR"},
      {H2Error::kSettingsTimeout, 0x4, "SETTINGS_TIMEOUT"},
      {H2Error::kStreamClosed, 0x5, "STREAM_CLOSED"},
      {H2Error::kFrameSizeError, 0x6, "FRAME_SIZE_ERROR"},
      {H2Error::kRefusedStream, 0x7, "REFUSED_STREAM"},
      {H2Error::kCancel, 0x8, "CANCEL"},
      {H2Error::kCompressionError, 0x9, "COMPRESSION_ERROR"},
      {H2Error::kConnectError, 0xa, "CONNECT_ERROR"},
      {H2Error::kEnhanceYourCalm, 0xb, "ENHANCE_YOUR_CALM"},
      {H2Error::kInadequateSecurity, 0xc, "INADEQUATE_SECURITY"},
      {H2Error::kHttp11Required, 0xd, "HTTP_1_1_REQUIRED"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(h2_code(c.error), c.code);
    EXPECT_EQ(h2_error_name(c.code), c.name);
  }
}

TEST(H2ErrorTest, UnknownCodes) {
  for (const uint32_t code : {uint32_t{0xe}, uint32_t{0x100}, uint32_t{0xffffffff}}) {
    EXPECT_EQ(h2_error_name(code), "UNKNOWN") << code;
  }
}

TEST(H2ErrorTest, UsableAtCompileTime) {
  static_assert(h2_error_name(h2_code(H2Error::kCancel)) == "CANCEL");
}

}  // namespace
}  // namespace curfew::wire
