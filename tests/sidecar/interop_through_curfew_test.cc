// gRPC's interop cases, run against a real interop server through curfew: they must all pass
// as they do directly (tests/interop/interop_direct_test.cc).
#include <gtest/gtest.h>

#include "interop_client.h"
#include "interop_server.h"
#include "sidecar_fixture.h"

namespace curfew::testing {
namespace {

class InteropThroughCurfew : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    server_ = InteropServer::Start("127.0.0.1:0").release();
    ASSERT_NE(server_, nullptr);
    sidecar_ = start_sidecar(R"(
listeners:
  - name: inbound
    address: 127.0.0.1:0
    default_timeout: 20s
    routes:
      - {name: all, match: {prefix: /}, upstream: interop}
upstreams:
  - {name: interop, endpoints: [127.0.0.1:)" +
                             std::to_string(server_->port()) + "]}\n")
                   .release();
    ASSERT_NE(sidecar_, nullptr);
  }
  static void TearDownTestSuite() {
    delete sidecar_;
    delete server_;
  }
  static InteropServer* server_;
  static sidecar::Sidecar* sidecar_;
};
InteropServer* InteropThroughCurfew::server_ = nullptr;
sidecar::Sidecar* InteropThroughCurfew::sidecar_ = nullptr;

TEST_P(InteropThroughCurfew, PassesAsItDoesDirectly) {
  auto channel = CreateInteropChannel("127.0.0.1:" + std::to_string(sidecar_->port("inbound")));
  InteropResult result = RunInteropCase(GetParam(), channel);
  EXPECT_TRUE(result.passed) << result.name << ": " << result.detail;
}

INSTANTIATE_TEST_SUITE_P(Cases, InteropThroughCurfew, ::testing::ValuesIn(InteropCaseNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace curfew::testing
