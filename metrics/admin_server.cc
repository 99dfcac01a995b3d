#include "metrics/admin_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "absl/status/status.h"

namespace curfew::metrics {

bool split_admin_address(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port < 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return false;  // an IPv6 host needs its brackets
  }
  if (host == "*") host = "0.0.0.0";
  return !host.empty();
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::start(Options options) {
  std::string host;
  int port = 0;
  if (!split_admin_address(options.address, host, port)) {
    return absl::InvalidArgumentError("admin: bad address \"" + options.address +
                                      "\" (expected host:port)");
  }
  auto self = std::unique_ptr<AdminServer>(new AdminServer());
  self->options_ = std::move(options);
  self->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *self->server_;
  const int threads = std::max(1, self->options_.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_keep_alive_timeout(5);
  // cpp-httplib sets SO_REUSEPORT by default, which lets a second process bind the same port
  // and silently share the scrapes. SO_REUSEADDR only: a restart can rebind at once, but an
  // address in use is an error.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  AdminServer* raw = self.get();
  server.Get("/metrics", [raw](const httplib::Request&, httplib::Response& res) {
    res.set_content(raw->scrape(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  server.Get("/readyz", [raw](const httplib::Request&, httplib::Response& res) {
    const bool ready = raw->options_.ready && raw->options_.ready();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain; charset=utf-8");
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content("internal error\n", "text/plain; charset=utf-8");
      });

  if (port == 0) {
    self->port_ = server.bind_to_any_port(host);
    if (self->port_ <= 0) self->port_ = 0;
  } else if (server.bind_to_port(host, port)) {
    self->port_ = port;
  }
  if (self->port_ == 0) {
    return absl::UnavailableError("admin: cannot listen on " + self->options_.address +
                                  " (address in use or not local?)");
  }
  self->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  // stop() only takes effect once the server runs: wait for it (bounded; it is immediate).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server.is_running() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) {
    return absl::InternalError("admin: the HTTP server on " + self->options_.address +
                               " did not start");
  }
  return self;
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::stop() {
  if (server_ && thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

std::string AdminServer::scrape() const {
  std::vector<prometheus::MetricFamily> families;
  for (const prometheus::Collectable* c : options_.collectables) {
    auto collected = c->Collect();
    families.insert(families.end(), std::make_move_iterator(collected.begin()),
                    std::make_move_iterator(collected.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace curfew::metrics
