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

Upstream::OutlierDetection decode_outlier_detection(const Value& value) {
  value.expect_keys(
      {"consecutive_failures", "base_ejection_time", "max_ejection_time", "max_ejection_percent"});
  Upstream::OutlierDetection o;
  if (const Value v = value.get("consecutive_failures"); v.present())
    o.consecutive_failures = static_cast<int>(v.as_int(0, 1000));
  if (const Value v = value.get("base_ejection_time"); v.present())
    o.base_ejection_time = v.as_duration(/*positive=*/true);
  if (const Value v = value.get("max_ejection_time"); v.present())
    o.max_ejection_time = v.as_duration(/*positive=*/true);
  if (const Value v = value.get("max_ejection_percent"); v.present())
    o.max_ejection_percent = static_cast<int>(v.as_int(0, 100));
  if (o.max_ejection_time < o.base_ejection_time) {
    value.get(value.get("max_ejection_time").present() ? "max_ejection_time" : "base_ejection_time")
        .fail("max_ejection_time must be at least base_ejection_time");
  }
  return o;
}

constexpr std::chrono::nanoseconds kMinResolveInterval = std::chrono::milliseconds(100);

}  // namespace

constexpr std::chrono::nanoseconds kMinKeepaliveTime = std::chrono::seconds(10);

Upstream decode_upstream(const Value& value) {
  value.expect_keys({"name", "endpoints", "connect_timeout", "keepalive_time", "keepalive_timeout",
                     "tls", "balancer", "resolve_interval", "outlier_detection"});
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
  if (const Value v = value.get("balancer"); v.present()) {
    const std::string name = v.as_string();
    if (name == "peak_ewma") {
      upstream.balancer = Upstream::Balancer::kPeakEwma;
    } else if (name == "round_robin") {
      upstream.balancer = Upstream::Balancer::kRoundRobin;
    } else {
      v.fail(absl::StrCat("unknown balancer \"", name, "\" (expected peak_ewma or round_robin)"));
    }
  }
  if (const Value v = value.get("resolve_interval"); v.present()) {
    upstream.resolve_interval = v.as_duration(/*positive=*/true);
    if (upstream.resolve_interval < kMinResolveInterval)
      v.fail("must be at least 100ms (every loop resolves each name this often)");
  }
  if (const Value v = value.get("outlier_detection"); v.present()) {
    upstream.outlier_detection = decode_outlier_detection(v);
  }
  return upstream;
}

}  // namespace curfew::config::internal
