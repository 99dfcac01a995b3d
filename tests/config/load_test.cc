// load_config_file() / load_config_string(): files, YAML syntax, unknown keys, top-level keys.

#include "config/load.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/config/test_util.h"

namespace curfew::config {
namespace {

using ::curfew::config::testing::kUpstreams;
using ::curfew::config::testing::load_error;
using ::curfew::config::testing::with_routes;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::string_view kOneRoute = "      - {name: r, match: {prefix: /}, upstream: app}\n";

// A fresh directory under the test temp dir, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "curfew_config_test_XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, std::string_view content) const {
    const std::string path = path_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(LoadFile, LoadsAFileAndRecordsItsPath) {
  TempDir dir;
  const std::string path = dir.write("curfew.yaml", with_routes(kOneRoute));
  absl::StatusOr<Config> config = load_config_file(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source_path, path);
  EXPECT_EQ(config->listeners.at(0).routes.at(0).name, "r");
}

TEST(LoadFile, ErrorsNameTheFile) {
  TempDir dir;
  const std::string path =
      dir.write("bad.yaml", with_routes("      - {name: r, match: {prefix: /}, upstream: nope}\n"));
  absl::StatusOr<Config> config = load_config_file(path);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), StartsWith(path + ":5:"));
}

TEST(LoadFile, MissingFileIsAClearError) {
  TempDir dir;
  const std::string path = dir.path() + "/does-not-exist.yaml";
  absl::StatusOr<Config> config = load_config_file(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "cannot read config file \"" + path + "\": No such file or directory");
}

TEST(LoadFile, DirectoryIsAClearError) {
  TempDir dir;
  absl::StatusOr<Config> config = load_config_file(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("it is a directory"));
}

TEST(LoadString, YamlSyntaxErrorHasFileAndLine) {
  EXPECT_EQ(load_error("listeners:\n  - name: in\n     address: x\n"),
            "t.yaml:3:13: YAML syntax error: illegal map value");
  // yaml-cpp notices an unclosed list where the input ends.
  EXPECT_EQ(load_error("listeners: [a, b\n"),
            "t.yaml:2:1: YAML syntax error: end of sequence flow not found");
}

TEST(LoadString, EmptyConfigIsAnError) {
  EXPECT_THAT(load_error(""), HasSubstr("t.yaml:1:1: the config is empty"));
  EXPECT_THAT(load_error("# only a comment\n"), HasSubstr("the config is empty"));
}

TEST(LoadString, TopLevelMustBeAMapping) {
  EXPECT_THAT(load_error("- a\n- b\n"),
              HasSubstr("t.yaml:1:1: expected a mapping (key: value pairs), got a list"));
}

TEST(UnknownKeys, TopLevelKeyIsNamedWithTheAllowedOnes) {
  const std::string yaml = with_routes(kOneRoute) + "workerz: 4\n";
  EXPECT_THAT(
      load_error(yaml),
      HasSubstr(
          "t.yaml:11:1: workerz: unknown key \"workerz\" (did you mean \"workers\"? "
          "allowed: admin, listeners, upstreams, drain_timeout, workers, busy_poll, data_path)"));
}

TEST(UnknownKeys, RouteKeyGetsASpellingHint) {
  EXPECT_THAT(load_error(with_routes("      - name: r\n"
                                     "        match: {prefix: /}\n"
                                     "        upstream: app\n"
                                     "        timout: 1s\n")),
              HasSubstr("t.yaml:8:9: listeners[0].routes[0].timout: unknown key \"timout\" (did "
                        "you mean \"timeout\"? allowed: name, match, upstream, fanout, timeout, "));
}

TEST(UnknownKeys, DeeplyNestedKeyIsReported) {
  EXPECT_THAT(load_error(with_routes("      - name: r\n"
                                     "        match: {prefix: /}\n"
                                     "        upstream: app\n"
                                     "        retry:\n"
                                     "          attempts: 2\n"
                                     "          per_try_timeout: 10ms\n"
                                     "          backoff: {base: 1ms, maximum: 5ms}\n")),
              HasSubstr("t.yaml:11:32: listeners[0].routes[0].retry.backoff.maximum: unknown key "
                        "\"maximum\" (allowed: base, max)"));
}

TEST(UnknownKeys, UnrelatedKeyGetsNoHint) {
  EXPECT_THAT(load_error("listeners: []\ncolour: blue\n"),
              HasSubstr("t.yaml:2:1: colour: unknown key \"colour\" (allowed: "));
}

TEST(DuplicateKeys, AreRejected) {
  EXPECT_THAT(load_error(with_routes("      - name: r\n"
                                     "        match: {prefix: /}\n"
                                     "        upstream: app\n"
                                     "        timeout: 1s\n"
                                     "        timeout: 2s\n")),
              HasSubstr("t.yaml:9:9: listeners[0].routes[0].timeout: duplicate key \"timeout\""));
}

