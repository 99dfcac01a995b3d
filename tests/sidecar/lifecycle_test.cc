// The real curfew binary: command line, signals, reloads, drain, exit codes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>

#include <gtest/gtest.h>

#include "curfew/demo/demo.grpc.pb.h"
#include "curfew_process.h"
#include "demo_backend.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

std::string config_text(int listen_port, int backend_port, const std::string& slow_timeout,
                        const std::string& drain = "5s") {
  return "drain_timeout: " + drain + R"(
admin: {address: 127.0.0.1:0}
listeners:
  - name: inbound
    address: 127.0.0.1:)" +
         std::to_string(listen_port) + R"(
    routes:
      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: )" +
         slow_timeout + R"(}
      - {name: rest, match: {prefix: /}, upstream: demo, timeout: 5s}
upstreams:
  - {name: demo, endpoints: [127.0.0.1:)" +
         std::to_string(backend_port) + "]}\n";
}

// Without a caller deadline the route's timeout applies (every route here has one).
grpc::Status call_slow(demo::Demo::Stub& stub, int delay_ms,
                       std::optional<std::chrono::milliseconds> caller_deadline = std::nullopt) {
  grpc::ClientContext ctx;
  if (caller_deadline) ctx.set_deadline(std::chrono::system_clock::now() + *caller_deadline);
  demo::SlowRequest request;
  request.set_delay_ms(delay_ms);
  demo::EchoReply reply;
  return stub.Slow(&ctx, request, &reply);
}

class Lifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    port_ = free_port();
    config_ = dir_.path() / "curfew.yaml";
  }
  std::unique_ptr<CurfewProcess> start(const std::string& slow_timeout,
                                       const std::string& drain = "5s") {
    write_file(config_, config_text(port_, backend_->port(), slow_timeout, drain));
    auto p = std::make_unique<CurfewProcess>(std::vector<std::string>{"--config", config_.string()},
                                             dir_.path() / "curfew.log");
    EXPECT_TRUE(p->wait_listening(port_)) << p->output();
    stub_ = demo::Demo::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                    grpc::InsecureChannelCredentials()));
    return p;
  }

  bool eventually_started() {
    for (int i = 0; i < 500 && backend_->calls_started() == 0; ++i)
      std::this_thread::sleep_for(10ms);
    return backend_->calls_started() > 0;
  }

  TempDir dir_;
  std::unique_ptr<DemoBackend> backend_;
  int port_ = 0;
  std::filesystem::path config_;
  std::unique_ptr<demo::Demo::Stub> stub_;
};

TEST_F(Lifecycle, SigtermDrainsInFlightCallsRefusesNewOnesAndExitsZero) {
  auto curfew = start("5s");
  auto in_flight = std::async(std::launch::async, [&] { return call_slow(*stub_, 700, 30s); });
  ASSERT_TRUE(eventually_started());
  curfew->signal(SIGTERM);
  EXPECT_TRUE(curfew->wait_output("draining")) << curfew->output();
  // The call in flight completes normally within the drain timeout.
  EXPECT_TRUE(in_flight.get().ok());
  EXPECT_EQ(curfew->wait_exit(), 0) << curfew->output();
  EXPECT_EQ(backend_->slow_calls_completed(), 1);
  // And nothing listens any more.
  EXPECT_FALSE(call_slow(*stub_, 1, 2s).ok());
}

