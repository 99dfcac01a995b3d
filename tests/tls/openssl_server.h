// OpensslServer: `openssl s_server -www` on 127.0.0.1 (a port it picks) with TestPki's server
// certificate, a TLS peer independent of gRPC whose ALPN and SNI behaviour the test chooses.
// Killed when destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "test_pki.h"

namespace curfew_test {

class OpensslServer {
 public:
  // Starts it with `extra` arguments (e.g. {"-alpn", "http/1.1"}); port() is 0 when it did not
  // come up within 10 s (log() says why).
  OpensslServer(const TestPki& pki, const std::vector<std::string>& extra) {
    static std::atomic<int> counter{0};
    log_path_ = pki.path("s_server-" + std::to_string(counter++) + ".log");
    std::vector<std::string> args = {pki.openssl(), "s_server",
                                     "-accept",     "127.0.0.1:0",
                                     "-cert",       pki.path("server.pem"),
                                     "-key",        pki.path("server.key"),
                                     "-www"};
    args.insert(args.end(), extra.begin(), extra.end());
    child_ = std::make_unique<ChildProcess>(args, log_path_);
    for (int i = 0; i < 1000 && port_ == 0; ++i) {  // bounded: 10 s
      const std::string text = log();
      if (const size_t at = text.find("ACCEPT 127.0.0.1:"); at != std::string::npos) {
        port_ = std::atoi(text.c_str() + at + 17);
        break;
      }
      if (child_->wait_exit(std::chrono::milliseconds(0))) break;  // it gave up
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  int port() const { return port_; }
  std::string log() const {
    std::ifstream in(log_path_);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

 private:
  std::string log_path_;
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
};

}  // namespace curfew_test
