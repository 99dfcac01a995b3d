#include "sidecar/call_report.h"

#include <iterator>
#include <string_view>
#include <type_traits>

namespace curfew::sidecar {
namespace {

// The label tables (call_report.h) name every value but kNone once, and never name kNone: the
// values 1..N in some order (the enums start at kNone = 0 and are dense).
template <typename E, size_t N>
constexpr bool names_each_value_once(const EnumLabel<E> (&table)[N]) {
  for (size_t v = 1; v <= N; ++v) {
    size_t seen = 0;
    for (const EnumLabel<E>& e : table) {
      if (static_cast<size_t>(static_cast<std::underlying_type_t<E>>(e.value)) == v) ++seen;
    }
    if (seen != 1) return false;
  }
  return true;
}

// Labels are distinct and non-empty.
template <typename E, size_t N>
constexpr bool labels_are_distinct(const EnumLabel<E> (&table)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (table[i].label == nullptr || table[i].label[0] == '\0') return false;
    for (size_t j = 0; j < i; ++j) {
      if (std::string_view(table[i].label) == table[j].label) return false;
    }
  }
  return true;
}

static_assert(names_each_value_once(kTimeoutCauseLabels) &&
              std::size(kTimeoutCauseLabels) == static_cast<size_t>(TimeoutCause::kUpstream));
static_assert(names_each_value_once(kCancelCauseLabels) &&
              std::size(kCancelCauseLabels) == static_cast<size_t>(CancelCause::kHedgeLost));
static_assert(names_each_value_once(kRejectionLabels) &&
              std::size(kRejectionLabels) == static_cast<size_t>(Rejection::kRouteLimit));
static_assert(labels_are_distinct(kTimeoutCauseLabels) && labels_are_distinct(kCancelCauseLabels) &&
              labels_are_distinct(kRejectionLabels) && labels_are_distinct(kFanoutModeLabels));

// FanoutMode has no kNone (CallReport::fanout_mode is optional): its values are 0..N-1.
constexpr bool names_every_mode_once() {
  for (size_t v = 0; v < std::size(kFanoutModeLabels); ++v) {
    size_t seen = 0;
    for (const auto& e : kFanoutModeLabels) seen += static_cast<size_t>(e.value) == v ? 1 : 0;
    if (seen != 1) return false;
  }
  return true;
}
static_assert(names_every_mode_once() &&
              std::size(kFanoutModeLabels) == static_cast<size_t>(FanoutMode::kHedge) + 1);

}  // namespace
}  // namespace curfew::sidecar
