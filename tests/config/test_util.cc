#include "tests/config/test_util.h"

#include "absl/status/status.h"
#include "config/load.h"
#include "gtest/gtest.h"

namespace curfew::config::testing {

std::string with_routes(std::string_view routes) {
  return std::string(
             "listeners:\n"
             "  - name: in\n"
             "    address: 127.0.0.1:15001\n"
             "    routes:\n") +
         std::string(routes) + std::string(kUpstreams);
}

std::string load_error(std::string_view yaml) {
  absl::StatusOr<Config> config = load_config_string(yaml, "t.yaml");
  if (config.ok()) {
    ADD_FAILURE() << "expected an error, but this loaded:\n" << yaml;
    return "";
  }
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  return std::string(config.status().message());
}

}  // namespace curfew::config::testing
