#include "wire/content_type.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::wire {
namespace {

TEST(ContentTypeTest, IsGrpcContentType) {
  struct Case {
    const char* name;
    std::string value;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"exact", "application/grpc", true},
      {"proto suffix", "application/grpc+proto", true},
      {"json suffix", "application/grpc+json", true},
      {"custom suffix", "application/grpc+thrift", true},
      {"empty suffix", "application/grpc+", true},
      {"parameter", "application/grpc;charset=utf-8", true},
      {"parameter after space", "application/grpc ; charset=utf-8", true},
      {"parameter after tab", "application/grpc\t;a=b", true},
      {"suffix and parameter", "application/grpc+proto;a=b", true},
      {"uppercase", "APPLICATION/GRPC", true},
      {"mixed case with suffix", "Application/gRPC+proto", true},
      // Not gRPC.
      {"empty", "", false},
      {"grpc-web", "application/grpc-web", false},
      {"grpc-web+proto", "application/grpc-web+proto", false},
      {"grpc-web-text", "application/grpc-web-text", false},
      {"longer subtype", "application/grpcfoo", false},
      {"prefix only", "application/grp", false},
      {"other type", "application/json", false},
      {"protobuf", "application/protobuf", false},
      {"text", "text/plain", false},
      {"trailing space", "application/grpc ", false},
      {"space then junk", "application/grpc x", false},
      {"leading space", " application/grpc", false},
      {"slash suffix", "application/grpc/proto", false},
      {"no slash", "applicationgrpc", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(is_grpc_content_type(c.value), c.expected) << '"' << c.value << '"';
  }
}

}  // namespace
}  // namespace curfew::wire
