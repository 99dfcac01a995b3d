#include "wire/grpc_timeout.h"

#include <cstdint>
#include <limits>

namespace curfew::wire {
namespace {

constexpr size_t kMaxDigits = 8;
constexpr int64_t kMaxValue = 99'999'999;

struct Unit {
  char letter;
  int64_t nanos;
};

// Finest first: format_grpc_timeout picks the first unit whose count fits.
constexpr Unit kUnits[] = {
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60LL * 1'000'000'000},
    {'H', 3'600LL * 1'000'000'000},
};

std::optional<int64_t> unit_nanos(char letter) {
  for (const Unit& unit : kUnits) {
    if (unit.letter == letter) return unit.nanos;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > kMaxDigits + 1) return std::nullopt;
  const std::optional<int64_t> nanos = unit_nanos(value.back());
  if (!nanos) return std::nullopt;
  int64_t count = 0;
  for (const char c : value.substr(0, value.size() - 1)) {
    // No absl::SimpleAtoi: it would accept a sign and surrounding whitespace.
    if (c < '0' || c > '9') return std::nullopt;
    count = count * 10 + (c - '0');
  }
  // count <= 99999999, so only the product can overflow (and only for hours).
  if (count > std::numeric_limits<int64_t>::max() / *nanos) {
    return std::chrono::nanoseconds::max();
  }
  return std::chrono::nanoseconds(count * *nanos);
}

std::string format_grpc_timeout(std::chrono::nanoseconds timeout) {
  const int64_t nanos = timeout.count();
  if (nanos <= 0) return "1n";
  for (const Unit& unit : kUnits) {
    // Rounded up, written so that it cannot overflow near nanoseconds::max().
    const int64_t count = nanos / unit.nanos + (nanos % unit.nanos != 0 ? 1 : 0);
    if (count <= kMaxValue) return std::to_string(count) + unit.letter;
  }
  // Unreachable: nanoseconds::max() is about 2562048 hours.
  return std::to_string(kMaxValue) + "H";
}

}  // namespace curfew::wire
