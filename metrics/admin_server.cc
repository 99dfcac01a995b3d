#include "metrics/admin_server.h"

#include <charconv>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "absl/status/status.h"
#include "metrics/internal/http1_server.h"

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
  if (host == "*") host = "::";
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
  AdminServer* raw = self.get();  // the server stops (threads joined) before `self` goes
  using internal::HttpResponse;
  std::vector<internal::Http1Server::Route> routes = {
      {.path = "/healthz", .handler = [] { return HttpResponse{.body = "ok\n"}; }},
      {.path = "/readyz",
       .handler =
           [raw] {
             const bool ready = raw->options_.ready && raw->options_.ready();
             return HttpResponse{.status = ready ? 200 : 503,
                                 .body = ready ? "ready\n" : "not ready\n"};
           }},
      {.path = "/metrics",
       .handler =
           [raw] {
             return HttpResponse{.content_type = "text/plain; version=0.0.4; charset=utf-8",
                                 .body = raw->scrape()};
           },
       .slow = true},
  };
  if (self->options_.upstreams) {
    routes.push_back({.path = "/upstreams",
                      .handler =
                          [raw] {
                            return HttpResponse{.content_type = "application/json",
                                                .body = raw->options_.upstreams()};
                          },
                      .slow = true});
  }
  internal::Http1Server::Limits limits;
  limits.request_timeout = self->options_.request_timeout;
  limits.idle_timeout = self->options_.idle_timeout;
  limits.write_timeout = self->options_.write_timeout;
  limits.max_connections = std::max(1, self->options_.max_connections);
  auto server = internal::Http1Server::start(host, port, std::move(routes), limits);
  if (!server.ok()) {
    return absl::UnavailableError("admin: cannot listen on " + self->options_.address + " (" +
                                  std::string(server.status().message()) + ")");
  }
  self->server_ = std::move(*server);
  return self;
}

AdminServer::~AdminServer() { stop(); }

int AdminServer::port() const noexcept { return server_ ? server_->port() : 0; }

void AdminServer::stop() {
  if (server_) server_->stop();
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
