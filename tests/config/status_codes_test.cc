#include "config/status_codes.h"

#include "gtest/gtest.h"

namespace curfew::config {
namespace {

TEST(StatusCodes, NamesMapToGrpcNumbers) {
  EXPECT_EQ(status_code_from_name("OK"), 0);
  EXPECT_EQ(status_code_from_name("CANCELLED"), 1);
  EXPECT_EQ(status_code_from_name("DEADLINE_EXCEEDED"), 4);
  EXPECT_EQ(status_code_from_name("RESOURCE_EXHAUSTED"), 8);
  EXPECT_EQ(status_code_from_name("UNAVAILABLE"), 14);
  EXPECT_EQ(status_code_from_name("UNAUTHENTICATED"), 16);
  EXPECT_EQ(status_code_from_name("unavailable"), std::nullopt);  // Names are exact.
  EXPECT_EQ(status_code_from_name("NOPE"), std::nullopt);
}

TEST(StatusCodes, NameRoundTrips) {
  for (int code = 0; code <= 16; ++code) {
    EXPECT_EQ(status_code_from_name(status_code_name(code)), code);
  }
  EXPECT_EQ(status_code_name(17), "UNKNOWN_CODE");
  EXPECT_EQ(status_code_name(-1), "UNKNOWN_CODE");
}

}  // namespace
}  // namespace curfew::config
