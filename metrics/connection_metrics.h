// ConnectionMetrics: the Prometheus metrics of curfew's HTTP/2 connections —
// open connections by side, closed connections by side and reason, failed upstream connects by
// reason, endpoints ejected by upstream — from the reports of sidecar::ConnectionObserver
// (sidecar/connection_report.h). The grpc++ data path reports no connections: there these families
// stay at 0.
//
// Design: connections open and close rarely (per connection, not per call), so unlike CallMetrics
// there are no per-thread shards: one fixed array of relaxed std::atomic cells per family, indexed
// by the position of the label value in its table (sidecar/connection_report.h), that position
// computed at compile time. A report is one relaxed fetch_add, from any loop thread, no lock;
// Collect() loads every cell.
//
// Every family (name, type, labels, help) is declared in metrics/metric_families.h
// (kConnectionFamilies), and listed with its meaning in docs/metrics.md.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "sidecar/connection_report.h"

namespace curfew::metrics {

class ConnectionMetrics final : public sidecar::ConnectionObserver, public prometheus::Collectable {
 public:
  static constexpr size_t kSides = std::size(sidecar::kConnectionSideLabels);
  static constexpr size_t kCloseReasons = std::size(sidecar::kCloseReasonLabels);
  static constexpr size_t kConnectFailures = std::size(sidecar::kConnectFailureLabels);

  ConnectionMetrics() = default;
  ~ConnectionMetrics() override = default;
  ConnectionMetrics(const ConnectionMetrics&) = delete;
  ConnectionMetrics& operator=(const ConnectionMetrics&) = delete;

  // ConnectionObserver: called on the connection's loop thread, from several threads at once.
  // Never throw, never block. A value its table does not list (h2::CloseReason::kOpen) is not
  // counted under any label; a close with it still takes the connection off the gauge.
  void connection_opened(sidecar::ConnectionSide side) noexcept override;
  void connection_closed(sidecar::ConnectionSide side, h2::CloseReason reason) noexcept override;
  void upstream_connect_failed(sidecar::ConnectFailure why) noexcept override;
  // Ejections are rare (seconds apart at most): a map under a mutex, by upstream name.
  void endpoint_ejected(const std::string& upstream) override;
  void upstream_resolve_failed(const std::string& upstream) override;

  // Collectable: any thread; concurrent with the reports.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Cells in the order of the label tables: [side], [side][reason], [failure].
  std::array<std::atomic<int64_t>, kSides> open_{};
  std::array<std::array<std::atomic<uint64_t>, kCloseReasons>, kSides> closed_{};
  std::array<std::atomic<uint64_t>, kConnectFailures> connect_failures_{};
  mutable std::mutex ejections_mu_;
  std::map<std::string, uint64_t> ejections_;         // guarded by ejections_mu_
  std::map<std::string, uint64_t> resolve_failures_;  // guarded by ejections_mu_
};

}  // namespace curfew::metrics
