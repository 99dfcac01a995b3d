// What the metric stores (call_metrics.cc, connection_metrics.cc) share to expose their families:
// LabelIndex, the compile-time position of an enum value in its label table, and Family<D>, the
// builder of one prometheus::MetricFamily from its declaration D (metrics/metric_families.h).
// Internal to metrics/.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include "metrics/metric_families.h"

namespace curfew::metrics::internal {

// ---- label values ---------------------------------------------------------------------------
//
// Each enum label's values are one table (sidecar/call_report.h, sidecar/connection_report.h);
// the cells of a counter with such a label are an array in the table's order, and the scrape
// walks the table.

// The position of each enum value in `Table` (-1: not in it, e.g. kNone), computed at compile
// time, so that the hot path indexes a cell without comparing any string.
template <const auto& Table>
struct LabelIndex {
  using Enum = std::remove_cvref_t<decltype(Table[0].value)>;
  static constexpr size_t kSize = std::size(Table);

  static constexpr int of(Enum value) noexcept {
    const auto v = static_cast<std::underlying_type_t<Enum>>(value);
    return v >= 0 && static_cast<size_t>(v) < kSpan ? kIndex[static_cast<size_t>(v)] : -1;
  }

 private:
  static constexpr size_t kSpan = [] {
    size_t span = 0;
    for (const auto& e : Table) span = std::max(span, static_cast<size_t>(e.value) + 1);
    return span;
  }();
  static constexpr std::array<int, kSpan> kIndex = [] {
    std::array<int, kSpan> index{};
    index.fill(-1);
    for (size_t i = 0; i < kSize; ++i) {
      index[static_cast<size_t>(Table[i].value)] = static_cast<int>(i);
    }
    return index;
  }();
};

// ---- building a family ----------------------------------------------------------------------

// A histogram's totals at scrape time: non-cumulative bucket counts (the last one +Inf) and the
// sum of the observations.
template <size_t N>
struct HistogramTotals {
  std::array<uint64_t, N> buckets{};
  double sum = 0;
};

// The values of a series' labels: exactly as many as its family declares (a compile error
// otherwise), in the declared order.
template <size_t N>
struct LabelValues {
  LabelValues()
    requires(N == 0)
  = default;
  template <typename... S>
    requires(sizeof...(S) == N && N > 0 &&
             (std::is_convertible_v<const S&, std::string_view> && ...))
  LabelValues(const S&... values) : v{std::string_view(values)...} {}

  std::array<std::string_view, N> v{};
};

// One family being built, from its declaration D: name, help and type from D; each series'
// labels named as D names them. Only the kind of series D's type declares can be added.
template <const MetricFamilyDecl& D>
class Family {
 public:
  using Values = LabelValues<D.labels.size()>;

  Family() {
    f_.name = D.name;
    f_.help = D.help;
    f_.type = D.type;
  }

  void counter(const Values& labels, uint64_t value)
    requires(D.type == prometheus::MetricType::Counter)
  {
    prometheus::ClientMetric& m = series(labels);
    m.counter.value = static_cast<double>(value);
  }

  void gauge(const Values& labels, double value)
    requires(D.type == prometheus::MetricType::Gauge)
  {
    series(labels).gauge.value = value;
  }

  template <size_t N, size_t B>
    requires(D.type == prometheus::MetricType::Histogram && B + 1 == N)
  void histogram(const Values& labels, const HistogramTotals<N>& h, const double (&bounds)[B]) {
    prometheus::ClientMetric& m = series(labels);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < B; ++i) {
      cumulative += h.buckets[i];
      m.histogram.bucket.push_back({cumulative, bounds[i]});
    }
    cumulative += h.buckets[B];
    m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = h.sum;
  }

  prometheus::MetricFamily take() && { return std::move(f_); }

 private:
  prometheus::ClientMetric& series(const Values& labels) {
    prometheus::ClientMetric& m = f_.metric.emplace_back();
    m.label.reserve(D.labels.size());
    for (size_t i = 0; i < D.labels.size(); ++i) {
      m.label.push_back({std::string(D.labels[i]), std::string(labels.v[i])});
    }
    return m;
  }

  prometheus::MetricFamily f_;
};

// One family, built by the caller's collect(totals, Family<D>&) for it, found by
// argument-dependent lookup beside `Totals` (a family without a collector does not compile).
template <const MetricFamilyDecl& D, typename Totals>
prometheus::MetricFamily build_family(const Totals& totals) {
  Family<D> f;
  collect(totals, f);
  return std::move(f).take();
}

// Every family of the declaration list `Families` (metric_families.h), in the declared order.
template <const auto& Families, typename Totals>
std::vector<prometheus::MetricFamily> build_families(const Totals& totals) {
  return [&totals]<size_t... I>(std::index_sequence<I...>) {
    std::vector<prometheus::MetricFamily> out;
    out.reserve(sizeof...(I));
    (out.push_back(build_family<*Families[I]>(totals)), ...);
    return out;
  }(std::make_index_sequence<std::size(Families)>());
}

}  // namespace curfew::metrics::internal