TEST(TopLevel, AtLeastOneListener) {
  EXPECT_THAT(load_error(std::string(kUpstreams)),
              HasSubstr("t.yaml:1:1: listeners: required key missing (at least one listener is "
                        "needed)"));
  EXPECT_THAT(load_error("listeners: []\n"),
              HasSubstr("t.yaml:1:12: listeners: at least one listener is needed"));
}

TEST(TopLevel, DrainTimeoutAndWorkers) {
  absl::StatusOr<Config> config = load_config_string(
      with_routes(kOneRoute) + "drain_timeout: 30s\nworkers: 4\nadmin: {address: '[::1]:9000'}\n",
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->drain_timeout, std::chrono::seconds(30));
  EXPECT_EQ(config->worker_threads, 4);
  EXPECT_EQ(config->admin.address, "[::1]:9000");
}

TEST(TopLevel, DefaultsWhenAbsent) {
  absl::StatusOr<Config> config = load_config_string(with_routes(kOneRoute), "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->drain_timeout, std::chrono::seconds(10));
  EXPECT_EQ(config->worker_threads, 0);
  EXPECT_EQ(config->admin.address, "127.0.0.1:9901");
}

TEST(TopLevel, BadDrainTimeout) {
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "drain_timeout: 10\n"),
              HasSubstr("t.yaml:11:16: drain_timeout: bad duration \"10\" (expected a number "
                        "followed by ms, s or m)"));
}

TEST(TopLevel, WorkersMustBeANonNegativeInteger) {
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "workers: -1\n"),
              HasSubstr("t.yaml:11:10: workers: must be between 0 and 1024, got -1"));
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "workers: many\n"),
              HasSubstr("t.yaml:11:10: workers: expected an integer, got \"many\""));
}

TEST(TopLevel, BusyPoll) {
  absl::StatusOr<Config> config =
      load_config_string(with_routes(kOneRoute) + "busy_poll: 0.05ms\n", "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->busy_poll, std::chrono::microseconds(50));
  absl::StatusOr<Config> absent = load_config_string(with_routes(kOneRoute), "t.yaml");
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_EQ(absent->busy_poll, std::chrono::nanoseconds::zero());  // never spins by default
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "busy_poll: 2ms\n"),
              HasSubstr("t.yaml:11:12: busy_poll: must be at most 1ms"));
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "busy_poll: 50\n"),
              HasSubstr("t.yaml:11:12: busy_poll: bad duration \"50\""));
}

// data_path is deprecated: "nghttp2" (the one path left) still loads, anything else is refused
// naming the field. A metadata limit nghttp2 cannot keep is refused naming the field.
TEST(TopLevel, DataPathIsDeprecated) {
  EXPECT_TRUE(load_config_string(with_routes(kOneRoute) + "data_path: nghttp2\n", "t.yaml").ok());
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "data_path: grpc\n"),
              HasSubstr("t.yaml:11:12: data_path: \"grpc\" is not a data path any more: curfew "
                        "has one (its own HTTP/2 on nghttp2); remove data_path"));
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "data_path: quic\n"),
              HasSubstr("t.yaml:11:12: data_path: \"quic\" is not a data path"));
  // One header field over 64 KiB ends the whole connection in nghttp2.
  EXPECT_THAT(load_error("listeners:\n  - name: in\n    address: 127.0.0.1:15001\n    limits: "
                         "{max_metadata_bytes: 100000}\n    routes:\n" +
                         std::string(kOneRoute) + std::string(kUpstreams)),
              HasSubstr("t.yaml:4:34: listeners[0].limits.max_metadata_bytes: must be at most "
                        "65536 (nghttp2 ends the whole connection on a larger header field)"));
  // vsock endpoints load.
  EXPECT_TRUE(load_config_string("listeners:\n  - {name: in, address: 127.0.0.1:15001, routes: "
                                 "[{name: r, match: {prefix: /}, upstream: v}]}\nupstreams:\n"
                                 "  - {name: v, endpoints: ['vsock:3:5000']}\n",
                                 "t.yaml")
                  .ok());
}

TEST(TopLevel, AdminAddressMustBeHostPort) {
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "admin:\n  address: localhost\n"),
              HasSubstr("t.yaml:12:12: admin.address: bad address \"localhost\" (expected "
                        "host:port)"));
  EXPECT_THAT(load_error(with_routes(kOneRoute) + "admin:\n  adress: 127.0.0.1:1\n"),
              HasSubstr("t.yaml:12:3: admin.adress: unknown key \"adress\" (did you mean "
                        "\"address\"? allowed: address)"));
}

TEST(TopLevel, SectionsMustHaveTheRightShape) {
  EXPECT_THAT(load_error("listeners: {name: in}\n"),
              HasSubstr("t.yaml:1:12: listeners: expected a list, got a mapping"));
  EXPECT_THAT(load_error("listeners:\n  - inbound\n"),
              HasSubstr("t.yaml:2:5: listeners[0]: expected a mapping (key: value pairs), got "
                        "\"inbound\""));
}

}  // namespace
}  // namespace curfew::config
