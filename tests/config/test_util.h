// Helpers shared by the config tests.

#ifndef CURFEW_TESTS_CONFIG_TEST_UTIL_H_
#define CURFEW_TESTS_CONFIG_TEST_UTIL_H_

#include <string>
#include <string_view>

namespace curfew::config::testing {

// kUpstreams
//
// An `upstreams:` section defining "app", "b", "c" and "d", for configs built by the tests.
inline constexpr std::string_view kUpstreams =
    "upstreams:\n"
    "  - {name: app, endpoints: [127.0.0.1:8080]}\n"
    "  - {name: b, endpoints: [127.0.0.1:8081]}\n"
    "  - {name: c, endpoints: [127.0.0.1:8082]}\n"
    "  - {name: d, endpoints: [127.0.0.1:8083]}\n";

// with_routes()
//
// Returns a config whose only listener, "in" on 127.0.0.1:15001, has the given route entries,
// followed by kUpstreams. Entries are indented six spaces ("      - name: x") and the first one
// is on line 5, so a test can tell the exact position of any error in them.
std::string with_routes(std::string_view routes);

// load_error()
//
// Loads `yaml` under the name "t.yaml" and returns the error message. Records a test failure
// (and returns "") if it loads, or fails with anything but InvalidArgumentError.
std::string load_error(std::string_view yaml);

}  // namespace curfew::config::testing

#endif  // CURFEW_TESTS_CONFIG_TEST_UTIL_H_