TEST_F(Lifecycle, SigtermCancelsCallsStillRunningAtTheDrainDeadline) {
  auto curfew = start("30s", "300ms");
  auto in_flight = std::async(std::launch::async, [&] { return call_slow(*stub_, 20'000, 30s); });
  ASSERT_TRUE(eventually_started());
  const auto sent = std::chrono::steady_clock::now();
  curfew->signal(SIGTERM);
  EXPECT_EQ(curfew->wait_exit(), 0) << curfew->output();
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 10s);
  EXPECT_FALSE(in_flight.get().ok());
  // The upstream call was cancelled with the caller's.
  for (int i = 0; i < 300 && backend_->slow_calls_cancelled() == 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(backend_->slow_calls_cancelled(), 1);
}

TEST_F(Lifecycle, SighupReloadsTheRouteTimeout) {
  auto curfew = start("100ms");
  EXPECT_EQ(call_slow(*stub_, 400).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  write_file(config_, config_text(port_, backend_->port(), "3s"));
  curfew->signal(SIGHUP);
  ASSERT_TRUE(curfew->wait_output("configuration reloaded (SIGHUP)")) << curfew->output();
  EXPECT_TRUE(call_slow(*stub_, 400).ok());
}

TEST_F(Lifecycle, ReloadThatChangesWorkersSaysTheyApplyAtRestart) {
  auto curfew = start("100ms");
  write_file(config_, config_text(port_, backend_->port(), "3s") + "workers: 3\n");
  curfew->signal(SIGHUP);
  ASSERT_TRUE(curfew->wait_output("workers changed")) << curfew->output();
  EXPECT_NE(curfew->output().find("until curfew restarts"), std::string::npos) << curfew->output();
  EXPECT_TRUE(call_slow(*stub_, 400).ok());  // the rest of the new configuration applies
}

TEST_F(Lifecycle, BadReloadKeepsTheOldConfigServingAndSaysWhy) {
  auto curfew = start("100ms");
  write_file(config_, "listeners:\n  - name: inbound\n    adress: oops\n");
  curfew->signal(SIGHUP);
  ASSERT_TRUE(curfew->wait_output("refused")) << curfew->output();
  EXPECT_NE(curfew->output().find("curfew.yaml:3"), std::string::npos) << curfew->output();
  // Still serving, with the old 100 ms route timeout.
  EXPECT_EQ(call_slow(*stub_, 400).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(call_slow(*stub_, 1).ok());
}

TEST_F(Lifecycle, ConfigMapStyleSymlinkSwapIsPickedUp) {
  // Kubernetes mounts a ConfigMap as FILE -> ..data/FILE with ..data -> ..<timestamp>/; an
  // update swaps the ..data symlink atomically.
  const auto v1 = dir_.path() / "..v1";
  const auto v2 = dir_.path() / "..v2";
  std::filesystem::create_directory(v1);
  std::filesystem::create_directory(v2);
  write_file(v1 / "curfew.yaml", config_text(port_, backend_->port(), "100ms"));
  write_file(v2 / "curfew.yaml", config_text(port_, backend_->port(), "3s"));
  std::filesystem::create_directory_symlink("..v1", dir_.path() / "..data");
  const auto mounted = dir_.path() / "mounted.yaml";
  std::filesystem::create_symlink("..data/curfew.yaml", mounted);
  CurfewProcess curfew({"--config", mounted.string()}, dir_.path() / "curfew.log");
  ASSERT_TRUE(curfew.wait_listening(port_)) << curfew.output();
  stub_ = demo::Demo::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                  grpc::InsecureChannelCredentials()));
  EXPECT_EQ(call_slow(*stub_, 400).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  std::filesystem::create_directory_symlink("..v2", dir_.path() / "..data_tmp");
  std::filesystem::rename(dir_.path() / "..data_tmp", dir_.path() / "..data");
  ASSERT_TRUE(curfew.wait_output("configuration reloaded (file changed)")) << curfew.output();
  EXPECT_TRUE(call_slow(*stub_, 400).ok());
}

TEST(CommandLine, CheckConfigAcceptsAGoodFileAndPrintsItsRoutes) {
  TempDir dir;
  write_file(dir.path() / "good.yaml", config_text(15001, 8080, "200ms"));
  CurfewProcess p({"--check-config", (dir.path() / "good.yaml").string()}, dir.path() / "out");
  EXPECT_EQ(p.wait_exit(), 0) << p.output();
  EXPECT_NE(p.output().find("slow"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("200ms"), std::string::npos) << p.output();
}

TEST(CommandLine, CheckConfigRejectsABadFileNamingFileLineAndKey) {
  TempDir dir;
  write_file(dir.path() / "bad.yaml",
             "listeners:\n  - name: inbound\n    address: 127.0.0.1:1\n    default_timeout: 10\n"
             "    routes: [{name: r, match: {prefix: /}, upstream: u}]\n"
             "upstreams: [{name: u, endpoints: [127.0.0.1:2]}]\n");
  CurfewProcess p({"--check-config", (dir.path() / "bad.yaml").string()}, dir.path() / "out");
  EXPECT_EQ(p.wait_exit(), 1);
  EXPECT_NE(p.output().find("bad.yaml:4"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("listeners[0].default_timeout"), std::string::npos) << p.output();
}

TEST(CommandLine, BadConfigAtStartExitsNonZero) {
  TempDir dir;
  write_file(dir.path() / "bad.yaml", "listeners: []\n");
  CurfewProcess p({"--config", (dir.path() / "bad.yaml").string()}, dir.path() / "out");
  const auto code = p.wait_exit();
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_NE(p.output().find("bad.yaml"), std::string::npos) << p.output();
}

// A listener that cannot bind fails the start at once, naming it (on the nghttp2 path the loops
// already run when a listener binds: its failure must not leave the start waiting on them).
TEST(CommandLine, AListenerAddressInUseFailsTheStartNamingIt) {
  TempDir dir;
  const int taken_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken_fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(taken_fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(taken_fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int taken = ntohs(a.sin_port);
  write_file(dir.path() / "taken.yaml", config_text(taken, 1, "200ms"));
  CurfewProcess p({"--config", (dir.path() / "taken.yaml").string()}, dir.path() / "out");
  const auto code = p.wait_exit();
  ::close(taken_fd);
  ASSERT_TRUE(code.has_value()) << "curfew did not exit: " << p.output();
  EXPECT_NE(*code, 0);
  EXPECT_NE(
      p.output().find("listener 'inbound': cannot listen on 127.0.0.1:" + std::to_string(taken)),
      std::string::npos)
      << p.output();
}

TEST(CommandLine, HelpVersionAndUnknownArguments) {
  TempDir dir;
  CurfewProcess help({"--help"}, dir.path() / "help");
  EXPECT_EQ(help.wait_exit(), 0);
  EXPECT_NE(help.output().find("--check-config"), std::string::npos);
  CurfewProcess version({"--version"}, dir.path() / "version");
  EXPECT_EQ(version.wait_exit(), 0);
  EXPECT_NE(version.output().find("curfew "), std::string::npos);
  // Release builds link jemalloc (CMakeLists.txt: CURFEW_JEMALLOC); sanitizer builds do not.
  EXPECT_NE(version.output().find("allocator: " CURFEW_EXPECTED_ALLOCATOR), std::string::npos)
      << version.output();
  CurfewProcess bad({"--frobnicate"}, dir.path() / "bad");
  EXPECT_EQ(bad.wait_exit(), 2);
  EXPECT_NE(bad.output().find("unknown argument"), std::string::npos);
}

}  // namespace
}  // namespace curfew::testing
