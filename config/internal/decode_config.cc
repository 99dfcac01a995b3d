#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "config/internal/address.h"
#include "config/internal/decode.h"

namespace curfew::config::internal {
namespace {

// An address some earlier socket listens on, and which key asked for it.
struct Bound {
  std::string address;
  std::string host;
  int port;
  std::string path;
};

// Two listening sockets collide on the same port if they name the same host or either of them
// binds every interface. Port 0 asks the kernel for a free port and never collides.
bool collide(const HostPort& a, const Bound& b) {
  const bool wildcard = a.is_wildcard() || HostPort{b.host, b.port}.is_wildcard();
  return a.port != 0 && a.port == b.port && (a.host == b.host || wildcard);
}

// Checks `address` (held by `value`) is a host:port not already taken, then records it.
void bind_address(const std::string& address, const Value& value, std::vector<Bound>& bound) {
  HostPort host_port;
  if (absl::Status s = split_host_port(address, host_port); !s.ok()) value.fail(s.message());
  for (const Bound& earlier : bound) {
    if (collide(host_port, earlier)) {
      value.fail(absl::StrCat("address \"", address, "\" conflicts with ", earlier.path, " (\"",
                              earlier.address, "\")"));
    }
  }
  bound.push_back(Bound{address, std::string(host_port.host), host_port.port, value.path()});
}

}  // namespace

// nghttp2's HPACK limit on one header field (NGHTTP2_HD_MAX_NV).
constexpr int kNghttp2MaxHeaderFieldBytes = 65536;

Config decode_config(const Value& root) {
  root.expect_keys(
      {"admin", "listeners", "upstreams", "drain_timeout", "workers", "busy_poll", "data_path"});
  Config config;

  if (const Value upstreams = root.get("upstreams"); upstreams.present()) {
    for (const Value& item : upstreams.items()) {
      Upstream upstream = decode_upstream(item);
      if (config.find_upstream(upstream.name) != nullptr) {
        item.get("name").fail(absl::StrCat("duplicate upstream name \"", upstream.name, "\""));
      }
      config.upstreams.push_back(std::move(upstream));
    }
  }

  std::vector<Bound> bound;
  if (const Value admin = root.get("admin"); admin.present()) {
    admin.expect_keys({"address"});
    if (const Value address = admin.get("address"); address.present()) {
      config.admin.address = address.as_string();
    }
  }
  // The admin server's port is taken even when its address is the default.
  bind_address(config.admin.address, root.get("admin").get("address"), bound);

  const Value listeners = root.require("listeners", "at least one listener is needed");
  const std::vector<Value> items = listeners.items();
  if (items.empty()) listeners.fail("at least one listener is needed");
  for (const Value& item : items) {
    Listener listener = decode_listener(item, config.upstreams);
    for (const Listener& earlier : config.listeners) {
      if (earlier.name == listener.name) {
        item.get("name").fail(absl::StrCat("duplicate listener name \"", listener.name, "\""));
      }
    }
    bind_address(listener.address, item.get("address"), bound);
    config.listeners.push_back(std::move(listener));
  }

  if (const Value drain = root.get("drain_timeout"); drain.present()) {
    config.drain_timeout = drain.as_duration();
  }
  if (const Value workers = root.get("workers"); workers.present()) {
    config.worker_threads = static_cast<int>(workers.as_int(0, 1024));
  }
  if (const Value busy_poll = root.get("busy_poll"); busy_poll.present()) {
    config.busy_poll = busy_poll.as_duration();
    // Beyond a millisecond a worker spins through gaps that a wake-up costs far less than.
    if (config.busy_poll > std::chrono::milliseconds(1)) {
      busy_poll.fail("must be at most 1ms (a worker spins this long after each event)");
    }
  }
  // Deprecated: one data path is left. Configs written for the release that had two keep loading
  // when they name the one that stayed.
  if (const Value data_path = root.get("data_path"); data_path.present()) {
    if (const std::string path = data_path.as_string(); path != "nghttp2") {
      data_path.fail("\"" + path +
                     "\" is not a data path any more: curfew has one (its own HTTP/2 on "
                     "nghttp2); remove data_path");
    }
  }
  // nghttp2's HPACK decoder refuses any single header field over 64 KiB with a connection error
  // (COMPRESSION_ERROR for every call on it): a metadata limit above that would promise what the
  // connection cannot keep.
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    if (config.listeners[i].limits.max_metadata_bytes > kNghttp2MaxHeaderFieldBytes) {
      root.get("listeners")
          .items()[i]
          .get("limits")
          .get("max_metadata_bytes")
          .fail("must be at most " + std::to_string(kNghttp2MaxHeaderFieldBytes) +
                " (nghttp2 ends the whole connection on a larger header field)");
    }
  }
  return config;
}

}  // namespace curfew::config::internal
