#include "absl/strings/str_cat.h"
#include "config/internal/address.h"
#include "config/internal/decode.h"

namespace curfew::config::internal {
namespace {

Upstream::Tls decode_tls(const Value& value) {
  value.expect_keys({"enabled", "ca_file", "cert_file", "key_file", "server_name"});
  Upstream::Tls tls;
  // Writing a tls: block at all means TLS is wanted; `enabled: false` turns it off again
  // without deleting the rest (handy while debugging).
  tls.enabled = true;
  if (const Value v = value.get("enabled"); v.present()) tls.enabled = v.as_bool();
  if (const Value v = value.get("ca_file"); v.present()) tls.ca_file = v.as_string();
  if (const Value v = value.get("cert_file"); v.present()) tls.cert_file = v.as_string();
  if (const Value v = value.get("key_file"); v.present()) tls.key_file = v.as_string();
  if (const Value v = value.get("server_name"); v.present()) tls.server_name = v.as_string();
  // A client certificate is useless without its key and vice versa.
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    const char* missing = tls.cert_file.empty() ? "cert_file" : "key_file";
    value.get(missing).fail("cert_file and key_file must be set together (client certificate)");
  }
  return tls;
}

}  // namespace

constexpr std::chrono::nanoseconds kMinKeepaliveTime = std::chrono::seconds(10);

Upstream decode_upstream(const Value& value) {
  value.expect_keys(
      {"name", "endpoints", "connect_timeout", "keepalive_time", "keepalive_timeout", "tls"});
  Upstream upstream;
  upstream.name = value.require("name", "every upstream needs a name").as_string();

  const Value endpoints = value.require("endpoints", "an upstream needs at least one endpoint");
  for (const Value& item : endpoints.items()) {
    std::string target = item.as_string();
    if (absl::Status s = check_target(target); !s.ok()) item.fail(s.message());
    upstream.endpoints.push_back(std::move(target));
  }
  if (upstream.endpoints.empty()) endpoints.fail("an upstream needs at least one endpoint");

  if (const Value v = value.get("connect_timeout"); v.present()) {
    upstream.connect_timeout = v.as_duration(/*positive=*/true);
  }
  if (const Value v = value.get("keepalive_time"); v.present()) {
    upstream.keepalive_time = v.as_duration();  // 0: off
    // gRPC clients never ping more often either; servers punish it (GOAWAY too_many_pings).
    if (upstream.keepalive_time > std::chrono::nanoseconds(0) &&
        upstream.keepalive_time < kMinKeepaliveTime)
      v.fail(
          "must be 0s (off) or at least 10s (gRPC servers answer more frequent PINGs with "
          "GOAWAY too_many_pings)");
  }
  if (const Value v = value.get("keepalive_timeout"); v.present()) {
    upstream.keepalive_timeout = v.as_duration(/*positive=*/true);
  }
  if (const Value v = value.get("tls"); v.present()) upstream.tls = decode_tls(v);
  return upstream;
}

}  // namespace curfew::config::internal
