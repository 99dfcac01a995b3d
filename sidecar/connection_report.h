// ConnectionObserver: curfew's HTTP/2 connections, as they open and close,
// for the connection metrics (metrics/connection_metrics.h). Callers' connections and curfew's
// own connections to upstreams are both reported, each on the loop thread that owns it.
#pragma once

#include <string>

#include "h2/session.h"
#include "sidecar/call_report.h"

namespace curfew::sidecar {

enum class ConnectionSide { kCaller, kUpstream };

// Why a connection to an upstream endpoint could not be made.
enum class ConnectFailure {
  kResolve,     // the name did not resolve (or resolving timed out)
  kConnect,     // TCP connect failed or timed out
  kTls,         // the TLS handshake failed (certificate, ALPN)
  kNoSettings,  // connected, but no HTTP/2 SETTINGS within connect_timeout
};

// ---- label values (as in call_report.h: one table per enum, in exposition order) -------------

// curfew_connections{side}, curfew_connections_closed_total{side, reason}
inline constexpr EnumLabel<ConnectionSide> kConnectionSideLabels[] = {
    {ConnectionSide::kCaller, "caller"},
    {ConnectionSide::kUpstream, "upstream"},
};
// curfew_connections_closed_total{reason}: h2::CloseReason but kOpen, named by
// h2::close_reason_name.
inline constexpr EnumLabel<h2::CloseReason> kCloseReasonLabels[] = {
    {h2::CloseReason::kPeerClosed, "peer_closed"},
    {h2::CloseReason::kGoaway, "goaway"},
    {h2::CloseReason::kProtocolError, "protocol_error"},
    {h2::CloseReason::kFlooded, "flooded"},
    {h2::CloseReason::kRapidReset, "rapid_reset"},
    {h2::CloseReason::kOversizedHeaders, "oversized_headers"},
    {h2::CloseReason::kRefusedStreams, "refused_streams"},
    {h2::CloseReason::kControlFlood, "control_flood"},
    {h2::CloseReason::kHandshakeTimeout, "handshake_timeout"},
    {h2::CloseReason::kHeadersTimeout, "headers_timeout"},
    {h2::CloseReason::kSocketError, "socket_error"},
    {h2::CloseReason::kKeepaliveTimeout, "keepalive_timeout"},
    {h2::CloseReason::kCancelled, "cancelled"},
    {h2::CloseReason::kInternalError, "internal_error"},
    {h2::CloseReason::kMaxAge, "max_age"},
};
// curfew_upstream_connect_failures_total{reason}
inline constexpr EnumLabel<ConnectFailure> kConnectFailureLabels[] = {
    {ConnectFailure::kResolve, "resolve"},
    {ConnectFailure::kConnect, "connect"},
    {ConnectFailure::kTls, "tls"},
    {ConnectFailure::kNoSettings, "no_settings"},
};

// Called on the loop thread that owns the connection: implementations must not block.
class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;
  // A connection began serving (caller: accepted; upstream: connected and ready).
  virtual void connection_opened(ConnectionSide side) = 0;
  // It ended, and why (each opened connection is closed exactly once).
  virtual void connection_closed(ConnectionSide side, h2::CloseReason reason) = 0;
  // An attempt to connect to an upstream endpoint failed.
  virtual void upstream_connect_failed(ConnectFailure why) = 0;
  // An endpoint of upstream `upstream` was ejected (outlier detection; EndpointSet).
  virtual void endpoint_ejected(const std::string& upstream) { (void)upstream; }
  // A DNS lookup of one of `upstream`'s names failed or answered nothing (its last good
  // addresses keep serving).
  virtual void upstream_resolve_failed(const std::string& upstream) { (void)upstream; }
};

}  // namespace curfew::sidecar
